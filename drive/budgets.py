"""Random pruning with set layer densities (ERK, uniform): each layer's budget of weights and
the scores that make one global ranking keep exactly those budgets."""

from __future__ import annotations

import math

import torch

from drive.masks import keep_count
from drive.scores import ScoreContext, Scores, seeded_uniform


def layer_budgets(densities: dict[str, float], sizes: dict[str, int], total: int) -> dict[str, int]:
    """Weights to keep per layer: ``density * size`` rounded so that they sum to ``total``
    (largest remainders first, ties by layer order)."""
    exact = {n: densities[n] * sizes[n] for n in sizes}
    budgets = {n: min(sizes[n], math.floor(v)) for n, v in exact.items()}
    order = sorted(sizes, key=lambda n: -(exact[n] - math.floor(exact[n])))
    for n in order:
        if sum(budgets.values()) >= total:
            break
        if budgets[n] < sizes[n]:
            budgets[n] += 1
    return budgets


def budget_scores(ctx: ScoreContext, densities: dict[str, float]) -> Scores:
    """Scores that make the global ranking keep, in each layer, its budget of the still-kept
    weights with the highest seeded random scores: the chosen ones are lifted above every
    other score (random scores lie in [0, 1))."""
    within = seeded_uniform(ctx)
    sizes = {n: int(ctx.keep[n].sum()) for n in ctx.weights}
    total = keep_count(ctx.density, sum(k.numel() for k in ctx.keep.values()))
    budgets = layer_budgets({n: min(1.0, densities[n] * ctx.keep[n].numel() / max(sizes[n], 1))
                             for n in sizes}, sizes, total)
    out = {}
    for n, w in ctx.weights.items():
        flat = torch.where(ctx.keep[n], within[n], torch.full_like(within[n], -1.0)).contiguous().view(-1)
        if budgets[n]:
            flat[torch.topk(flat, budgets[n]).indices] += 2.0
        out[n] = flat.view(w.shape)
    return out
