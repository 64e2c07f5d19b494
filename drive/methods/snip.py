"""SNIP (Lee et al. 2019): connection sensitivity |w * dL/dw| at initialisation.

With ``prune_iterations: T > 1`` it is Iter SNIP (de Jorge et al. 2021): the pruned network is
rescored at every iteration, no weight comes back.
"""

from __future__ import annotations

from drive.method import Method
from drive.scores import ScoreContext, Scores, loss_gradients


def score(ctx: ScoreContext) -> Scores:
    """Connection sensitivity |w * g|."""
    grads = loss_gradients(ctx)
    return {n: (w.detach() * grads[n]).abs() for n, w in ctx.weights.items()}


METHOD = Method("snip", score, data=True, label="SNIP", color="#009E73", marker="^",
                linestyle="--", reference="Lee et al. 2019", order=30)
