"""Accuracy figures: accuracy vs sparsity, and accuracy vs pruning cost (the Pareto view)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from analysis.aggregate import aggregate, attempted_levels, of_plan, primary_labels
from analysis.plots.style import (
    NoData,
    draw_lines,
    figure_legend,
    method_style,
    order_methods,
    pairs,
    panel_grid,
    panel_title,
    sparsity_axis,
    styled,
)

ACC_LABEL = {"test_acc": "final test accuracy (%)", "best_test_acc": "best test accuracy (%)"}
COST_LABEL = {"prune_samples": "pruning cost (forward+backward sample passes)",
              "prune_time_s": "pruning time (s)"}
SYMLOG_NOTE = "symmetric log: 0 = free"


def dense_reference(agg: pd.DataFrame, model: str, dataset: str, metric: str = "test_acc"
                    ) -> float | None:
    """Mean accuracy of the dense baseline (over seeds) for a model and data set, if any."""
    rows = agg[of_plan(agg["method"], "dense") & (agg["model"] == model) & (agg["dataset"] == dataset)]
    return None if rows.empty else float(rows[f"{metric}_mean"].mean())


def draw_dense(ax: Axes, agg: pd.DataFrame, model: str, dataset: str, metric: str) -> None:
    dense = dense_reference(agg, model, dataset, metric)
    if dense is not None:
        ax.axhline(100 * dense, color="black", linestyle="--", linewidth=1.2, label="dense",
                   zorder=1)


def panel_rows(n: int, legend_width: float = 1.8) -> tuple[Figure, list[Axes]]:
    cols = min(n, 2)
    fig, axes = panel_grid((n + cols - 1) // cols, cols, legend_width=legend_width)
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


@styled
def accuracy_vs_sparsity(df: pd.DataFrame, *, metric: str = "test_acc", model: str | None = None,
                         dataset: str | None = None) -> Figure:
    """Accuracy (mean over seeds, ± std band) against sparsity, one panel per model/data set.

    One line per method (its most complete variant, see
    :func:`analysis.aggregate.primary_labels`); the dense baseline is a dashed horizontal line;
    x is the share of weights remaining on a log scale, labelled with sparsity on top.
    Accuracy is in percent.
    """
    found = pairs(df, model, dataset)
    agg = aggregate(df)
    lines = primary_labels(agg[~of_plan(agg["method"], "dense")])
    if not found or lines.empty:
        raise NoData("no finished pruned trial to plot accuracy against sparsity")
    attempted = attempted_levels(df, agg)
    fig, axes = panel_rows(len(found))
    for ax, (m, d) in zip(axes, found):
        table = lines[(lines["model"] == m) & (lines["dataset"] == d)]
        draw_lines(ax, table, f"{metric}_mean", f"{metric}_std", scale=100,
                   attempted=attempted[(attempted["model"] == m) & (attempted["dataset"] == d)])
        draw_dense(ax, agg, m, d, metric)
        sparsity_axis(ax, table)
        ax.set_ylabel(ACC_LABEL.get(metric, metric))
        panel_title(ax, m, d)
    figure_legend(fig, axes, title="method (±1 std over seeds)")
    return fig


def pareto_front(cost: np.ndarray, acc: np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats on both (lower cost, higher accuracy),
    sorted by cost."""
    order = np.lexsort((-acc, cost))
    front, best = [], -np.inf
    for i in order:
        if acc[i] > best:
            front.append(i)
            best = acc[i]
    return np.array(front, dtype=int)


@styled
def accuracy_vs_cost(df: pd.DataFrame, sparsity: float, *, cost: str = "prune_samples",
                     metric: str = "test_acc", model: str | None = None,
                     dataset: str | None = None) -> Figure:
    """Accuracy against pruning cost at one sparsity: every method and variant is a point
    (mean over seeds, ± std bar), the Pareto front a grey step line.

    The x axis is symmetric-log so that free methods (0 sample passes) sit at 0.
    """
    sparsity = round(float(sparsity), 6)
    agg = aggregate(df)
    points = agg[(agg["sparsity"] == sparsity) & ~of_plan(agg["method"], "dense")]
    found = [p for p in pairs(df, model, dataset)
             if ((points["model"] == p[0]) & (points["dataset"] == p[1])).any()]
    if not found:
        raise NoData(f"no finished pruned trial at sparsity {sparsity:g} for the cost view")
    fig, axes = panel_rows(len(found))
    for ax, (m, d) in zip(axes, found):
        here = points[(points["model"] == m) & (points["dataset"] == d)]
        x = here[f"{cost}_mean"].to_numpy(dtype=float)
        y = 100 * here[f"{metric}_mean"].to_numpy(dtype=float)
        ok = ~(np.isnan(x) | np.isnan(y))
        front = pareto_front(x[ok], y[ok])
        ax.step(x[ok][front], y[ok][front], where="post", color="0.55", linewidth=1.2,
                label="Pareto front", zorder=1)
        for method in order_methods(here["method"].unique()):
            rows = here[here["method"] == method]
            colour, marker, _ = method_style(method)
            ax.errorbar(rows[f"{cost}_mean"], 100 * rows[f"{metric}_mean"],
                        yerr=100 * rows[f"{metric}_std"].fillna(0), fmt="none", ecolor=colour,
                        elinewidth=1, capsize=2, label=f"_{method} std")
            ax.plot(rows[f"{cost}_mean"], 100 * rows[f"{metric}_mean"], linestyle="none",
                    marker=marker, color=colour, markersize=7, markeredgecolor="white",
                    markeredgewidth=0.6, label=method, zorder=3)
        draw_dense(ax, agg, m, d, metric)
        positive = x[ok & (x > 0)]
        linthresh = 10 ** np.floor(np.log10(positive.min())) if positive.size else 1.0
        ax.set_xscale("symlog", linthresh=linthresh, linscale=0.4)
        ax.set_xlim(-0.3 * linthresh, (positive.max() if positive.size else 1.0) * 3)
        ax.set_xlabel(f"{COST_LABEL.get(cost, cost)}, {SYMLOG_NOTE}")
        ax.set_ylabel(ACC_LABEL.get(metric, metric))
        panel_title(ax, m, d, f"sparsity {100 * sparsity:.4g}%")
    figure_legend(fig, axes, title="method (±1 std)")
    return fig
