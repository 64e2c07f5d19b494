"""Figures of a pruning paper, each a function taking the tidy frame and returning a Figure.

All draw one panel per model and data set, use one colour, marker and line style per method
across every figure (colour-blind safe), put legends outside the data, and raise
:class:`NoData` when the frame lacks what they need. :func:`save_figure` writes PNG and PDF.
"""

from analysis.plots.ablation import method_arguments, warmup_heatmap
from analysis.plots.accuracy import accuracy_vs_cost, accuracy_vs_sparsity, pareto_front
from analysis.plots.cost import cost_vs_imp
from analysis.plots.footprint import accuracy_vs_flops
from analysis.plots.layers import layer_density, layer_means
from analysis.plots.style import NoData, method_style, save_figure

__all__ = [
    "NoData", "accuracy_vs_cost", "accuracy_vs_flops", "accuracy_vs_sparsity", "cost_vs_imp", "layer_density",
    "layer_means", "method_arguments", "method_style", "warmup_heatmap",
    "pareto_front", "save_figure",
]
