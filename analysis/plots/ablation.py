"""Ablations of a method's settings: warm-up epochs x pruning iterations (DRIVE and any method
pruned after a warm-up), and a method's own arguments (DRIVE's score terms, a plugin's
hyperparameters).

Each figure varies one group of a method's settings and holds the others at their most common
values in the data (named in the panel title), so no two ablations are mixed in one cell.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure

from analysis import methods
from analysis.aggregate import aggregate, completed, short_name, swept_columns
from analysis.configs import list_text
from analysis.plots.style import (
    NoData,
    figure_legend,
    fmt_pct,
    pairs,
    panel_grid,
    panel_title,
    styled,
)
from analysis.results import CFG_PREFIX

SCHEDULE = ["warmup_epochs", "prune_iterations"]
_MARKERS = "osD^vPX"


def argument_columns(df: pd.DataFrame, method: str) -> list[str]:
    """The ``cfg.*`` columns of ``method``'s own arguments (its section), in their order."""
    known = methods.info(method)
    prefix = f"{CFG_PREFIX}{known.section}."
    found = [c for c in df.columns if known.section and c.startswith(prefix)]
    order = list(known.defaults)
    return sorted(found, key=lambda c: (order.index(c[len(prefix):]) if c[len(prefix):] in order
                                        else len(order), c))


def fixed_rows(df: pd.DataFrame, method: str, vary: list[str], hold: list[str]
               ) -> tuple[pd.DataFrame, str]:
    """Complete rows of ``method`` at the most common combination of the ``hold`` columns
    (those not in ``vary``), and a text naming that combination."""
    rows = completed(df)
    rows = rows[rows["method"] == method]
    if rows.empty:
        return rows, ""
    hold = [c for c in dict.fromkeys(hold) if c not in vary and c in rows]
    counts = rows.groupby(hold, dropna=False).size().sort_values(ascending=False, kind="stable")
    common = counts.index[0] if len(hold) > 1 else (counts.index[0],)
    keep = np.ones(len(rows), dtype=bool)
    for col, value in zip(hold, common):
        keep &= (rows[col].isna() if pd.isna(value) else rows[col] == value).to_numpy(dtype=bool)
    text = ", ".join(f"{short_name(c)} {_text(v)}" for c, v in zip(hold, common) if not pd.isna(v))
    return rows[keep], text


def held_columns(df: pd.DataFrame, method: str, vary: list[str]) -> list[str]:
    """The settings of ``method`` an ablation of ``vary`` holds fixed."""
    return [*SCHEDULE, *argument_columns(df, method), "epochs",
            *(c for c in swept_columns(df) if c not in vary)]


def _text(value: object) -> str:
    return list_text(value) if isinstance(value, str) and value.startswith("[") else str(value)


def _varied(df: pd.DataFrame, method: str, vary: list[str]) -> bool:
    rows = completed(df)
    rows = rows[rows["method"] == method]
    return bool(vary) and not rows.empty and len(rows[vary].drop_duplicates()) > 1


def schedule_method(df: pd.DataFrame) -> str | None:
    """The first method pruned after a warm-up whose warm-up or T was varied."""
    found = [m for m in methods.with_plan(methods.order(df["method"].dropna()), "after_warmup")
             if _varied(df, m, SCHEDULE)]
    return found[0] if found else None


def argument_method(df: pd.DataFrame) -> str | None:
    """The first method whose own arguments were varied."""
    found = [m for m in methods.order(df["method"].dropna())
             if _varied(df, m, argument_columns(df, m))]
    return found[0] if found else None


@styled
def warmup_heatmap(df: pd.DataFrame, sparsity: float, *, metric: str = "test_acc",
                   method: str | None = None, model: str | None = None,
                   dataset: str | None = None) -> Figure:
    """Heatmap of a method's accuracy (mean ± std over seeds, %) over warm-up epochs (rows) x
    pruning iterations T (columns) at one sparsity (the method: DRIVE, or the first method
    pruned after a warm-up whose schedule was varied); missing cells are grey and marked '—'."""
    sparsity = round(float(sparsity), 6)
    here = df[df["sparsity"] == sparsity]
    method = method or schedule_method(here)
    rows, held = (fixed_rows(here, method, SCHEDULE, held_columns(df, method, SCHEDULE))
                  if method else (here.iloc[:0], ""))
    by = ["model", "dataset"] + SCHEDULE
    agg = aggregate(rows, metrics=[metric], by=by) if not rows.empty else None
    found = [p for p in pairs(rows, model, dataset)
             if agg is not None and len(agg[(agg.model == p[0]) & (agg.dataset == p[1])]) > 1]
    if not found:
        raise NoData(f"no warm-up/iteration variants of a method pruned after a warm-up at "
                     f"sparsity {sparsity:g}")
    name = methods.label(method)
    fig, axes = panel_grid(1, len(found), size=(4.6, 3.8), legend_width=0)
    cmap = colormaps["viridis"].with_extremes(bad="0.88")
    for ax, (m, d) in zip(axes.flat, found):
        here = agg[(agg["model"] == m) & (agg["dataset"] == d)]
        mean = here.pivot(index="warmup_epochs", columns="prune_iterations",
                          values=f"{metric}_mean").sort_index().sort_index(axis=1) * 100
        std = here.pivot(index="warmup_epochs", columns="prune_iterations",
                         values=f"{metric}_std").reindex_like(mean) * 100
        values = np.ma.masked_invalid(mean.to_numpy(dtype=float))
        image = ax.imshow(values, cmap=cmap, aspect="auto")
        low, high = (values.min(), values.max()) if values.count() else (0, 1)
        for (i, j), v in np.ndenumerate(mean.to_numpy(dtype=float)):
            s = std.iat[i, j]
            text = "—" if np.isnan(v) else f"{v:.1f}" + ("" if np.isnan(s) else f"\n±{s:.1f}")
            dark = not np.isnan(v) and (v - low) / ((high - low) or 1) < 0.55
            ax.text(j, i, text, ha="center", va="center", fontsize=8.5,
                    color="white" if dark else "black")
        ax.set_xticks(range(mean.shape[1]), [str(c) for c in mean.columns])
        ax.set_yticks(range(mean.shape[0]), [str(r) for r in mean.index])
        ax.set_xlabel("pruning iterations T")
        ax.set_ylabel("warm-up epochs")
        ax.grid(False)
        fig.colorbar(image, ax=ax, label="test accuracy (%)", shrink=0.9)
        panel_title(ax, m, d, f"{name} at sparsity {fmt_pct(100 * sparsity)}%\n(held: {held})")
    return fig


@styled
def method_arguments(df: pd.DataFrame, sparsity: float | None = None, *, metric: str = "test_acc",
                     method: str | None = None, model: str | None = None,
                     dataset: str | None = None) -> Figure:
    """A method's accuracy (mean ± std over seeds, %) by the setting of its own arguments
    (DRIVE: the weights of |w|, |w·g|, |g|, normalisation, combination), one series per sparsity
    (or only ``sparsity``); the method: the first whose arguments were varied."""
    frame = df if sparsity is None else df[df["sparsity"] == round(float(sparsity), 6)]
    method = method or argument_method(frame)
    columns = argument_columns(df, method) if method else []
    rows, held = (fixed_rows(frame, method, columns, held_columns(df, method, columns))
                  if columns else (frame.iloc[:0], ""))
    if not rows.empty:  # only levels where settings were compared
        settings = rows.groupby("sparsity")[columns].apply(lambda f: len(f.drop_duplicates()))
        rows = rows[rows["sparsity"].isin(settings[settings > 1].index)]
    if rows.empty:
        raise NoData("no variants of a method's arguments" + (
            "" if sparsity is None else f" at sparsity {float(sparsity):g}"))
    rows = rows.assign(setting=rows[columns].apply(
        lambda r: " · ".join(f"{short_name(c)} {_text(r[c])}" for c in columns), axis=1))
    agg = aggregate(rows, metrics=[metric], by=["model", "dataset", "setting", "sparsity"])
    found = pairs(rows, model, dataset)
    settings = sorted(agg["setting"].unique())
    levels = sorted(agg["sparsity"].unique())
    colours = colormaps["viridis"](np.linspace(0.0, 0.85, max(len(levels), 2)))
    height = max(3.0, 0.38 * len(settings) + 1.4)
    fig, axes = panel_grid(1, len(found), size=(4.8, height), legend_width=1.6)
    for ax, (m, d) in zip(axes.flat, found):
        here = agg[(agg["model"] == m) & (agg["dataset"] == d)]
        for k, level in enumerate(levels):
            series = here[here["sparsity"] == level].set_index("setting").reindex(settings)
            y = np.arange(len(settings)) + (k - (len(levels) - 1) / 2) * 0.8 / max(len(levels), 1)
            x = 100 * series[f"{metric}_mean"].to_numpy(dtype=float)
            ax.errorbar(x, y, xerr=100 * series[f"{metric}_std"].fillna(0).to_numpy(dtype=float),
                        fmt="none", ecolor=colours[k], elinewidth=1, capsize=0)
            ax.plot(x, y, linestyle="none", marker=_MARKERS[k % len(_MARKERS)], color=colours[k],
                    label=f"sparsity {fmt_pct(100 * level)}%")
        ax.set_yticks(range(len(settings)), settings)
        ax.invert_yaxis()
        ax.set_xlabel("test accuracy (%)")
        panel_title(ax, m, d, f"{methods.label(method)}: its arguments\n(held: {held})")
        ax.set_ylabel(" · ".join(short_name(c) for c in columns))
    figure_legend(fig, axes.flat)
    return fig
