"""Random pruning with Erdős–Rényi-Kernel layer densities (Evci et al. 2020, RigL): a seeded
random set of each layer's share. Global only: the score sets every layer's share itself."""

from __future__ import annotations

import math

from drive.budgets import budget_scores
from drive.method import Method
from drive.scores import ScoreContext, Scores


def erk_densities(shapes: dict[str, tuple[int, ...]], density: float) -> dict[str, float]:
    """Layer densities of the ERK rule.

    A layer's density is proportional to ``sum(shape) / prod(shape)`` ((n_in + n_out + k_h +
    k_w) / (n_in n_out k_h k_w) for a conv, (n_in + n_out) / (n_in n_out) for a linear layer),
    scaled so that the whole network has ``density``; a layer whose density would pass 1 is left
    dense and the scale is found again for the others.
    """
    sizes = {n: math.prod(s) for n, s in shapes.items()}
    raw = {n: sum(s) / sizes[n] for n, s in shapes.items()}
    dense: set[str] = set()
    while True:
        budget = density * sum(sizes.values()) - sum(sizes[n] for n in dense)
        scale = budget / sum(raw[n] * sizes[n] for n in sizes if n not in dense)
        over = {n for n in sizes if n not in dense and scale * raw[n] > 1}
        if not over:
            return {n: 1.0 if n in dense else scale * raw[n] for n in sizes}
        dense |= over


def score(ctx: ScoreContext) -> Scores:
    """A seeded random set of each layer's ERK share."""
    shapes = {n: tuple(w.shape) for n, w in ctx.weights.items()}
    return budget_scores(ctx, erk_densities(shapes, ctx.density))


METHOD = Method("erk", score, layer_densities=True, label="random (ERK)", color="#999933",
                marker="x", linestyle=":", reference="Evci et al. 2020", order=80)
