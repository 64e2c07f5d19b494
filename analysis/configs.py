"""Experiment configs as flat dotted dicts, with the defaults they ran with.

A record's ``start`` line holds the full resolved config; metrics built by hand (or by an older
version) may hold part of one, and :func:`resolve_config` fills in the defaults of the generic
sections (:mod:`drive.config`, read without building a config: no method is imported) and of
the method's arguments (from its ``method_info``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from analysis.methods import info


def list_text(values: Any) -> str | None:
    """A list as compact text: ``[1.0, 1.0, 0.5]`` (or its JSON) -> ``'1,1,0.5'``."""
    if isinstance(values, str):
        try:
            values = json.loads(values)
        except ValueError:
            return values
    if not isinstance(values, list):
        return None if values is None else str(values)
    return ",".join("nan" if v is None else f"{v:g}" if isinstance(v, (int, float)) else str(v)
                    for v in values)


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{'a': {'b': 1}}`` -> ``{'a.b': 1}``; dotted keys and lists are kept as they are."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def generic_defaults() -> dict[str, Any]:
    """The defaults of every generic config field, flat (``train.lr``, ``method``, ...)."""
    from drive.config import ExperimentConfig

    out: dict[str, Any] = {}
    for name, field in ExperimentConfig.model_fields.items():
        default = field.get_default(call_default_factory=True)
        if hasattr(default, "model_dump"):
            out.update(flatten({name: default.model_dump(mode="json")}))
        else:
            out[name] = default
    return out


def method_defaults(method: str) -> dict[str, Any]:
    """The tidy-table values a run of ``method`` has with the default config: its variant
    columns (``prune_iterations``, ``warmup_epochs``) and every ``cfg.*`` field, its arguments'
    included (lists as JSON text, as in the table)."""
    known = info(method)
    flat = {**generic_defaults(), **flatten({known.section: known.defaults} if known.section else {})}
    out: dict[str, Any] = {f"cfg.{k}": json.dumps(v) if isinstance(v, list) else v for k, v in flat.items()}
    out.update(prune_iterations=known.iterations, warmup_epochs=flat.get("warmup_epochs"))
    return out


def resolve_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The flat resolved experiment config of a (partial) config, nested or dotted: the given
    fields over the generic defaults and the method's argument defaults."""
    given = flatten(config)
    method = given.get("method", "drive")
    known = info(method)
    defaults = generic_defaults()
    if known.section:
        defaults.update(flatten({known.section: known.defaults}))
    return {**defaults, **given}
