"""An experiment as a fixed list of stages, derived from its config alone.

Because the plan is a pure function of the config, a checkpoint only needs to say which stage
(and which epoch of it) comes next to resume anywhere: in warm-up, after pruning, or in any
IMP round of the trunk or of a branch.

(a method names its plan: :attr:`drive.method.Method.plan`)

- dense:   train 0..E
- at init: prune (T iterations) -> train 0..E
- DRIVE:   warm-up 0..W -> prune (T iterations) -> train W..E, continuing the optimiser
           (``rewind: init``: rewind to init, then train 0..E with a fresh optimiser)
- after training: train 0..E -> prune -> fine-tune 0..F at a constant LR
- IMP:     train 0..E (level 0), then per trunk level k: prune to (1-rate)^k -> rewind ->
           train r..E; after trunk level j, every branch off j: fork (keep the trunk) ->
           prune to exactly 1-s -> rewind -> train r..E -> join (back to the trunk)

Every training stage has a ``round``: its epochs draw their data order, augmentation and
dropout from (seed, round, epoch), so IMP's branch to s sees exactly the data a standalone run
to s sees in its last round.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from drive.config import ExperimentConfig
from drive.imp import branches, trunk_density


@dataclass(frozen=True)
class Stage:
    """One step of an experiment.

    ``kind`` is train, prune, rewind, fork (keep the IMP trunk aside) or join (return to it).
    ``phase`` names what the time counts as: the pruning phase (``warmup``, ``pretrain``,
    ``prune``, ``imp``: trunk rounds) or a final ``train``. ``branch`` marks the stages of an IMP branch and
    ``requested`` the IMP training stages whose level is a requested sparsity.
    """

    kind: Literal["train", "prune", "rewind", "fork", "join"]
    phase: Literal["warmup", "pretrain", "prune", "imp", "train"]
    start: int = 0
    end: int = 0
    fresh_optimizer: bool = False
    method: str = ""
    density: float = 1.0
    iterations: int = 1
    level: int = 0
    round: int = 0
    branch: bool = False
    requested: bool = False
    lr: float | None = None  # a constant learning rate instead of the training schedule

    @property
    def epochs(self) -> int:
        return self.end - self.start

    @property
    def counts_as_pruning(self) -> bool:
        return self.phase != "train"


def make_plan(cfg: ExperimentConfig) -> list[Stage]:
    """The stages of the experiment described by ``cfg``."""
    epochs, density, plan = cfg.train.epochs, cfg.density, cfg.spec.plan
    final = Stage("train", "train", 0, epochs, fresh_optimizer=True)
    if plan == "dense":
        return [final]
    if plan == "at_init":
        return [Stage("prune", "prune", method=cfg.method, density=density, iterations=cfg.iterations),
                final]
    if plan == "after_warmup":
        w = cfg.warmup_epochs
        # no warm-up stage of 0 epochs (a train stage ends on its first epoch past its start)
        stages = [Stage("train", "warmup", 0, w, fresh_optimizer=True)] if w else []
        stages.append(Stage("prune", "prune", method=cfg.method, density=density, iterations=cfg.iterations))
        if cfg.prune.rewind == "init":
            return stages + [Stage("rewind", "prune"), Stage("train", "train", 0, epochs,
                                                              fresh_optimizer=True, round=1)]
        return stages + [Stage("train", "train", w, epochs, fresh_optimizer=not w)]
    if plan == "imp":
        return _imp_plan(cfg)
    if plan == "after_training":
        tune = cfg.finetune
        return [Stage("train", "pretrain", 0, epochs, fresh_optimizer=True),
                Stage("prune", "prune", method=cfg.method, density=density, iterations=cfg.iterations),
                Stage("train", "train", 0, tune.epochs or max(1, epochs // 4), fresh_optimizer=True,
                      round=1, lr=tune.lr or cfg.train.lr / 10)]
    raise ValueError(f"method: {cfg.method!r} has an unknown plan {plan!r}")


def _imp_plan(cfg: ExperimentConfig) -> list[Stage]:
    args = cfg.args
    epochs, r, rate = cfg.train.epochs, args.rewind_epoch, args.rate
    wanted = branches([cfg.sparsity, *args.branches], rate)
    if not wanted:
        return [Stage("train", "train", 0, epochs, fresh_optimizer=True)]
    depth = max(b.parent for b in wanted)
    # a target on a trunk level the trunk reaches anyway is that level: no branch needed
    on_trunk = {b.level for b in wanted if b.level <= depth and _same(b.density, trunk_density(b.level, rate))}
    stages = [Stage("train", "imp", 0, epochs, fresh_optimizer=True)]
    for j in range(depth + 1):
        if j > 0:
            stages += [Stage("prune", "imp", method="magnitude", density=trunk_density(j, rate), level=j),
                       Stage("rewind", "imp", level=j),
                       Stage("train", "imp", r, epochs, fresh_optimizer=True, level=j, round=j,
                             requested=j in on_trunk)]
        for b in (b for b in wanted if b.parent == j and b.level not in on_trunk):
            stages += [Stage("fork", "imp", level=b.level, branch=True),
                       Stage("prune", "imp", method="magnitude", density=b.density, level=b.level, branch=True),
                       Stage("rewind", "imp", level=b.level, branch=True),
                       Stage("train", "train", r, epochs, fresh_optimizer=True, level=b.level,
                             round=b.level, branch=True, requested=True),
                       Stage("join", "imp", level=b.level, branch=True)]
    return stages[:-1]  # the last branch (the highest sparsity) need not return to the trunk


def _same(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-12 * max(a, b)


def total_epochs(plan: list[Stage]) -> int:
    """Training epochs over the whole plan (for progress bars)."""
    return sum(s.end - s.start for s in plan if s.kind == "train")


def expected_cost(cfg: ExperimentConfig) -> tuple[int, int]:
    """A trial's expected cost, to start a sweep's longest trials first: the training epochs of
    its plan (IMP's rounds, DRIVE's warm-up, a pre-training, the final training), then, to order
    equal ones, its scoring sample passes (T x scoring batches x batch size for a method that
    scores on data, T probe passes for a data-free one: SynFlow's, an upper bound for magnitude
    and random). Comparable between trials of the same data set, as in one sweep."""
    spec = cfg.spec
    per_iteration = 1
    if spec.data:
        batches = max(cfg.prune.score_batches, spec.batches(cfg) if spec.batches else 1)
        per_iteration = batches * cfg.train.batch_size
    plan = make_plan(cfg)
    scoring = sum(s.iterations * per_iteration for s in plan if s.kind == "prune" and spec.plan != "imp")
    return total_epochs(plan), scoring


def stage_density(plan: list[Stage], stage: Stage) -> float:
    """The density a training stage runs at: that of the last prune stage before it."""
    density = 1.0
    for s in plan:
        if s is stage:
            break
        if s.kind == "prune":
            density = s.density
    return density
