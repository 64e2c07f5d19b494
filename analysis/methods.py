"""What the analysis knows of a method: what its records say (``method_info`` in every
``start`` line, :meth:`drive.method.Method.info`), so that a report needs neither torch nor the
method's own code: a user's method is labelled, coloured and placed like a built-in even where
its package is not installed.

:func:`learn` takes the method infos of a tidy frame (``analysis.results.tidy`` calls it for
every frame it builds or reads back); :func:`info` answers for one method name, with a neutral
default for a method no record described (a frame built by hand).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: Styles of methods no record described: stable per name.
_EXTRA = [("#332288", "h", "-"), ("#882255", "*", "--"), ("#117733", "p", "-."),
          ("#AA4499", "<", ":")]
#: Position after every method a record placed.
_LAST = 10_000


@dataclass(frozen=True)
class MethodInfo:
    """A method as its records describe it (see :meth:`drive.method.Method.info`)."""

    name: str
    label: str
    plan: str | None = None
    color: str = "#332288"
    marker: str = "h"
    linestyle: str = "-"
    order: int = _LAST
    iterations: int | None = None
    section: str | None = None
    defaults: dict[str, Any] = field(default_factory=dict)
    short: dict[str, str] = field(default_factory=dict)

    @property
    def style(self) -> tuple[str, str, str]:
        return self.color, self.marker, self.linestyle

    @property
    def prunes(self) -> bool:
        return self.plan != "dense"


_KNOWN: dict[str, MethodInfo] = {}


def parse(name: str, raw: Mapping[str, Any] | str | None) -> MethodInfo | None:
    """A :class:`MethodInfo` from a record's ``method_info`` (a mapping or its JSON text)."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return None
    if not isinstance(raw, Mapping):
        return None
    known = {k: raw[k] for k in ("label", "plan", "color", "marker", "linestyle", "order",
                                 "iterations", "section", "defaults", "short") if raw.get(k) is not None}
    known.setdefault("label", short_name(name))
    return MethodInfo(name=name, **known)


def learn(pairs: Iterable[tuple[Any, Any]]) -> None:
    """Remember the ``(method, method_info)`` pairs (the first description of a method wins)."""
    for name, raw in pairs:
        if isinstance(name, str) and name not in _KNOWN:
            parsed = parse(name, raw)
            if parsed is not None:
                _KNOWN[name] = parsed


def short_name(name: str) -> str:
    """A plugin known only by its import path is named by what follows the colon."""
    return name.rsplit(":", 1)[-1]


def info(name: object) -> MethodInfo:
    """What is known of the method ``name`` (a neutral default when no record described it)."""
    name = str(name)
    if name in _KNOWN:
        return _KNOWN[name]
    color, marker, linestyle = _EXTRA[sum(map(ord, name)) % len(_EXTRA)]
    return MethodInfo(name=name, label=short_name(name), color=color, marker=marker,
                      linestyle=linestyle)


def argument_label(field: str) -> str | None:
    """How labels name a method argument ``<section>.<field>`` (its ``title``), if a record
    described the method."""
    section, _, name = field.rpartition(".")
    for known in _KNOWN.values():
        if known.section == section and name in known.short:
            return known.short[name]
    return None


def label(name: object) -> str:
    return info(name).label


def display_name(name: object) -> str:
    """How tables and legends name a method: a built-in by its config name (``snip``), a
    user's method (``package.module:NAME``) by its label, so long paths do not crowd them."""
    name = str(name)
    return info(name).label if ":" in name else name


def of_label(text: str) -> str | None:
    """The method a table or legend label (``drive (warm-up 1, T 10)``) belongs to, if any."""
    found = [n for n in _KNOWN if text == display_name(n) or text.startswith(display_name(n) + " (")]
    return max(found, key=lambda n: len(display_name(n))) if found else None


def plan(name: object) -> str | None:
    return info(name).plan


def order_key(name: object) -> tuple[int, str]:
    """Sort key: the built-ins in their order, then the other methods by name."""
    return info(name).order, str(name)


def order(names: Iterable[object]) -> list[str]:
    """``names`` in :func:`order_key` order, each once."""
    return sorted(dict.fromkeys(map(str, names)), key=order_key)


def with_plan(names: Iterable[object], *plans: str) -> list[str]:
    """The methods of ``names`` whose plan is one of ``plans``."""
    return [str(n) for n in dict.fromkeys(names) if plan(n) in plans]
