"""Random pruning: a uniform random set over all prunable weights, seeded by (seed, iteration)."""

from __future__ import annotations

from drive.method import Method
from drive.scores import ScoreContext, Scores, seeded_uniform


def score(ctx: ScoreContext) -> Scores:
    """Uniform random scores from a generator seeded by (seed, iteration)."""
    return seeded_uniform(ctx)


METHOD = Method("random", score, label="random", color="#7F7F7F", marker="X", linestyle=":", order=70)
