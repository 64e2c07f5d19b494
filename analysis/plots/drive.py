"""DRIVE ablations: warm-up epochs x pruning iterations, and the score's term settings.

Each figure varies one group of DRIVE settings and holds the others at their most common
values in the data (named in the panel title), so no two ablations are mixed in one cell.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure

from analysis.aggregate import SHORT_NAMES, aggregate, completed, swept_columns
from analysis.plots.style import (
    NoData, fmt_pct, figure_legend, pairs, panel_grid, panel_title, styled,
)

SCHEDULE = ["warmup_epochs", "prune_iterations"]
TERMS = ["drive_weights", "drive_normalize", "drive_combine"]
_MARKERS = "osD^vPX"


def fixed_rows(df: pd.DataFrame, vary: list[str], hold: list[str]) -> tuple[pd.DataFrame, str]:
    """Complete DRIVE rows at the most common combination of the ``hold`` columns (those not
    in ``vary``), and a text naming that combination."""
    rows = completed(df)
    rows = rows[rows["method"] == "drive"]
    if rows.empty:
        return rows, ""
    hold = [c for c in hold if c not in vary]
    counts = rows.groupby(hold, dropna=False).size().sort_values(ascending=False, kind="stable")
    common = counts.index[0] if len(hold) > 1 else (counts.index[0],)
    keep = np.ones(len(rows), dtype=bool)
    for col, value in zip(hold, common):
        keep &= (rows[col].isna() if pd.isna(value) else rows[col] == value).to_numpy(dtype=bool)
    text = ", ".join(f"{SHORT_NAMES.get(c, c.rsplit('.', 1)[-1])} {v}"
                     for c, v in zip(hold, common))
    return rows[keep], text


def held_columns(df: pd.DataFrame, vary: list[str]) -> list[str]:
    """The DRIVE settings an ablation of ``vary`` holds fixed."""
    return SCHEDULE + TERMS + ["epochs"] + [c for c in swept_columns(df) if c not in vary]


@styled
def drive_heatmap(df: pd.DataFrame, sparsity: float, *, metric: str = "test_acc",
                  model: str | None = None, dataset: str | None = None) -> Figure:
    """Heatmap of DRIVE's accuracy (mean ± std over seeds, %) over warm-up epochs (rows) x
    pruning iterations T (columns) at one sparsity; missing cells are grey and marked '—'."""
    sparsity = round(float(sparsity), 6)
    rows, held = fixed_rows(df[df["sparsity"] == sparsity], SCHEDULE, held_columns(df, SCHEDULE))
    by = ["model", "dataset"] + SCHEDULE
    agg = aggregate(rows, metrics=[metric], by=by) if not rows.empty else None
    found = [p for p in pairs(rows, model, dataset)
             if agg is not None and len(agg[(agg.model == p[0]) & (agg.dataset == p[1])]) > 1]
    if not found:
        raise NoData(f"no DRIVE warm-up/iteration variants at sparsity {sparsity:g}")
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
        panel_title(ax, m, d, f"DRIVE at sparsity {fmt_pct(100 * sparsity)}%\n(held: {held})")
    return fig


@styled
def drive_terms(df: pd.DataFrame, sparsity: float | None = None, *, metric: str = "test_acc",
                model: str | None = None, dataset: str | None = None) -> Figure:
    """DRIVE's accuracy (mean ± std over seeds, %) by score term setting (weights of |w|,
    |w·g|, |g|; normalisation; combination), one series per sparsity (or only ``sparsity``)."""
    frame = df if sparsity is None else df[df["sparsity"] == round(float(sparsity), 6)]
    rows, held = fixed_rows(frame, TERMS, held_columns(df, TERMS))
    if not rows.empty:  # only levels where settings were compared
        settings = rows.groupby("sparsity")[TERMS].apply(lambda f: len(f.drop_duplicates()))
        rows = rows[rows["sparsity"].isin(settings[settings > 1].index)]
    if rows.empty:
        raise NoData("no DRIVE term-setting variants" + (
            "" if sparsity is None else f" at sparsity {float(sparsity):g}"))
    rows = rows.assign(setting="w " + rows["drive_weights"].astype(str) + " · "
                       + rows["drive_normalize"].astype(str) + " · "
                       + rows["drive_combine"].astype(str))
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
        panel_title(ax, m, d, f"DRIVE score terms\n(held: {held})")
        ax.set_ylabel("w (of |w|, |w·g|, |g|) · norm · combine")
    figure_legend(fig, axes.flat)
    return fig
