"""Random pruning with the same density in every layer."""

from __future__ import annotations

from drive.budgets import budget_scores
from drive.method import Method
from drive.scores import ScoreContext, Scores


def score(ctx: ScoreContext) -> Scores:
    """A seeded random set of the same share of every layer."""
    return budget_scores(ctx, {n: ctx.density for n in ctx.weights})


METHOD = Method("random_uniform", score, label="random (uniform)", color="#BBBBBB", marker="+",
                linestyle=":", order=90)
