"""IMP (iterative magnitude pruning, lottery tickets; Frankle & Carbin 2019, Frankle et al. 2020):
its hyperparameters, checks and round count. The trunk-and-branches machinery that runs it is
:mod:`drive.imp`."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, field_validator

from drive.config import ExperimentConfig
from drive.method import Method, MethodArgs


_TOL = 1e-9


class ImpArgs(MethodArgs):
    rate: float = Field(0.2, gt=0, lt=1, description="share of remaining weights pruned per round")
    rewind: Literal["weights", "lr"] = Field("weights", description="after pruning, rewind the "
                                             "weights and the LR (lottery tickets) or the LR only "
                                             "(learning-rate rewinding, Renda et al. 2020)")
    rewind_epoch: int = Field(0, ge=0, description="epoch the weights (or LR schedule) rewind to")
    branches: list[float] = Field(default_factory=list,
                                  description="extra sparsities, each a branch off the trunk (reported)")

    @field_validator("branches")
    @classmethod
    def _branches_in_range(cls, v: list[float]) -> list[float]:
        if any(not 0 < s < 1 for s in v):
            raise ValueError("must be sparsities in (0, 1)")
        return sorted(set(v))


def imp_rounds(sparsity: float, rate: float) -> int:
    """Rounds of a standalone IMP run to ``sparsity``: ceil(log(1 - s) / log(1 - rate))."""
    if not 0 < rate < 1:
        raise ValueError("imp.rate: must be in (0, 1)")
    if sparsity <= 0:
        return 0
    return math.ceil(math.log(1 - sparsity) / math.log(1 - rate) - _TOL)


def check(cfg: ExperimentConfig) -> None:
    """Branches below the headline sparsity; a rewind epoch inside the training."""
    args: ImpArgs = cfg.args  # type: ignore[assignment]
    if any(b >= cfg.sparsity for b in args.branches):
        raise ValueError(f"imp.branches: must be below sparsity ({cfg.sparsity}), the trial's "
                         f"headline level, got {args.branches}")
    if args.rewind_epoch >= cfg.train.epochs:
        raise ValueError(f"imp.rewind_epoch: must be less than train.epochs ({cfg.train.epochs}), "
                         f"got {args.rewind_epoch}")


def rounds(cfg: ExperimentConfig) -> int:
    return imp_rounds(cfg.sparsity, cfg.args.rate)  # type: ignore[attr-defined]


METHOD = Method("imp", args=ImpArgs, plan="imp", check=check, rounds=rounds, label="IMP",
                color="#0072B2", marker="s", reference="Frankle & Carbin 2019; Frankle et al. 2020", order=10)
