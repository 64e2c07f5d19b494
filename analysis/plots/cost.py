"""Pruning cost against IMP: speed-up per sparsity and the absolute cost per method."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis.aggregate import (
    aggregate,
    attempted_levels,
    of_plan,
    primary_labels,
    speedup,
)
from analysis.plots.style import (
    NoData,
    draw_lines,
    figure_legend,
    method_style,
    pairs,
    panel_grid,
    panel_title,
    sparsity_axis,
    styled,
)

COSTS = {
    "prune_time_s": ("speedup_time", "speed-up over IMP in pruning time (×, log)",
                     "pruning time (s, log)"),
    "prune_samples": ("speedup_samples", "speed-up over IMP in sample passes (×, log)",
                      "pruning cost (sample passes, log)"),
}


@styled
def cost_vs_imp(df: pd.DataFrame, *, cost: str = "prune_time_s", model: str | None = None,
                dataset: str | None = None) -> Figure:
    """Two panels per model/data set: the speed-up of each method over IMP per sparsity (IMP
    time / method time, log axis, IMP = 1 as a dashed line), and the absolute cost per method
    and sparsity (mean ± std over seeds, log axis).

    ``cost`` is ``prune_time_s`` or ``prune_samples``. Methods that cost nothing (0 sample
    passes: an infinite speed-up) cannot sit on a log axis; the panel title says which.
    """
    speed_col, speed_label, cost_label = COSTS[cost]
    agg = aggregate(df)
    imp = of_plan(agg["method"], "imp")
    if not imp.any():
        raise NoData("no finished IMP trial: no speed-up over IMP")
    found = pairs(df, model, dataset)
    primary = primary_labels(agg[~of_plan(agg["method"], "dense")])
    reference = method_style(str(agg.loc[imp, "method"].iloc[0]))[0]
    fast = speedup(primary)
    attempted = attempted_levels(df, agg)
    fig, axes = panel_grid(len(found), 2, legend_width=1.8)
    for (ax_speed, ax_cost), (m, d) in zip(axes, found):
        here = (fast["model"] == m) & (fast["dataset"] == d)
        tried = attempted[(attempted["model"] == m) & (attempted["dataset"] == d)]
        shown = fast[here & ~of_plan(fast["method"], "imp")]
        free = sorted(shown.loc[np.isinf(shown[speed_col]), "label"].unique())
        draw_lines(ax_speed, shown.assign(**{speed_col: shown[speed_col].replace(np.inf, np.nan)}),
                   speed_col, attempted=tried, log=True)
        ax_speed.axhline(1.0, color=reference, linestyle="--", linewidth=1.2,
                         label="IMP = 1×")
        ax_speed.set_ylabel(speed_label)
        panel_title(ax_speed, m, d, "speed-up over IMP" + (f"\n(free, ∞: {', '.join(free)})"
                                                           if free else ""))
        costs = primary[(primary["model"] == m) & (primary["dataset"] == d)]
        costs = costs[costs[f"{cost}_mean"] > 0]
        draw_lines(ax_cost, costs, f"{cost}_mean", f"{cost}_std", attempted=tried, log=True)
        ax_cost.set_ylabel(cost_label)
        panel_title(ax_cost, m, d, "absolute cost")
        for ax in (ax_speed, ax_cost):
            sparsity_axis(ax, costs)
    figure_legend(fig, axes.flat, title="method")
    return fig

