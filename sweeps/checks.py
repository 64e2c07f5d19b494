"""Everything a sweep can get wrong, checked in the driver before Ray starts.

:func:`load_sweep` reads a sweep file and resolves every trial (:func:`sweeps.trials.resolve`),
then checks what search and schedulers rank by; :func:`check_trials` prepares every data set the
trials use and builds every distinct model once (a data set or model that cannot be built,
``device: cuda`` where trials get no GPU, a sparsity that keeps no weight). Each problem is one
line of a :class:`~sweeps.spec.SweepError`. The checks that need a running Ray (resources,
the cluster address) are in :mod:`sweeps.runtime`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from drive.config import DataConfig
from drive.errors import ConfigError, DataError, ModelError
from sweeps.spec import SweepError, SweepSpec, load_spec
from sweeps.trials import MAX_PROBLEMS, Sweep, resolve


def load_sweep(path: str | Path | None = None, overrides: list[str] | None = None,
               tree: dict[str, Any] | None = None, fields: dict[str, Any] | None = None) -> Sweep:
    """Read a sweep file (or ``tree``; see :func:`sweeps.spec.load_spec`), resolve and validate
    every trial, and check its search settings.

    Raises:
        SweepError: one line per problem.
    """
    sweep = resolve(load_spec(path, overrides, tree=tree, fields=fields))
    check_search(sweep)
    return sweep


def warn_without_axes(sweep: Sweep) -> None:
    """One ``drive-sweep: warning:`` line when ``sweep:`` gives no axis: the sweep is then one
    trial of its base experiment (of the built-in default one, DRIVE on digits, when the file
    has no ``experiment:`` either), which is rarely what a sweep file means. Printed once every
    check passed, just before the sweep starts (bad input stays one line)."""
    if sweep.spec.sweep:
        return
    cfg = sweep.trials[0].config
    what = "the experiment config as it is" if sweep.spec.experiment else "the default experiment"
    print(f"drive-sweep: warning: sweep: no axis given, so it runs one trial, {what} "
          f"({cfg.method} at sparsity {cfg.sparsity:g}, {cfg.model} on {cfg.dataset}); add axes "
          "under sweep:, e.g. sparsity: [0.8, 0.9]", file=sys.stderr)


def check_search(sweep: Sweep) -> None:
    """What search and schedulers rank by, and what ``num_samples`` can mean."""
    spec: SweepSpec = sweep.spec
    problems = []
    search, metric = spec.search, spec.search.metric
    if search.num_samples > 1 and not spec.sampled_axes:
        problems.append(f"search.num_samples: {search.num_samples} would repeat identical trials: "
                        "no axis is sampled (use a seed axis for repeats)")
    if search.algorithm == "optuna" and not spec.sampled_axes:
        problems.append("search.algorithm: optuna has nothing to search: no sampled axis "
                        "(e.g. train.lr: {loguniform: [0.01, 0.2]})")
    if spec.selects:
        if metric.startswith("test_") and not search.allow_test_selection:
            problems.append(f"search.metric: {metric} would select trials on the test set; rank by "
                            "val_acc (with experiment.data.val_fraction > 0) or set "
                            "search.allow_test_selection: true")
        if metric.startswith("val_") and any(t.config.data.val_fraction == 0 for t in sweep.trials):
            problems.append(f"search.metric: {metric} needs a validation split; set "
                            "experiment.data.val_fraction (e.g. 0.1)")
        if spec.scheduler.name == "asha" and spec.scheduler.max_t is not None:
            longest = sweep.longest_epochs()
            if spec.scheduler.max_t < longest:
                problems.append(f"scheduler.max_t: {spec.scheduler.max_t} is less than the "
                                f"{longest} training epochs of the longest trial; leave it unset "
                                "(= the longest trial) or raise it")
    if problems:
        raise SweepError(problems)


def check_trials(sweep: Sweep) -> list[tuple[str, dict]]:
    """Prepare every data set the trials use and build every model once; return the data sets
    (name, data config) for the other nodes of a cluster. Each trial's training set must hold a
    batch (:func:`drive.data.check_epoch_batches`).

    Raises:
        SweepError: one line per distinct problem.
    """
    from drive.data import check_epoch_batches, load_dataset, prepare_dataset
    from drive.masks import check_keeps_a_weight, prunable_layers
    from drive.models import build_model

    problems: dict[str, None] = {}
    for trial in sweep.trials:
        cfg = trial.config
        if cfg.device.startswith("cuda") and sweep.spec.resources.gpu == 0:
            problems[f"experiment.device: {cfg.device} needs resources.gpu > 0 (Ray hides the "
                     "GPUs from trials that reserve none); use auto or cpu"] = None
    datasets: dict[str, tuple[str, dict]] = {}
    shapes: dict[str, Any] = {}
    by_data: dict[str, list[Any]] = {}
    for trial in sweep.trials:
        by_data.setdefault(_data_key(trial.config.dataset, trial.config.data), []).append(trial)
    for key, trials in by_data.items():
        cfg = trials[0].config
        datasets[key] = (cfg.dataset, cfg.data.model_dump(mode="json"))
        try:
            prepare_dataset(cfg.dataset, cfg.data)
            data = load_dataset(cfg.dataset, cfg.data)
        except DataError as e:
            problems[str(e)] = None
            continue
        shapes[key] = _shape(data)
        for trial in trials:
            try:
                check_epoch_batches(data, trial.config.dataset, trial.config.data, trial.config.train)
            except DataError as e:
                problems[str(e)] = None
        del data
    built: dict[str, Any] = {}
    for trial in sweep.trials:
        cfg = trial.config
        data_key = _data_key(cfg.dataset, cfg.data)
        if data_key not in shapes:
            continue
        key = f"{cfg.model}|{cfg.model_args}|{shapes[data_key]}"
        if key not in built:
            num_classes, in_channels, image_size, sample_shape = shapes[data_key]
            try:
                built[key] = build_model(cfg.model, num_classes, in_channels, image_size,
                                         sample_shape=sample_shape, **cfg.model_args)
            except ModelError as e:
                problems[str(e)] = None
                built[key] = None
        if built[key] is not None:
            try:
                total = sum(w.numel() for w in prunable_layers(
                    built[key], cfg.prune.exclude_first, cfg.prune.exclude_last).values())
                check_keeps_a_weight(cfg.sparsity, total, cfg.model)
            except ConfigError as e:  # one line per problem, naming the first trial with it
                where = ", ".join(f"{k}={v}" for k, v in trial.point.items())
                for p in e.problems:
                    if not any(line.startswith(f"sweep: {p} (") for line in problems):
                        problems[f"sweep: {p} (e.g. trial {where})"] = None
    if problems:
        raise SweepError(list(problems)[:MAX_PROBLEMS])
    return list(datasets.values())


def _data_key(dataset: str, data: DataConfig) -> str:
    return f"{dataset}|{data.model_dump_json()}"


def _shape(data: Any) -> tuple[int, int, int, tuple[int, ...]]:
    """What a model factory is built with: as in ``drive.experiment.Experiment``."""
    return (data.num_classes, data.in_channels, data.image_size, tuple(data.sample_shape))
