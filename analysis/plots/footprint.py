"""What sparsity buys: accuracy against the FLOPs the masks leave (theory, per sample)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis.aggregate import aggregate, of_plan, primary_labels
from analysis.plots.accuracy import ACC_LABEL, draw_dense, panel_rows
from analysis.plots.style import (NoData, figure_legend, fmt_pct, method_style, pairs,
                                  panel_title, styled, thin)


@styled
def accuracy_vs_flops(df: pd.DataFrame, *, metric: str = "test_acc", model: str | None = None,
                      dataset: str | None = None) -> Figure:
    """Accuracy (mean over seeds, ± std band) against the FLOPs the masks leave of a dense
    forward pass (mean over seeds, %, log scale), one panel per model/data set and one line per
    method (its primary variant): the same results as accuracy vs sparsity, placed by what they
    cost in theory. A method that keeps the costly layers sits to the right of one that prunes
    them at the same sparsity. The dense baseline is a dashed line."""
    agg = aggregate(df)
    lines = primary_labels(agg[~of_plan(agg["method"], "dense")])
    lines = lines[lines["flops_fraction_mean"].notna()]
    found = [p for p in pairs(df, model, dataset)
             if ((lines["model"] == p[0]) & (lines["dataset"] == p[1])).any()]
    if not found or lines.empty:
        raise NoData("no finished pruned trial with FLOPs in its record")
    fig, axes = panel_rows(len(found))
    for ax, (m, d) in zip(axes, found):
        table = lines[(lines["model"] == m) & (lines["dataset"] == d)]
        for label, rows in table.groupby("label", sort=False):
            rows = rows.sort_values("flops_fraction_mean", ascending=False)
            colour, marker, linestyle = method_style(str(rows["method"].iloc[0]))
            x = 100 * rows["flops_fraction_mean"].to_numpy(dtype=float)
            y = 100 * rows[f"{metric}_mean"].to_numpy(dtype=float)
            spread = 100 * rows[f"{metric}_std"].to_numpy(dtype=float)
            ax.plot(x, y, color=colour, marker=marker, linestyle=linestyle, label=str(label))
            ok = ~np.isnan(spread)
            if ok.any():
                ax.fill_between(x, y - spread, y + spread, where=ok, color=colour, alpha=0.18,
                                linewidth=0, label=f"_{label} spread")
        draw_dense(ax, agg, m, d, metric)
        x = 100 * table["flops_fraction_mean"].to_numpy(dtype=float)
        ax.set_xscale("log")
        ax.set_xlim(x.max() * 1.3, x.min() / 1.3)  # inverted: dense on the left
        ticks = thin(list(x))
        ax.set_xticks(ticks, [fmt_pct(t, 2) for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel("FLOPs remaining (% of dense, log scale; theory, per sample)")
        ax.set_ylabel(ACC_LABEL.get(metric, metric))
        panel_title(ax, m, d)
    figure_legend(fig, axes, title="method (±1 std over seeds)")
    return fig
