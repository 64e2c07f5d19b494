"""Iterative magnitude pruning (IMP, lottery tickets): its levels and rewinding.

Level 0 trains the dense network. Each later level prunes ``rate`` of the remaining weights by
global magnitude, rewinds the unpruned weights to their values at ``rewind_epoch`` (0 = init)
and trains again. The levels land exactly on the target density and on every extra ``stop``
(so one IMP run reports every sparsity of a sweep); the experiment runner
(:mod:`drive.experiment`) executes them round by round, checkpointing between rounds.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from drive.masks import Masks

_TOL = 1e-9


def imp_densities(sparsity: float, rate: float, stops: list[float] | tuple[float, ...] = ()) -> list[float]:
    """Densities of IMP levels 1..R on the way to ``sparsity``.

    Every round keeps ``1 - rate`` of the remaining weights, except that a round never jumps past
    a stop (an extra sparsity to report) or the target: it lands on it exactly.
    """
    if not 0 < rate < 1:
        raise ValueError("imp.rate: must be in (0, 1)")
    target = 1.0 - sparsity
    landings = sorted({1.0 - s for s in stops if 1.0 - s > target} | {target}, reverse=True)
    levels, d = [], 1.0
    for landing in landings:
        while d > landing * (1 + _TOL):
            d = max(d * (1 - rate), landing)
            levels.append(d)
    return levels


def imp_rounds(sparsity: float, rate: float) -> int:
    """Rounds to reach ``sparsity`` without extra stops: ceil(log(1 - s) / log(1 - rate))."""
    if sparsity <= 0:
        return 0
    return math.ceil(math.log(1 - sparsity) / math.log(1 - rate) - _TOL)


def prune_by_magnitude(masks: Masks, density: float, scope: str = "global") -> None:
    """One IMP round's pruning: keep the largest-magnitude weights, ``density`` of all."""
    masks.prune_to({n: w.detach().abs() for n, w in masks.weights.items()}, density, scope)


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the model's full state (weights, biases, BN statistics) to rewind to."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def rewind(model: nn.Module, saved: dict[str, torch.Tensor], masks: Masks) -> None:
    """Reset the model to ``saved`` and zero the pruned weights again."""
    model.load_state_dict(saved)
    masks.apply()
