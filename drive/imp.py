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


class ImpRounds:
    """IMP's part of an experiment: the weights it rewinds to, the trunk kept aside while a
    branch runs, and the result of each level (a standalone IMP run of that many rounds).

    ``ledger`` is the experiment's :class:`~drive.ledger.Ledger`: a branch's pruning is no cost
    of the trunk's later levels, so the trunk's pruning cost is kept aside with it.
    """

    def __init__(self, args):  # args: drive.methods.imp.ImpArgs
        self.args = args
        self.rewind_weights: dict[str, torch.Tensor] | None = None
        self.trunk: dict | None = None

    def before_epoch(self, level: int, epoch: int, model: nn.Module) -> None:
        """Keep the weights to rewind to, at ``rewind_epoch`` of the dense training (level 0)."""
        if self.args.rewind == "weights" and level == 0 and epoch == self.args.rewind_epoch:
            self.rewind_weights = snapshot(model)

    def rewind(self, model: nn.Module, masks: Masks) -> None:
        """After pruning: the kept weights back to ``rewind_epoch`` (learning-rate rewinding,
        ``rewind: lr``, keeps the trained weights; the LR schedule restarts either way)."""
        if self.args.rewind != "lr":
            rewind(model, self.rewind_weights, masks)

    def fork(self, model: nn.Module, masks: Masks, ledger) -> None:
        """Keep the trunk (trained weights, mask, pruning cost so far) aside while a branch runs."""
        self.trunk = {"model": {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()},
                      "masks": masks.state_dict(), **ledger.pruning_cost()}

    def join(self, model: nn.Module, masks: Masks, ledger) -> None:
        """Back to the trunk."""
        trunk, self.trunk = self.trunk, None
        model.load_state_dict(trunk["model"])
        masks.load_state_dict(trunk["masks"])
        ledger.restore_pruning_cost(trunk)

    @staticmethod
    def level(stage, density: float, ledger, masks: Masks, test_acc: float | None,
              val_acc: float | None, footprint: dict | None = None) -> dict:
        """The result of the level a training stage finished: that of a standalone IMP run of
        ``stage.level`` rounds to its sparsity (its mask's cost, its final training, what its
        mask buys: ``footprint``)."""
        prune_time, samples = ledger.mask_time
        return {"level": stage.level, "sparsity": round(1.0 - density, 10), "branch": stage.branch,
                "requested": stage.requested, "test_acc": test_acc, "val_acc": val_acc,
                "best_test_acc": ledger.stage_best, "prune_time_s": prune_time,
                "prune_samples": samples, "train_time_s": ledger.stage_time,
                "total_time_s": prune_time + ledger.stage_time, **masks.summary(),
                **(footprint or {})}

    @staticmethod
    def headline(levels: list[dict], finished: bool, sparsity: float) -> dict | None:
        """The level at the target ``sparsity``, once its branch (the plan's last) has finished."""
        last = levels[-1] if levels else None
        if finished and last is not None and last["requested"] and abs(last["sparsity"] - sparsity) < 1e-9:
            return last
        return None

    def state_dict(self) -> dict:
        return {"rewind_weights": self.rewind_weights, "trunk": self.trunk}

    def load_state_dict(self, state: dict) -> None:
        self.rewind_weights, self.trunk = state["rewind_weights"], state["trunk"]
