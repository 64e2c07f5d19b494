"""Iterative magnitude pruning (IMP, lottery tickets): its trunk, its branches and rewinding.

Level 0 trains the dense network. Each trunk level prunes ``rate`` of the remaining weights by
global magnitude (density ``(1 - rate)^k`` at level k), rewinds the unpruned weights to their
values at ``rewind_epoch`` (0 = init) and trains again. Every requested sparsity s is a *branch*,
as in open_lth: off the last trunk level whose density is above ``1 - s`` it prunes to exactly
``1 - s``, rewinds and trains. So the branch to s has exactly the masks, accuracy and cost of a
standalone IMP run to s, which takes ``ceil(log(1 - s) / log(1 - rate))`` rounds, the last of them
the branch. One IMP trial thereby serves a whole sparsity sweep without distorting any level.
The experiment runner (:mod:`drive.experiment`) executes trunk and branches round by round,
checkpointing between rounds.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from drive.masks import Masks
from drive.methods.imp import imp_rounds


def trunk_density(level: int, rate: float) -> float:
    """The density of trunk level ``level``: ``(1 - rate)^level``."""
    return (1 - rate) ** level


@dataclass(frozen=True)
class Branch:
    """A requested sparsity: pruned to exactly ``density`` off trunk level ``parent``, it is
    level ``parent + 1`` (= its standalone round count)."""

    sparsity: float
    parent: int

    @property
    def density(self) -> float:
        return 1.0 - self.sparsity

    @property
    def level(self) -> int:
        return self.parent + 1


def branches(sparsities: list[float] | tuple[float, ...], rate: float) -> list[Branch]:
    """The branches of the requested sparsities (0 excluded), by increasing sparsity."""
    return [Branch(s, imp_rounds(s, rate) - 1) for s in sorted(set(sparsities)) if s > 0]


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
