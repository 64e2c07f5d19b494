"""Magnitude pruning at initialisation: keep the largest |w|."""

from __future__ import annotations

from drive.method import Method
from drive.scores import ScoreContext, Scores, abs_weights


def score(ctx: ScoreContext) -> Scores:
    """|w|."""
    return abs_weights(ctx)


METHOD = Method("magnitude", score, label="magnitude", color="#56B4E9", marker="P", linestyle="--", order=60)
