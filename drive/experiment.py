"""One experiment end to end: config -> (warm-up) -> prune -> train -> metrics.

An :class:`Experiment` is the stage machine of :func:`drive.plan.make_plan`: it trains, prunes,
rewinds, forks and joins as its stages say, on the live objects of :class:`drive.parts.Parts`,
counting costs in a :class:`drive.ledger.Ledger` and leaving IMP's bookkeeping to
:class:`drive.imp.ImpRounds`. A callback sees every epoch (and every phase boundary) as a
:class:`Progress`, from which it can take the resumable state; ``run(config, state=...)``
continues from such a state and ends with the same metrics as an uninterrupted run with the
same seed. The metrics' keys are those of :data:`drive.schema.FINAL`.

Times: ``prune_time_s`` is the compute time until the final mask exists (DRIVE: warm-up +
scoring; at-init methods: scoring; IMP: every train-prune-rewind round before the last),
``train_time_s`` the final training, ``total_time_s`` their sum; test-set evaluation is
counted apart in ``eval_time_s`` and ``wall_time_s`` is the whole run's wall clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from drive.config import ExperimentConfig
from drive.data.augment import derive_seed
from drive.errors import CheckpointError, Diverged
from drive.imp import ImpRounds, prune_by_magnitude, rewind, snapshot
from drive.ledger import Ledger
from drive.parts import Parts, resolve_device
from drive.plan import Stage, make_plan, stage_density
from drive.prune import prune_iteratively
from drive.schema import identity
from drive.scores import ScoreContext
from drive.state import check_same_experiment, cpu_copy
from drive.optim import make_optimizer, make_scheduler, new_optimizer
from drive.train import evaluate, train_epoch

STATE_VERSION = 3  # 3: masks packed as bits, init weights only when the plan rewinds to them
READABLE_VERSIONS = (2, 3)

__all__ = ["Callback", "Experiment", "Progress", "READABLE_VERSIONS", "STATE_VERSION",
           "resolve_device", "run"]


@dataclass
class Progress:
    """What a callback sees after each epoch or phase boundary.

    ``boundary`` marks the end of a phase (warm-up, pruning, an IMP round): a good moment to
    checkpoint. ``level`` holds an IMP level's finished metrics. ``state()`` builds the
    resumable state on demand. ``done``: this was the plan's last step; nothing is left to run,
    and the experiment returns its final metrics next.
    """

    metrics: dict[str, Any]
    boundary: bool
    state: Callable[[], dict[str, Any]]
    level: dict[str, Any] | None = None
    done: bool = False


Callback = Callable[[Progress], None]


class Experiment:
    """The stage machine of one experiment."""

    def __init__(self, cfg: ExperimentConfig, state: dict[str, Any] | None = None):
        self.cfg = cfg
        self.parts = Parts.build(cfg)
        self.plan = make_plan(cfg)
        self.imp = ImpRounds(cfg.args) if cfg.spec.plan == "imp" else None
        # the initial weights are kept only where a stage rewinds to them (DRIVE's rewind: init);
        # IMP rewinds to its own snapshot at rewind_epoch (at 0 the same values, stored once)
        rewinds = self.imp is None and any(s.kind == "rewind" for s in self.plan)
        self.init_weights = snapshot(self.model) if rewinds else None
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
        self.stage_index, self.epoch, self.epochs_done = 0, self.plan[0].start, 0
        self.ledger = Ledger()
        self.method_metrics: dict[str, Any] = {}  # a method's extra results (ScoreContext.results)
        self.history: list[dict[str, Any]] = []
        self.levels: list[dict[str, Any]] = []
        self.last_test: tuple[float, float] | None = None
        self.last_val: tuple[float, float] | None = None  # validation (model selection)
        if state is not None:
            self.load_state_dict(state)

    # the live objects, by name
    model = property(lambda self: self.parts.model)
    masks = property(lambda self: self.parts.masks)
    data = property(lambda self: self.parts.data)
    device = property(lambda self: self.parts.device)
    train_model = property(lambda self: self.parts.train_model)
    train_batches = property(lambda self: self.parts.train_batches)

    # ---- stages ------------------------------------------------------------------------------
    @property
    def stage(self) -> Stage:
        return self.plan[self.stage_index]

    def _advance(self) -> None:
        self.stage_index += 1
        self.ledger.new_stage()
        if self.stage_index < len(self.plan):
            nxt = self.stage
            self.epoch = nxt.start
            if nxt.kind == "train" and nxt.fresh_optimizer:
                self.optimizer = self.scheduler = None

    def _train_epoch(self, stage: Stage) -> dict[str, Any]:
        cfg, parts = self.cfg, self.parts
        if self.optimizer is None:
            self.optimizer, self.scheduler = new_optimizer(self.model, cfg.train, stage.start, stage.lr)
        if self.imp is not None:
            self.imp.before_epoch(stage.level, self.epoch, self.model)
        # order, augmentation and dropout are functions of (seed, round, epoch) alone
        key = stage.round * cfg.train.epochs + self.epoch
        parts.train_batches.set_epoch(key)
        torch.manual_seed(derive_seed(cfg.seed, key, 1))
        lr = self.optimizer.param_groups[0]["lr"]
        stats = train_epoch(parts.train_model, parts.train_batches, self.optimizer, parts.masks,
                            cfg.train, parts.device)
        self.scheduler.step()
        self.ledger.trained(stats.seconds, stats.samples, pruning=stage.counts_as_pruning)
        self.epoch += 1
        self.epochs_done += 1
        metrics = {"phase": stage.phase, "level": stage.level, "epoch": self.epoch,
                   "train_loss": stats.loss, "train_acc": stats.accuracy, "lr": lr,
                   **({"branch": True} if stage.branch else {})}
        if self.epoch == stage.end or self.epoch % cfg.train.eval_every == 0:
            metrics.update(self._evaluate())
        return metrics

    def _evaluate(self) -> dict[str, Any]:
        """Test (and validation) accuracy and loss now."""
        parts, train = self.parts, self.cfg.train
        test = evaluate(parts.model, parts.test_batches, train, parts.device)
        self.ledger.evaluated(test.seconds, test.accuracy)
        self.last_test = (test.accuracy, test.loss)
        out = {"test_acc": test.accuracy, "test_loss": test.loss}
        if parts.val_batches is not None:
            val = evaluate(parts.model, parts.val_batches, train, parts.device)
            self.ledger.evaluated(val.seconds)
            self.last_val = (val.accuracy, val.loss)
            out.update(val_acc=val.accuracy, val_loss=val.loss)
        return out

    def _prune(self, stage: Stage) -> dict[str, Any]:
        cfg, parts = self.cfg, self.parts
        start, samples = time.perf_counter(), 0
        if self.imp is not None:
            prune_by_magnitude(parts.masks, stage.density, cfg.prune.scope)
        else:
            ctx = ScoreContext(
                model=parts.model, weights=parts.masks.weights, keep=parts.masks.keep,
                batches=parts.score_batches(cfg) if cfg.spec.data else (),
                input_shape=parts.data.sample_shape, seed=cfg.seed, args=cfg.args,
                label_smoothing=cfg.train.label_smoothing, bn=cfg.prune.bn, lr=cfg.train.lr)
            prune_iteratively(cfg.spec, parts.masks, ctx, stage.density, stage.iterations,
                              cfg.prune.schedule, cfg.prune.scope)
            samples = ctx.samples
            self.method_metrics.update(ctx.results)
        if self.optimizer is not None:
            parts.masks.mask_optimizer_state(self.optimizer)
        if parts.device.type == "cuda":
            torch.cuda.synchronize(parts.device)
        self.ledger.pruned(time.perf_counter() - start, samples)
        return {"phase": "prune", "level": stage.level, "epoch": self.epoch,
                "density": parts.masks.density(), **({"branch": True} if stage.branch else {})}

    def _rewind(self, stage: Stage) -> dict[str, Any]:
        if self.imp is not None:
            self.imp.rewind(self.model, self.masks)
        else:
            rewind(self.model, self.init_weights, self.masks)
        return {"phase": "rewind", "level": stage.level, "epoch": self.epoch}

    def _fork(self, stage: Stage) -> dict[str, Any]:
        self.imp.fork(self.model, self.masks, self.ledger)
        return {"phase": "fork", "level": stage.level, "epoch": self.epoch}

    def _join(self, stage: Stage) -> dict[str, Any]:
        self.imp.join(self.model, self.masks, self.ledger)
        return {"phase": "join", "level": stage.level, "epoch": self.epoch}

    # ---- the run -----------------------------------------------------------------------------
    def run(self, callback: Callback | None = None) -> dict[str, Any]:
        """Run the remaining stages; return the final metrics."""
        timers = self.ledger.timers
        wall_start, wall_before = time.perf_counter(), timers["wall"]
        status, reason = "finished", None
        steps = {"prune": self._prune, "rewind": self._rewind, "fork": self._fork, "join": self._join}
        try:
            while self.stage_index < len(self.plan):
                stage = self.stage
                if stage.kind == "train":
                    metrics = self._train_epoch(stage)
                    stage_done = self.epoch == stage.end
                else:
                    metrics = steps[stage.kind](stage)
                    stage_done = True
                level = None
                if stage_done and self.imp is not None and stage.kind == "train" and stage.level > 0:
                    level = self.imp.level(stage, stage_density(self.plan, stage), self.ledger,
                                           self.masks, *self._last_accuracies(),
                                           footprint=self.parts.footprint())
                    self.levels.append(level)
                if stage_done:
                    self._advance()
                timers["wall"] = wall_before + time.perf_counter() - wall_start
                metrics.update(density=self.masks.density(), **self.ledger.running(),
                               epochs_done=self.epochs_done)
                self.history.append(metrics)
                if callback is not None:
                    callback(Progress(metrics, boundary=stage_done, state=self.state_dict, level=level,
                                      done=self.stage_index >= len(self.plan)))
        except Diverged as e:
            status, reason = "diverged", str(e)
        timers["wall"] = wall_before + time.perf_counter() - wall_start
        return self.metrics(status, reason)

    def _last_accuracies(self) -> tuple[float | None, float | None]:
        return (self.last_test[0] if self.last_test else None,
                self.last_val[0] if self.last_val else None)

    def metrics(self, status: str = "finished", reason: str | None = None) -> dict[str, Any]:
        """The experiment's result (:data:`drive.schema.FINAL`).

        For IMP it is the level at the target sparsity (the last branch) when it finished;
        ``levels`` holds every trunk level and branch.
        """
        cfg, ledger = self.cfg, self.ledger
        prune_time, prune_samples = ledger.timers["prune"], ledger.prune_samples
        train_time, best = ledger.timers["train"], self._final_best()
        if self.imp is not None:
            headline = ImpRounds.headline(self.levels, self.stage_index >= len(self.plan), cfg.sparsity)
            if headline is not None:
                prune_time, prune_samples = headline["prune_time_s"], headline["prune_samples"]
                train_time, best = headline["train_time_s"], headline["best_test_acc"]
            else:
                prune_time, prune_samples = ledger.mask_time
        return {
            "status": status, "reason": reason, **identity(cfg), "device": str(self.device),
            "test_acc": self.last_test[0] if self.last_test else None,
            "test_loss": self.last_test[1] if self.last_test else None,
            "best_test_acc": best,
            "val_acc": self.last_val[0] if self.last_val else None,
            "val_loss": self.last_val[1] if self.last_val else None,
            **self.masks.summary(), **self.parts.footprint(),
            "params_total": sum(p.numel() for p in self.model.parameters()),
            "prune_time_s": prune_time, "prune_samples": prune_samples,
            "train_time_s": train_time, "total_time_s": prune_time + train_time,
            "eval_time_s": ledger.timers["eval"], "wall_time_s": ledger.timers["wall"],
            "method_metrics": dict(self.method_metrics), "levels": self.levels,
            "history": self.history, "method_info": cfg.spec.info(),
            "config": cfg.model_dump(mode="json"),
        }

    def _final_best(self) -> float | None:
        final = [h["test_acc"] for h in self.history
                 if h.get("phase") == "train" and h.get("test_acc") is not None]
        return max(final) if final else None

    # ---- persistence -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: a copy, safe to keep while training goes on."""
        imp = self.imp.state_dict() if self.imp is not None else {"rewind_weights": None, "trunk": None}
        return cpu_copy({
            "version": STATE_VERSION, "config": self.cfg.model_dump(mode="json"),
            "stage": self.stage_index, "epoch": self.epoch, "epochs_done": self.epochs_done,
            "model": self.model.state_dict(), "masks": self.masks.state_dict(),
            "optimizer": self.optimizer.state_dict() if self.optimizer else None,
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "init_weights": self.init_weights, **imp, **self.ledger.state_dict(),
            "history": self.history, "levels": self.levels,
            "method_metrics": dict(self.method_metrics),
            "last_test": list(self.last_test) if self.last_test else None,
            "last_val": list(self.last_val) if self.last_val else None,
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
        })

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("version") not in READABLE_VERSIONS:
            raise CheckpointError(f"checkpoint: state version {state.get('version')} is not one of "
                                  f"{', '.join(map(str, READABLE_VERSIONS))}")
        check_same_experiment(state["config"], self.cfg)
        self.stage_index, self.epoch, self.epochs_done = state["stage"], state["epoch"], state["epochs_done"]
        self.model.load_state_dict(state["model"])
        self.masks.load_state_dict(state["masks"])
        if self.init_weights is not None:
            self.init_weights = state["init_weights"]
        if self.imp is not None:
            self.imp.load_state_dict(state)
        if state["optimizer"] is not None:
            self.optimizer = make_optimizer(self.model, self.cfg.train)
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler = make_scheduler(self.optimizer, self.cfg.train, self.cfg.train.epochs)
            self.scheduler.load_state_dict(state["scheduler"])
        self.ledger.load_state_dict(state)
        self.history, self.levels = list(state["history"]), list(state["levels"])
        self.method_metrics = dict(state.get("method_metrics") or {})
        self.last_test = tuple(state["last_test"]) if state["last_test"] else None
        self.last_val = tuple(state.get("last_val")) if state.get("last_val") else None
        torch.set_rng_state(state["rng"])
        if state["cuda_rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state_all(state["cuda_rng"])


def run(config: ExperimentConfig, callback: Callback | None = None,
        state: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run one experiment (from ``state`` when given) and return its metrics."""
    return Experiment(config, state).run(callback)
