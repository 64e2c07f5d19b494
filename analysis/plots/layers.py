"""Per-layer density of each method at one sparsity: where layer collapse shows, beside each
layer's share of the dense network's FLOPs (where the work is, and so what pruning it buys)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis.aggregate import VARIANTS, aggregate, of_plan, primary_at
from analysis.plots.style import (
    NoData,
    figure_legend,
    fmt_pct,
    method_style,
    order_methods,
    pairs,
    panel_grid,
    panel_title,
    styled,
)
from analysis.results import CFG_PREFIX, layer_frame

#: Where collapse crosses sit on the log axis, relative to the smallest density drawn.
COLLAPSE_FACTOR = 0.3


def layer_means(df: pd.DataFrame, sparsity: float) -> pd.DataFrame:
    """Mean density over seeds of every layer, per model, data set and method label (the
    primary variant of each method), at one sparsity: model, dataset, method, label,
    layer_index, layer, density, collapsed_seeds (seeds in which the layer has no weight) and
    flops_share (the layer's share of the dense forward pass's FLOPs, %, NaN without FLOPs)."""
    sparsity = round(float(sparsity), 6)
    agg = aggregate(df)
    primary = primary_at(agg[~of_plan(agg["method"], "dense")], sparsity)
    swept = [c for c in primary.columns if c.startswith(CFG_PREFIX)]
    layers = layer_frame(df[df["complete"] & (df["sparsity"] == sparsity)], extra=swept)
    if layers.empty or primary.empty:
        return pd.DataFrame(columns=["model", "dataset", "method", "label", "layer_index",
                                     "layer", "density", "collapsed_seeds", "flops_share"])
    by = ["model", "dataset", "method", "sparsity"] + VARIANTS + swept
    labelled = layers.merge(primary[by + ["label"]], on=by)
    keys = ["model", "dataset", "method", "label", "layer_index", "layer"]
    per_seed = labelled.groupby(keys + ["seed"], dropna=False)["layer_density"].mean()
    grouped = per_seed.groupby(level=list(range(len(keys))), dropna=False)
    out = pd.DataFrame({"density": grouped.mean(),
                        "collapsed_seeds": grouped.agg(lambda d: int((d == 0).sum()))}).reset_index()
    dense = labelled.groupby(["model", "dataset", "layer"], dropna=False)["layer_flops_dense"].first()
    total = dense.groupby(level=["model", "dataset"]).transform("sum")
    share = (100 * dense / total.where(total > 0)).rename("flops_share").reset_index()
    return out.merge(share, on=["model", "dataset", "layer"], how="left")


@styled
def layer_density(df: pd.DataFrame, sparsity: float, *, model: str | None = None,
                  dataset: str | None = None) -> Figure:
    """Density of every prunable layer (mean over seeds, log axis) per method at one sparsity.

    A layer that collapsed (no weight left, which disconnects the network) in at least one
    seed gets a cross in its method's colour below the data.
    """
    means = layer_means(df, sparsity)
    found = [p for p in pairs(df, model, dataset)
             if ((means["model"] == p[0]) & (means["dataset"] == p[1])).any()]
    if not found:
        raise NoData(f"no per-layer densities at sparsity {float(sparsity):g}")
    widths = [max(4.8, 0.32 * means[means["model"] == m]["layer_index"].nunique() + 2)
              for m, _ in found]
    fig, axes = panel_grid(1, len(found), size=(max(widths), 3.9), legend_width=1.8)
    for ax, (m, d) in zip(axes.flat, found):
        here = means[(means["model"] == m) & (means["dataset"] == d)]
        positive = here.loc[here["density"] > 0, "density"]
        floor = (positive.min() if len(positive) else 1.0) * COLLAPSE_FACTOR
        collapsed = False
        for k, method in enumerate(order_methods(here["method"].unique())):
            for label, rows in here[here["method"] == method].groupby("label", sort=False):
                rows = rows.sort_values("layer_index")
                colour, marker, linestyle = method_style(method)
                y = rows["density"].to_numpy(dtype=float)
                ax.plot(rows["layer_index"], np.where(y > 0, y, np.nan), color=colour,
                        marker=marker, linestyle=linestyle, markersize=5, label=str(label))
                dead = rows[rows["collapsed_seeds"] > 0]
                if len(dead):  # below the data, one row of crosses per method
                    collapsed = True
                    ax.plot(dead["layer_index"], [floor * 0.75 ** k] * len(dead),
                            linestyle="none", marker="x", color=colour, markersize=8,
                            markeredgewidth=2, label=f"_{label} collapsed")
        if collapsed:
            ax.plot([], [], linestyle="none", marker="x", color="black", markeredgewidth=2,
                    label="collapsed layer (no weight left, ≥1 seed)")
        top = positive.max() if len(positive) else 1.0
        bottom = floor * 0.75 ** len(here["method"].unique()) if collapsed else positive.min()
        ax.set_ylim(bottom / 1.6, top * 1.6)
        ax.set_yscale("log")
        names = here.drop_duplicates("layer_index").sort_values("layer_index")
        step = max(1, len(names) // 30)
        ax.set_xticks(names["layer_index"][::step], names["layer"][::step], rotation=60,
                      ha="right", fontsize=8)
        ax.set_xlabel("layer (model order)")
        ax.set_ylabel("layer density (kept share, log)")
        if names["flops_share"].notna().any():  # where the work is: grey bars behind the lines
            work = ax.twinx()
            work.bar(names["layer_index"], names["flops_share"], color="0.88", width=0.8,
                     label="share of the dense FLOPs (%, right axis)")
            work.set_ylabel("share of the dense FLOPs (%)", color="0.45")
            work.tick_params(axis="y", colors="0.45")
            work.grid(False)
            ax.set_zorder(work.get_zorder() + 1)
            ax.patch.set_visible(False)
        panel_title(ax, m, d, f"sparsity {fmt_pct(100 * float(sparsity))}%")
    figure_legend(fig, axes.flat, title="method")
    return fig
