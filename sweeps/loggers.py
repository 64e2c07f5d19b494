"""Experiment trackers as Ray Tune's own logger callbacks, chosen in the sweep file.

    loggers: [tensorboard, csv, json, {mlflow: {tracking_uri: "http://mlflow:5000"}}, {wandb: {mode: offline}}]

``json`` (each trial's ``result.json``, which Tune's own ResultGrid reads; the analysis reads
the trial records) is always written. ``tensorboard`` (Tune's TBXLoggerCallback: event files in every trial folder) and
``csv`` (``progress.csv`` with every metric) are on by default. ``mlflow`` and ``wandb`` are
optional extras (``pip install 'drive-sweeps[mlflow]'`` / ``[wandb]``); a mapping passes its
options to Ray's MLflowLoggerCallback / WandbLoggerCallback (and from there to
``mlflow``/``wandb.init``).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

#: Logger name -> the module it needs, and what installs it.
LOGGERS: dict[str, tuple[str, str] | None] = {
    "json": None, "csv": None, "tensorboard": ("tensorboardX", "'ray[tune]'"),
    "mlflow": ("mlflow", "'drive-sweeps[mlflow]'"), "wandb": ("wandb", "'drive-sweeps[wandb]'"),
}
DEFAULT_LOGGERS = ["tensorboard", "csv", "json"]


def logger_entries(loggers: list[Any]) -> dict[str, dict[str, Any]]:
    """Validate the ``loggers`` list of a sweep file: name -> options.

    Raises:
        ValueError: an unknown name, a malformed entry, or a logger whose package is missing.
    """
    entries: dict[str, dict[str, Any]] = {}
    for item in loggers:
        if isinstance(item, str):
            name, options = item, {}
        elif isinstance(item, dict) and len(item) == 1 and isinstance(next(iter(item.values())) or {}, dict):
            name, options = next(iter(item.items()))
            options = options or {}
        else:
            raise ValueError(f"{item!r}: an entry is a logger name or {{name: {{options}}}}")
        if name not in LOGGERS:
            raise ValueError(f"{name!r} is not a logger; allowed: {', '.join(LOGGERS)}")
        need = LOGGERS[name]
        if need and importlib.util.find_spec(need[0]) is None:
            raise ValueError(f"{name} needs the {need[0]} package: pip install {need[1]}")
        _check_options(name, options)
        entries[name] = options
    return entries


#: Where a logger's options go: Ray's callback class (module, name); the others take none.
CALLBACKS = {"mlflow": ("ray.air.integrations.mlflow", "MLflowLoggerCallback"),
             "wandb": ("ray.air.integrations.wandb", "WandbLoggerCallback")}


def _check_options(name: str, options: dict[str, Any]) -> None:
    """Options the logger's callback would refuse (as a TypeError once the sweep has started)."""
    if not options:
        return
    if name not in CALLBACKS:
        raise ValueError(f"{name} takes no options, got {sorted(options)}")
    import inspect

    module, cls = CALLBACKS[name]
    params = inspect.signature(getattr(importlib.import_module(module), cls)).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return  # W&B: the rest goes to wandb.init
    allowed = [p for p in params if p != "self"]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"{name}: unknown option(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")


def make_callbacks(loggers: list[Any], name: str, experiment_path: str, remote: bool) -> list[Any]:
    """Ray Tune callbacks for the ``loggers`` of the sweep ``name`` stored at ``experiment_path``.

    MLflow logs to ``<experiment folder>/mlflow.db`` (SQLite) unless ``tracking_uri`` (or the
    ``MLFLOW_TRACKING_URI`` environment variable) says otherwise; with remote storage, set one.
    W&B logs to the project named like the sweep; ``mode: offline`` keeps the runs in the trial
    folders (``wandb/``) for a later ``wandb sync``.
    """
    from ray.tune.logger import JsonLoggerCallback, TBXLoggerCallback

    entries = logger_entries(loggers)
    callbacks: list[Any] = [JsonLoggerCallback()]
    if "csv" in entries:
        from sweeps.csv_logger import AllMetricsCSVCallback

        callbacks.append(AllMetricsCSVCallback())
    if "tensorboard" in entries:
        callbacks.append(TBXLoggerCallback())
    if "mlflow" in entries:
        from ray.air.integrations.mlflow import MLflowLoggerCallback

        options = {"experiment_name": name, **entries["mlflow"]}
        if "tracking_uri" not in options and not os.environ.get("MLFLOW_TRACKING_URI") and not remote:
            # MLflow's plain-folder store is in maintenance mode: a SQLite file beside the trials
            options["tracking_uri"] = f"sqlite:///{Path(experiment_path, 'mlflow.db')}"
        callbacks.append(MLflowLoggerCallback(**options))
    if "wandb" in entries:
        from ray.air.integrations.wandb import WandbLoggerCallback

        options = {"project": name, **entries["wandb"]}
        if options.get("mode") in ("offline", "disabled"):
            # Ray asks for an API key unless the environment says W&B runs without one
            os.environ.setdefault("WANDB_MODE", options["mode"])
        callbacks.append(WandbLoggerCallback(**options))
    return callbacks
