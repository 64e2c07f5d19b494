"""FORCE (de Jorge et al. 2021): iterative pruning at initialisation by ``|w0 * dL/dw|`` with the
gradient of the *pruned* network, where pruned weights can come back (resurrection)."""

from __future__ import annotations

from drive.method import Method
from drive.scores import ScoreContext, Scores, loss_gradients


def score(ctx: ScoreContext) -> Scores:
    """``|w0 * g|``: ``w0`` are the weights before pruning began (``ctx.dense``), so a weight
    pruned at an earlier iteration is scored too and can come back. One iteration is SNIP; SNIP
    with T > 1 is Iter SNIP (no resurrection)."""
    grads = loss_gradients(ctx)  # the model's pruned weights are zero: the pruned network
    dense = ctx.dense or {n: w.detach() for n, w in ctx.weights.items()}
    return {n: (dense[n] * grads[n]).abs() for n in ctx.weights}


METHOD = Method("force", score, iterations=60, data=True, revives=True, fresh_batches=True,
                varies=("prune_iterations",), label="FORCE", color="#882255", marker="*",
                linestyle="-.", reference="de Jorge et al. 2021", order=100)
