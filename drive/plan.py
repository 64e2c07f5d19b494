"""An experiment as a fixed list of stages, derived from its config alone.

Because the plan is a pure function of the config, a checkpoint only needs to say which stage
(and which epoch of it) comes next to resume anywhere: in warm-up, after pruning, or in any
IMP round.

- dense:   train 0..E
- at init: prune (T iterations) -> train 0..E
- DRIVE:   warm-up 0..W -> prune (T iterations) -> train W..E, continuing the optimiser
           (``rewind: init``: rewind to init, then train 0..E with a fresh optimiser)
- IMP:     train 0..E -> [prune 20% -> rewind -> train r..E] per level, r = rewind epoch
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from drive.config import ExperimentConfig
from drive.imp import imp_densities

AT_INIT = ("snip", "grasp", "synflow", "magnitude", "random")


@dataclass(frozen=True)
class Stage:
    """One step of an experiment.

    ``kind`` is train, prune or rewind. ``phase`` names what the time counts as: the pruning
    phase (``warmup``, ``prune``, ``imp`` rounds before the last) or the final ``train``.
    """

    kind: Literal["train", "prune", "rewind"]
    phase: Literal["warmup", "prune", "imp", "train"]
    start: int = 0
    end: int = 0
    fresh_optimizer: bool = False
    method: str = ""
    density: float = 1.0
    iterations: int = 1
    level: int = 0

    @property
    def counts_as_pruning(self) -> bool:
        return self.phase != "train"


def make_plan(cfg: ExperimentConfig) -> list[Stage]:
    """The stages of the experiment described by ``cfg``."""
    epochs, density = cfg.train.epochs, cfg.density
    final = Stage("train", "train", 0, epochs, fresh_optimizer=True)
    if cfg.method == "dense":
        return [final]
    if cfg.method in AT_INIT:
        return [Stage("prune", "prune", method=cfg.method, density=density, iterations=cfg.iterations),
                final]
    if cfg.method == "drive":
        w = cfg.warmup_epochs
        stages = [Stage("train", "warmup", 0, w, fresh_optimizer=True),
                  Stage("prune", "prune", method="drive", density=density, iterations=cfg.iterations)]
        if cfg.prune.rewind == "init":
            return stages + [Stage("rewind", "prune"), final]
        return stages + [Stage("train", "train", w, epochs)]
    if cfg.method == "imp":
        levels = imp_densities(cfg.sparsity, cfg.imp.rate, cfg.imp.stops)
        r = cfg.imp.rewind_epoch
        stages = [Stage("train", "imp" if levels else "train", 0, epochs, fresh_optimizer=True, level=0)]
        for level, d in enumerate(levels, start=1):
            last = level == len(levels)
            stages += [Stage("prune", "imp", method="magnitude", density=d, level=level),
                       Stage("rewind", "imp", level=level),
                       Stage("train", "train" if last else "imp", r, epochs, fresh_optimizer=True,
                             level=level)]
        return stages
    raise ValueError(f"method: unknown method {cfg.method!r}")


def total_epochs(plan: list[Stage]) -> int:
    """Training epochs over the whole plan (for progress bars)."""
    return sum(s.end - s.start for s in plan if s.kind == "train")
