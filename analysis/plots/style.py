"""Shared look of every figure: colours, markers, axes, legends and saving.

Each method keeps one colour (Okabe-Ito, colour-blind safe), marker and line style in every
figure (as its records describe it, :mod:`analysis.methods`), and methods appear in their
order (the built-ins' first). Figures are built with
:class:`matplotlib.figure.Figure` directly, which renders with Agg and touches no global
pyplot state.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

from analysis import methods
from analysis.aggregate import completed, headline_levels

P = ParamSpec("P")
R = TypeVar("R")

RC = {
    "font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 9,
    "xtick.labelsize": 9, "ytick.labelsize": 9, "axes.grid": True, "grid.alpha": 0.3,
    "grid.linewidth": 0.6, "axes.spines.top": False, "axes.spines.right": False,
    "lines.linewidth": 1.8, "lines.markersize": 6, "savefig.dpi": 200, "pdf.fonttype": 42,
    "figure.constrained_layout.use": True,
}
PANEL_SIZE = (4.8, 3.5)


class NoData(ValueError):
    """The frame lacks what a figure needs; ``str()`` says what (the report prints it)."""


def method_style(method: str) -> tuple[str, str, str]:
    """(colour, marker, line style) of ``method``, the same in every figure."""
    return methods.info(method).style


def styled(func: Callable[P, R]) -> Callable[P, R]:
    """Build the figure under the project's rc settings."""
    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with mpl.rc_context(RC):
            return func(*args, **kwargs)
    return wrapper


def pairs(df: pd.DataFrame, model: str | None = None, dataset: str | None = None
          ) -> list[tuple[str, str]]:
    """The (model, data set) pairs with complete rows, optionally only the given ones."""
    done = completed(df)
    if model is not None:
        done = done[done["model"] == model]
    if dataset is not None:
        done = done[done["dataset"] == dataset]
    found = done[["model", "dataset"]].dropna().drop_duplicates()
    return sorted(map(tuple, found.itertuples(index=False)))


def panel_grid(n_rows: int, n_cols: int, size: tuple[float, float] = PANEL_SIZE,
               legend_width: float = 1.6) -> tuple[Figure, np.ndarray]:
    """A figure with ``n_rows`` x ``n_cols`` panels and room for a legend on the right."""
    fig = Figure(figsize=(size[0] * n_cols + legend_width, size[1] * n_rows))
    axes = np.atleast_2d(fig.subplots(n_rows, n_cols, squeeze=False))
    return fig, axes


def figure_legend(fig: Figure, axes: Iterable[Axes], title: str | None = None) -> None:
    """One legend for all panels, outside the plotting area (it never covers data)."""
    handles: dict[str, Any] = {}
    for ax in axes:
        for h, label in zip(*ax.get_legend_handles_labels()):
            if not label.startswith("_"):
                handles.setdefault(label, h)
    # methods in their fixed order first, then references (dense, IMP = 1x, Pareto front, ...)
    def key(label: str) -> tuple[bool, tuple[int, str]]:
        method = methods.of_label(label)
        return method is None or not methods.info(method).prunes, methods.order_key(method or label)

    ordered = sorted(handles, key=key)
    handles = {label: handles[label] for label in ordered}
    if handles:
        fig.legend(handles.values(), handles.keys(), loc="outside right upper", title=title,
                   frameon=False)


def fmt_pct(x: float, digits: int = 4) -> str:
    """A percentage without trailing zeros: 90 -> '90', 99.5 -> '99.5', 0.05 -> '0.05'."""
    return f"{x:.{digits}g}"


def thin(values: Sequence[float], max_ticks: int = 8) -> list[float]:
    """A subset of sorted log-scale positions, far enough apart for their labels not to touch."""
    values = sorted(set(v for v in values if v > 0), reverse=True)
    if len(values) <= 2:
        return values
    span = math.log10(values[0]) - math.log10(values[-1])
    gap = max(span / max_ticks, 0.05)
    kept = [values[0]]
    for v in values[1:]:
        if math.log10(kept[-1]) - math.log10(v) >= gap:
            kept.append(v)
    if kept[-1] != values[-1]:  # always show the highest sparsity
        if len(kept) > 1 and math.log10(kept[-1]) - math.log10(values[-1]) < gap:
            kept.pop()
        kept.append(values[-1])
    return kept


def remaining_pct(sparsity: pd.Series | np.ndarray | float) -> Any:
    """Sparsity (0..1) -> weights remaining (%), the x of every sparsity plot."""
    return 100.0 * (1.0 - np.asarray(sparsity, dtype=float))


def sparsity_axis(ax: Axes, table: pd.DataFrame) -> None:
    """The literature's x axis: weights remaining (%) on a log scale, decreasing to the right,
    spanning every level in ``table`` (method, sparsity), with ticks at the sweep's headline
    levels (:func:`~analysis.aggregate.headline_levels`); sparsity (%) labels them on top."""
    pruned = table[(table["sparsity"] > 0) & (table["sparsity"] < 1)]
    ax.set_xscale("log")
    ticks = thin(list(remaining_pct(headline_levels(pruned)))) if len(pruned) else []
    if len(pruned):
        x = remaining_pct(pruned["sparsity"])
        ax.set_xlim(x.max() * 1.15, x.min() / 1.15)  # inverted: 100% on the left
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticks(ticks, [fmt_pct(t, 3) for t in ticks])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("weights remaining (%, log scale)")
    top = ax.secondary_xaxis("top")
    top.set_xticks(ticks, [fmt_pct(100 - t) for t in ticks])
    top.xaxis.set_minor_locator(NullLocator())
    top.set_xlabel("sparsity (%)", fontsize=9)
    top.tick_params(labelsize=8)


def draw_lines(ax: Axes, table: pd.DataFrame, y: str, std: str | None = None, scale: float = 1.0,
               attempted: pd.DataFrame | None = None, log: bool = False) -> None:
    """One line per ``label`` over sparsity (x = weights remaining), in method order.

    ``table`` has method, label, sparsity and the ``y`` (and ``std``) columns. Sparsity levels
    in ``attempted`` (label, sparsity) without a value in ``table`` become gaps in the line,
    so a failed level is never bridged. The band is ``y`` ± ``std`` (clipped above 0 on a
    log axis).
    """
    for label, rows in table.groupby("label", sort=False):
        rows = rows.sort_values("sparsity")
        if attempted is not None:
            tried = attempted.loc[attempted["label"] == label, "sparsity"]
            rows = (rows.set_index("sparsity")
                    .reindex(sorted(set(rows["sparsity"]) | set(tried))).reset_index())
            rows["method"] = rows["method"].ffill().bfill()
        colour, marker, linestyle = method_style(str(rows["method"].iloc[0]))
        x = remaining_pct(rows["sparsity"])
        values = rows[y].to_numpy(dtype=float) * scale
        if np.isnan(values).all():
            continue
        ax.plot(x, values, color=colour, marker=marker, linestyle=linestyle, label=str(label))
        if std is not None:
            spread = rows[std].to_numpy(dtype=float) * scale
            ok = ~np.isnan(spread)
            if ok.any():
                low = values - spread
                if log:
                    low = np.where(low > 0, low, values / 10)
                ax.fill_between(x, low, values + spread, where=ok, color=colour, alpha=0.18,
                                linewidth=0, interpolate=False, label=f"_{label} spread")
    if log:
        ax.set_yscale("log")


def save_figure(fig: Figure, out_dir: str | Path, name: str) -> list[Path]:
    """Write ``fig`` as ``name.png`` and ``name.pdf`` in ``out_dir``; return both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    with mpl.rc_context(RC):
        for path in paths:
            fig.savefig(path, bbox_inches="tight")
    return paths


def panel_title(ax: Axes, model: str, dataset: str, extra: str = "") -> None:
    ax.set_title(f"{model} on {dataset}" + (f" — {extra}" if extra else ""))


def order_methods(names: Iterable[str]) -> list[str]:
    """``names`` in the order of every table and figure."""
    return methods.order(names)
