"""Experiment configs as flat dotted dicts, resolved with ``drive.config``.

A record's ``start`` line holds the full resolved config; metrics built by hand (or by an older
version) may hold part of one, and :func:`resolve_config` fills in the defaults the experiment
ran with.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def weights_text(weights: Any) -> str | None:
    """DRIVE's term weights as text: ``[1.0, 1.0, 0.5]`` -> ``'1,1,0.5'``."""
    if isinstance(weights, str):
        weights = json.loads(weights)
    return None if weights is None else ",".join(  # null: a NaN weight JSON could not hold
        "nan" if w is None else f"{float(w):g}" for w in weights)


def method_name(method: str) -> str:
    """How tables and legends name a method: a plugin (``package.module:NAME``) by its registry
    label when importable here, else by ``NAME``; a built-in by its config name."""
    if ":" not in method:
        return method
    try:
        from drive.methods import get_method

        return get_method(method).display
    except (ImportError, LookupError):
        return method.rsplit(":", 1)[-1]


def method_plan(method: str | None) -> str | None:
    """The stage plan of a method in the registry (``after_warmup``, ``imp``, ...), or None for a
    method that is not importable here."""
    try:
        from drive.methods import get_method

        return get_method(method or "").plan
    except (ImportError, LookupError):
        return None


def method_defaults(method: str) -> dict[str, Any]:
    """The tidy-table values a run of ``method`` has with the default config: its variant
    columns (``prune_iterations``, ``warmup_epochs``, ``drive_*``) and every ``cfg.*`` field
    (lists as JSON text, as in the table)."""
    try:
        from drive.config import ExperimentConfig
    except ImportError:  # analysis works without the pruner library
        return {}
    cfg = ExperimentConfig()
    out: dict[str, Any] = {f"cfg.{k}": json.dumps(v) if isinstance(v, list) else v
                           for k, v in flatten(cfg.model_dump(mode="json")).items()}
    out.update(prune_iterations=default_iterations(method), warmup_epochs=cfg.warmup_epochs,
               drive_weights=weights_text(cfg.drive.weights), drive_normalize=cfg.drive.normalize,
               drive_combine=cfg.drive.combine)
    return out


def default_iterations(method: str | None) -> int | None:
    """Pruning iterations T a method uses when its config leaves them unset."""
    try:
        from drive.methods import get_method
    except ImportError:  # analysis works without the pruner library
        return None
    try:
        return get_method(method or "").iterations
    except LookupError:  # a plugin method that is not importable here
        return None


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{'a': {'b': 1}}`` -> ``{'a.b': 1}``; dotted keys and lists are kept as they are."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def resolve_config(*sources: Mapping[str, Any]) -> dict[str, Any]:
    """The flat resolved experiment config from (partial) configs, nested or dotted.

    When ``drive.config`` validates the merged fields, its defaults fill in the rest; otherwise
    the fields are kept as given.
    """
    flat: dict[str, Any] = {}
    for source in sources:
        flat.update(flatten(source))
    try:
        from drive.config import ExperimentConfig, build_config, set_dotted
    except ImportError:
        return flat
    tree: dict[str, Any] = {}
    try:
        for key, value in flat.items():
            if key.split(".", 1)[0] in ExperimentConfig.model_fields:
                set_dotted(tree, key, value)
        return flatten(build_config(tree).model_dump(mode="json"))
    except ValueError:  # not an experiment config we know: keep what was given
        return flat
