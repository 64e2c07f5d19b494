"""One experiment end to end: config -> (warm-up) -> prune -> train -> metrics.

``run(config)`` executes the stages of :func:`drive.plan.make_plan`. A callback sees every
epoch (and every phase boundary) as a :class:`Progress`, from which it can take the resumable
state; ``run(config, state=...)`` continues from such a state and ends with the same metrics as
an uninterrupted run with the same seed.

Times: ``prune_time_s`` is the compute time until the final mask exists (DRIVE: warm-up +
scoring; at-init methods: scoring; IMP: every train-prune-rewind round before the last),
``train_time_s`` the final training, ``total_time_s`` their sum; test-set evaluation is
counted apart in ``eval_time_s`` and ``wall_time_s`` is the whole run's wall clock.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from drive.config import ExperimentConfig
from drive.data import load_dataset, make_loaders, make_val_loader
from drive.data.augment import derive_seed
from drive.data.balanced import class_balanced_batches
from drive.errors import CheckpointError, ConfigError, Diverged
from drive.imp import prune_by_magnitude, rewind, snapshot
from drive.masks import Masks, check_keeps_a_weight
from drive.models import build_model
from drive.plan import Stage, make_plan, stage_density
from drive.prune import prune_iteratively
from drive.schema import identity
from drive.scores import ScoreContext
from drive.state import check_same_experiment, cpu_copy
from drive.train import (
    evaluate,
    input_dtype,
    make_optimizer,
    make_scheduler,
    train_epoch,
    training_model,
)

STATE_VERSION = 3  # 3: masks packed as bits, init weights only when the plan rewinds to them
READABLE_VERSIONS = (2, 3)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError([f"device: {name} requested but CUDA is not available; use auto or cpu"])
    return device


@dataclass
class Progress:
    """What a callback sees after each epoch or phase boundary.

    ``boundary`` marks the end of a phase (warm-up, pruning, an IMP round): a good moment to
    checkpoint. ``level`` holds an IMP level's finished metrics. ``state()`` builds the
    resumable state on demand.
    """

    metrics: dict[str, Any]
    boundary: bool
    state: Callable[[], dict[str, Any]]
    level: dict[str, Any] | None = None


Callback = Callable[[Progress], None]


class Experiment:
    """The live objects of one experiment and the stage machine that drives them."""

    def __init__(self, cfg: ExperimentConfig, state: dict[str, Any] | None = None):
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        torch.manual_seed(cfg.seed)
        self.data = load_dataset(cfg.dataset, cfg.data)
        self.model = build_model(cfg.model, self.data.num_classes, self.data.in_channels,
                                 self.data.image_size, sample_shape=self.data.sample_shape,
                                 **cfg.model_args).to(self.device)
        self.channels_last = cfg.train.channels_last
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.masks = Masks.for_model(self.model, cfg.prune.exclude_first, cfg.prune.exclude_last)
        check_keeps_a_weight(cfg.sparsity, self.masks.total, cfg.model)
        self.train_model = training_model(self.model, cfg.train, self.device)  # maybe compiled
        self.train_batches, self.test_batches = make_loaders(
            self.data, cfg.data, cfg.train.batch_size, cfg.train.eval_batch_size, self.device,
            cfg.seed, channels_last=self.channels_last, dtype=input_dtype(cfg.train, self.device))
        self.val_batches = make_val_loader(self.data, cfg.data, cfg.train.eval_batch_size, self.device,
                                           cfg.seed, channels_last=self.channels_last,
                                           dtype=input_dtype(cfg.train, self.device))
        self.plan = make_plan(cfg)
        # the initial weights are kept only where a stage rewinds to them (DRIVE's rewind: init);
        # IMP rewinds to its own snapshot at rewind_epoch (at 0 the same values, stored once)
        rewinds_to_init = cfg.spec.plan != "imp" and any(s.kind == "rewind" for s in self.plan)
        self.init_weights = snapshot(self.model) if rewinds_to_init else None
        self.rewind_weights: dict[str, torch.Tensor] | None = None
        self.trunk: dict[str, Any] | None = None  # IMP: the trunk, kept aside during a branch
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
        self.stage_index, self.epoch, self.epochs_done = 0, self.plan[0].start, 0
        self.timers = {"prune": 0.0, "train": 0.0, "eval": 0.0, "wall": 0.0}
        self.prune_samples = 0
        self.method_metrics: dict[str, Any] = {}  # a method's extra results (ScoreContext.results)
        self.mask_time = (0.0, 0)  # prune timer and samples when the current mask was made
        self.history: list[dict[str, Any]] = []
        self.levels: list[dict[str, Any]] = []
        self.stage_best: float | None = None  # best test accuracy in the current stage
        self.stage_time = 0.0  # training seconds in the current stage
        self.last_test: tuple[float, float] | None = None
        self.last_val: tuple[float, float] | None = None  # validation (model selection)
        if state is not None:
            self.load_state_dict(state)

    # ---- stages ------------------------------------------------------------------------------
    @property
    def stage(self) -> Stage:
        return self.plan[self.stage_index]

    def _advance(self) -> None:
        self.stage_index += 1
        self.stage_best, self.stage_time = None, 0.0
        if self.stage_index < len(self.plan):
            nxt = self.stage
            self.epoch = nxt.start
            if nxt.kind == "train" and nxt.fresh_optimizer:
                self.optimizer = self.scheduler = None

    def _new_optimizer(self, stage: Stage) -> None:
        train = self.cfg.train
        if stage.lr is not None:  # fine-tuning at a constant LR
            train = train.model_copy(update={"lr": stage.lr, "schedule": "constant"})
        self.optimizer = make_optimizer(self.model, train)
        self.scheduler = make_scheduler(self.optimizer, train, train.epochs)
        with warnings.catch_warnings():  # fast-forward the LR for late rewinding
            warnings.simplefilter("ignore", UserWarning)
            for _ in range(stage.start):
                self.scheduler.step()

    def _train_epoch(self, stage: Stage) -> dict[str, Any]:
        cfg = self.cfg
        if self.optimizer is None:
            self._new_optimizer(stage)
        if (cfg.spec.plan == "imp" and cfg.args.rewind == "weights" and stage.level == 0
                and self.epoch == cfg.args.rewind_epoch):
            self.rewind_weights = snapshot(self.model)
        # order, augmentation and dropout are functions of (seed, round, epoch) alone
        key = stage.round * cfg.train.epochs + self.epoch
        self.train_batches.set_epoch(key)
        torch.manual_seed(derive_seed(cfg.seed, key, 1))
        lr = self.optimizer.param_groups[0]["lr"]
        stats = train_epoch(self.train_model, self.train_batches, self.optimizer, self.masks,
                            cfg.train, self.device)
        self.scheduler.step()
        self.timers["prune" if stage.counts_as_pruning else "train"] += stats.seconds
        self.stage_time += stats.seconds
        if stage.counts_as_pruning:
            self.prune_samples += stats.samples
        self.epoch += 1
        self.epochs_done += 1
        metrics = {"phase": stage.phase, "level": stage.level, "epoch": self.epoch,
                   "train_loss": stats.loss, "train_acc": stats.accuracy, "lr": lr,
                   **({"branch": True} if stage.branch else {})}
        if self.epoch == stage.end or self.epoch % cfg.train.eval_every == 0:
            test = evaluate(self.model, self.test_batches, cfg.train, self.device)
            self.timers["eval"] += test.seconds
            self.last_test = (test.accuracy, test.loss)
            self.stage_best = max(self.stage_best or 0.0, test.accuracy)
            metrics.update(test_acc=test.accuracy, test_loss=test.loss)
            if self.val_batches is not None:
                val = evaluate(self.model, self.val_batches, cfg.train, self.device)
                self.timers["eval"] += val.seconds
                self.last_val = (val.accuracy, val.loss)
                metrics.update(val_acc=val.accuracy, val_loss=val.loss)
        return metrics

    def _prune(self, stage: Stage) -> dict[str, Any]:
        cfg = self.cfg
        start = time.perf_counter()
        if cfg.spec.plan == "imp":
            prune_by_magnitude(self.masks, stage.density, cfg.prune.scope)
        else:
            ctx = ScoreContext(
                model=self.model, weights=self.masks.weights, keep=self.masks.keep,
                batches=self._score_batches() if cfg.spec.data else (),
                input_shape=self.data.sample_shape, seed=cfg.seed, args=cfg.args,
                label_smoothing=cfg.train.label_smoothing, bn=cfg.prune.bn, lr=cfg.train.lr)
            prune_iteratively(cfg.spec, self.masks, ctx, stage.density, stage.iterations,
                              cfg.prune.schedule, cfg.prune.scope)
            self.prune_samples += ctx.samples
            self.method_metrics.update(ctx.results)
        if self.optimizer is not None:
            self.masks.mask_optimizer_state(self.optimizer)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.timers["prune"] += time.perf_counter() - start
        self.mask_time = (self.timers["prune"], self.prune_samples)
        return {"phase": "prune", "level": stage.level, "epoch": self.epoch,
                "density": self.masks.density(), **({"branch": True} if stage.branch else {})}

    def _score_batches(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The scoring batches: ``score_batches`` of them, the same at every pruning iteration, or
        for a method with ``fresh_batches`` (FORCE) a new group at each of the T iterations."""
        spec = self.cfg.spec
        count = max(self.cfg.prune.score_batches, spec.batches(self.cfg) if spec.batches else 1)
        groups = self.cfg.iterations if spec.fresh_batches else 1
        return [batch for g in range(groups) for batch in self._score_group(g, count)]

    def _score_group(self, group: int, count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``count`` training batches, a function of (seed, group): the first batches of a fixed
        order, or class-balanced ones (``prune.balanced_batches``)."""
        per_class = self.cfg.prune.balanced_batches
        if per_class:
            seed = self.cfg.seed if group == 0 else derive_seed(self.cfg.seed, group)
            return [self.train_batches.samples(index) for index in class_balanced_batches(
                self.data, per_class, count, seed)]
        self.train_batches.set_epoch(-1 - group)
        batches = []
        for x, y in self.train_batches:  # scoring runs without autocast: float32 batches
            batches.append((x.float(), y))
            if len(batches) == count:
                break
        return batches

    def _rewind(self, stage: Stage) -> dict[str, Any]:
        imp = self.cfg.spec.plan == "imp"
        if not (imp and self.cfg.args.rewind == "lr"):  # LR rewinding keeps the trained weights
            rewind(self.model, self.rewind_weights if imp else self.init_weights, self.masks)
        return {"phase": "rewind", "level": stage.level, "epoch": self.epoch}

    def _fork(self, stage: Stage) -> dict[str, Any]:
        """Keep the trunk (trained weights, mask, cost so far) aside while a branch runs."""
        self.trunk = cpu_copy({"model": self.model.state_dict(), "masks": self.masks.state_dict(),
                               "prune_time": self.timers["prune"], "prune_samples": self.prune_samples,
                               "mask_time": list(self.mask_time)})
        return {"phase": "fork", "level": stage.level, "epoch": self.epoch}

    def _join(self, stage: Stage) -> dict[str, Any]:
        """Back to the trunk: a branch's pruning is no cost of the trunk's later levels."""
        trunk, self.trunk = self.trunk, None
        self.model.load_state_dict(trunk["model"])
        self.masks.load_state_dict(trunk["masks"])
        self.timers["prune"], self.prune_samples = trunk["prune_time"], trunk["prune_samples"]
        self.mask_time = tuple(trunk["mask_time"])
        return {"phase": "join", "level": stage.level, "epoch": self.epoch}

    # ---- the run -----------------------------------------------------------------------------
    def run(self, callback: Callback | None = None) -> dict[str, Any]:
        """Run the remaining stages; return the final metrics."""
        wall_start, wall_before = time.perf_counter(), self.timers["wall"]
        status, reason = "finished", None
        try:
            while self.stage_index < len(self.plan):
                stage = self.stage
                if stage.kind == "train":
                    metrics = self._train_epoch(stage)
                    stage_done = self.epoch == stage.end
                else:
                    metrics = {"prune": self._prune, "rewind": self._rewind, "fork": self._fork,
                               "join": self._join}[stage.kind](stage)
                    stage_done = True
                level = self._level_metrics(stage) if stage_done and self._ends_level(stage) else None
                if level is not None:
                    self.levels.append(level)
                if stage_done:
                    self._advance()
                self.timers["wall"] = wall_before + time.perf_counter() - wall_start
                metrics.update(self._running_totals())
                self.history.append(metrics)
                if callback is not None:
                    callback(Progress(metrics, boundary=stage_done, state=self.state_dict, level=level))
        except Diverged as e:
            status, reason = "diverged", str(e)
        self.timers["wall"] = wall_before + time.perf_counter() - wall_start
        return self.metrics(status, reason)

    def _ends_level(self, stage: Stage) -> bool:
        return self.cfg.spec.plan == "imp" and stage.kind == "train" and stage.level > 0

    def _level_metrics(self, stage: Stage) -> dict[str, Any]:
        """An IMP level: the result of a standalone IMP run of ``level`` rounds to its sparsity."""
        prune_time, samples = self.mask_time
        return {"level": stage.level, "sparsity": round(1.0 - stage_density(self.plan, stage), 10),
                "branch": stage.branch, "requested": stage.requested,
                "test_acc": self.last_test[0] if self.last_test else None,
                "val_acc": self.last_val[0] if self.last_val else None,
                "best_test_acc": self.stage_best, "prune_time_s": prune_time,
                "prune_samples": samples, "train_time_s": self.stage_time,
                "total_time_s": prune_time + self.stage_time, **self.masks.summary()}

    def _running_totals(self) -> dict[str, Any]:
        return {"density": self.masks.density(), "prune_time_s": self.timers["prune"],
                "prune_samples": self.prune_samples, "train_time_s": self.timers["train"],
                "epochs_done": self.epochs_done}

    def metrics(self, status: str = "finished", reason: str | None = None) -> dict[str, Any]:
        """The experiment's result (the keys of ``drive-sweep prune``'s JSON).

        For IMP it is the level at the target sparsity (the last branch) when it finished;
        ``levels`` holds every trunk level and branch.
        """
        cfg = self.cfg
        prune_time, prune_samples = self.timers["prune"], self.prune_samples
        train_time, best = self.timers["train"], self._final_best()
        headline = self._imp_headline()
        if headline is not None:
            prune_time, prune_samples = headline["prune_time_s"], headline["prune_samples"]
            train_time, best = headline["train_time_s"], headline["best_test_acc"]
        elif cfg.spec.plan == "imp":
            prune_time, prune_samples = self.mask_time
        return {
            "status": status, "reason": reason, **identity(cfg), "device": str(self.device),
            "test_acc": self.last_test[0] if self.last_test else None,
            "test_loss": self.last_test[1] if self.last_test else None,
            "best_test_acc": best,
            "val_acc": self.last_val[0] if self.last_val else None,
            "val_loss": self.last_val[1] if self.last_val else None,
            **self.masks.summary(),
            "params_total": sum(p.numel() for p in self.model.parameters()),
            "prune_time_s": prune_time, "prune_samples": prune_samples,
            "train_time_s": train_time, "total_time_s": prune_time + train_time,
            "eval_time_s": self.timers["eval"], "wall_time_s": self.timers["wall"],
            "method_metrics": dict(self.method_metrics), "levels": self.levels,
            "history": self.history, "method_info": cfg.spec.info(),
            "config": cfg.model_dump(mode="json"),
        }

    def _imp_headline(self) -> dict[str, Any] | None:
        """IMP's level at the target sparsity, once its branch has finished."""
        last = self.levels[-1] if self.cfg.spec.plan == "imp" and self.levels else None
        done = last is not None and self.stage_index >= len(self.plan)
        return last if done and last["requested"] and abs(last["sparsity"] - self.cfg.sparsity) < 1e-9 else None

    def _final_best(self) -> float | None:
        final = [h["test_acc"] for h in self.history
                 if h.get("phase") == "train" and h.get("test_acc") is not None]
        return max(final) if final else None

    # ---- persistence -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: a copy, safe to keep while training goes on."""
        return cpu_copy({
            "version": STATE_VERSION, "config": self.cfg.model_dump(mode="json"),
            "stage": self.stage_index, "epoch": self.epoch, "epochs_done": self.epochs_done,
            "model": self.model.state_dict(), "masks": self.masks.state_dict(),
            "optimizer": self.optimizer.state_dict() if self.optimizer else None,
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "init_weights": self.init_weights, "rewind_weights": self.rewind_weights,
            "trunk": self.trunk,
            "timers": dict(self.timers), "prune_samples": self.prune_samples,
            "mask_time": list(self.mask_time), "history": self.history, "levels": self.levels,
            "method_metrics": dict(self.method_metrics),
            "stage_best": self.stage_best, "stage_time": self.stage_time, "last_test": list(self.last_test) if self.last_test else None,
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
        self.rewind_weights = state["rewind_weights"]
        self.trunk = state["trunk"]
        if state["optimizer"] is not None:
            self.optimizer = make_optimizer(self.model, self.cfg.train)
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler = make_scheduler(self.optimizer, self.cfg.train, self.cfg.train.epochs)
            self.scheduler.load_state_dict(state["scheduler"])
        self.timers, self.prune_samples = dict(state["timers"]), state["prune_samples"]
        self.mask_time = tuple(state["mask_time"])
        self.history, self.levels = list(state["history"]), list(state["levels"])
        self.method_metrics = dict(state.get("method_metrics") or {})
        self.stage_best, self.stage_time = state["stage_best"], state["stage_time"]
        self.last_test = tuple(state["last_test"]) if state["last_test"] else None
        self.last_val = tuple(state["last_val"]) if state.get("last_val") else None
        torch.set_rng_state(state["rng"])
        if state["cuda_rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state_all(state["cuda_rng"])


def run(config: ExperimentConfig, callback: Callback | None = None,
        state: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run one experiment (from ``state`` when given) and return its metrics."""
    return Experiment(config, state).run(callback)
