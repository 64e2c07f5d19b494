"""analysis.plots: the drawn data equals the aggregates (read back from the artists)."""

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from analysis import methods, plots
from analysis.aggregate import aggregate, speedup
from analysis.plots.style import thin
from analysis.results import load, rows_from_metrics, tidy

SPARSITIES = (0.5, 0.8, 0.9)


def frame(*metrics):
    rows = []
    for i, m in enumerate(metrics):
        rows += rows_from_metrics(m, experiment="e", trial_id=f"t{i}")
    return tidy(pd.DataFrame(rows))


@pytest.fixture
def sweep(make):
    """Methods x sparsities x 2 seeds with known numbers, a dense baseline, IMP levels, DRIVE
    warm-up/iteration and term variants at 0.9, and a grasp level that only failed."""
    ms = []
    for seed in (0, 1):
        ms.append(make.metrics("dense", 0.0, seed=seed, test_acc=0.98 - seed / 100, prune_time_s=0,
                               prune_samples=0))
        for i, s in enumerate(SPARSITIES):
            ms.append(make.metrics("imp", s, seed=seed, test_acc=0.97 - s / 10,
                                   prune_time_s=50 * (i + 1), prune_samples=50_000 * (i + 1),
                                   prune_iterations=i + 1))
            ms.append(make.metrics("snip", s, seed=seed, test_acc=0.9 - s / 5 + seed / 50,
                                   prune_time_s=0.5 + seed, prune_samples=128))
            ms.append(make.metrics("magnitude", s, seed=seed, test_acc=0.8 - s / 5,
                                   prune_time_s=0.01, prune_samples=0))
            ms.append(make.metrics("drive", s, seed=seed, test_acc=0.92 - s / 10 + seed / 100,
                                   prune_time_s=5.0, prune_samples=3000, warmup_epochs=2,
                                   prune_iterations=10))
        for w, t in ((1, 1), (2, 1), (1, 10)):
            ms.append(make.metrics("drive", 0.9, seed=seed, test_acc=0.5 + w / 10 + t / 100,
                                   prune_time_s=5.0, prune_samples=1000 * w + t,
                                   warmup_epochs=w, prune_iterations=t))
        ms.append(make.metrics("grasp", 0.5, seed=seed, test_acc=0.6))
        ms.append(make.metrics("grasp", 0.9, seed=seed, test_acc=0.4))
    ms.append(make.metrics("grasp", 0.8, status="diverged", reason="nan"))
    return frame(*ms)


def lines_by_label(ax):
    return {ln.get_label(): ln for ln in ax.get_lines() if not ln.get_label().startswith("_")}


def test_accuracy_lines_equal_the_aggregates(sweep):
    fig = plots.accuracy_vs_sparsity(sweep)
    ax = fig.axes[0]
    agg = aggregate(sweep)
    lines = lines_by_label(ax)
    assert set(lines) == {"imp", "drive (warm-up 2, T 10)", "snip", "grasp", "magnitude", "dense"}
    for label, line in lines.items():
        if label == "dense":
            dense = agg[agg["method"] == "dense"]["test_acc_mean"].iloc[0]
            assert line.get_ydata() == pytest.approx([100 * dense] * 2)
            assert line.get_linestyle() == "--"
            continue
        rows = agg[agg["label"] == label].sort_values("sparsity")
        x, y = np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)
        if label == "grasp":  # the failed 0.8 level is a gap, never bridged
            assert x.tolist() == pytest.approx([50, 20, 10]) and np.isnan(y[1])
            x, y = x[[0, 2]], y[[0, 2]]
        assert x == pytest.approx(100 * (1 - rows["sparsity"].to_numpy()))
        assert y == pytest.approx(100 * rows["test_acc_mean"].to_numpy())
    # the spread band of snip spans mean ± std at every level
    snip = agg[agg["label"] == "snip"].sort_values("sparsity")
    band = [c for c in ax.collections if c.get_label() == "_snip spread"][0]
    ys = band.get_paths()[0].vertices[:, 1]
    assert ys.max() == pytest.approx(100 * (snip["test_acc_mean"] + snip["test_acc_std"]).max())
    assert ys.min() == pytest.approx(100 * (snip["test_acc_mean"] - snip["test_acc_std"]).min())
    assert ax.get_xscale() == "log" and ax.xaxis_inverted()


def test_speedup_lines_equal_imp_time_over_method_time(sweep):
    fig = plots.cost_vs_imp(sweep, cost="prune_samples")
    ax_speed, ax_cost = fig.axes[:2]
    fast = speedup(aggregate(sweep))
    lines = lines_by_label(ax_speed)
    assert "magnitude" not in lines and "magnitude" in ax_speed.get_title()  # ∞: not drawable
    snip = fast[fast["label"] == "snip"].sort_values("sparsity")
    expected = snip["imp_prune_samples"] / snip["prune_samples"]
    assert lines["snip"].get_ydata() == pytest.approx(expected.to_numpy())
    assert lines["snip"].get_ydata() == pytest.approx([50_000 / 128, 100_000 / 128, 150_000 / 128])
    assert lines["IMP = 1×"].get_ydata() == pytest.approx([1, 1])
    costs = lines_by_label(ax_cost)
    assert costs["imp"].get_ydata() == pytest.approx([50_000, 100_000, 150_000])
    time_fig = plots.cost_vs_imp(sweep)
    drive = lines_by_label(time_fig.axes[0])["drive (warm-up 2, T 10)"]
    assert drive.get_ydata() == pytest.approx([50 / 5, 100 / 5, 150 / 5])
    assert time_fig.axes[0].get_yscale() == "log"


def test_no_imp_means_no_speedup_figure(sweep):
    with pytest.raises(plots.NoData, match="IMP"):
        plots.cost_vs_imp(sweep[sweep["method"] != "imp"])


def test_pareto_points_and_front(sweep):
    fig = plots.accuracy_vs_cost(sweep, 0.9)
    ax = fig.axes[0]
    agg = aggregate(sweep)
    at = agg[(agg["sparsity"] == 0.9) & (agg["method"] != "dense")]
    for method, line in lines_by_label(ax).items():
        if method in ("dense", "Pareto front"):
            continue
        rows = at[at["method"] == method]
        drawn = np.array(sorted(zip(line.get_xdata(), line.get_ydata())))
        expected = np.array(sorted(zip(rows["prune_samples_mean"], 100 * rows["test_acc_mean"])))
        np.testing.assert_allclose(drawn, expected)
    assert len(lines_by_label(ax)["drive"].get_xdata()) == 4  # every variant is a point
    front = plots.pareto_front(np.array([0, 10, 5, 100, 50]), np.array([50, 40, 60, 90, 60]))
    assert front.tolist() == [0, 2, 3]  # (50, 60) is beaten by (5, 60); (10, 40) by (0, 50)


def test_heatmap_cells_equal_the_aggregates_and_missing_cells_are_marked(sweep):
    fig = plots.warmup_heatmap(sweep, 0.9)
    ax = fig.axes[0]
    values = ax.images[0].get_array()
    at = sweep[(sweep["method"] == "drive") & (sweep["sparsity"] == 0.9)]
    drive = aggregate(at).set_index(["warmup_epochs", "prune_iterations"])
    # rows: warm-up 1, 2; columns: T 1, 10
    for i, w in enumerate((1, 2)):
        for j, t in enumerate((1, 10)):
            assert values[i, j] == pytest.approx(100 * drive.loc[(w, t), "test_acc_mean"])
    assert not np.ma.is_masked(values[1, 1])
    texts = [t.get_text() for t in ax.texts]
    assert "—" not in texts
    one_missing = sweep[~((sweep["warmup_epochs"] == 2) & (sweep["prune_iterations"] == 1))]
    masked = plots.warmup_heatmap(one_missing, 0.9).axes[0]
    assert np.ma.is_masked(masked.images[0].get_array()[1, 0])
    assert "—" in [t.get_text() for t in masked.texts]
    with pytest.raises(plots.NoData):
        plots.warmup_heatmap(sweep, 0.5)


def test_method_arguments_points(make):
    ms = [make.metrics("drive", 0.9, seed=s, test_acc=acc, warmup_epochs=1, prune_iterations=10,
                       config={"drive": {"weights": w}})
          for s in (0, 1) for w, acc in (([1, 1, 1], 0.7), ([1, 0, 0], 0.6))]
    df = frame(*ms)
    ax = plots.method_arguments(df).axes[0]
    line = lines_by_label(ax)["sparsity 90%"]
    assert line.get_xdata() == pytest.approx([60, 70])  # settings sorted by name
    assert [t.get_text() for t in ax.get_yticklabels()] == ["w 1,0,0 · norm mean · comb sum",
                                                            "w 1,1,1 · norm mean · comb sum"]
    with pytest.raises(plots.NoData):
        plots.method_arguments(df[df["cfg.drive.weights"] == "[1.0, 1.0, 1.0]"])


def test_layer_density_lines_and_collapse(make):
    ms = [make.metrics("snip", 0.9, seed=s, layer_density={"a": 0.5 + s / 10, "b": 0.05, "c": 0.2})
          for s in (0, 1)]
    ms += [make.metrics("synflow", 0.9, layer_density={"a": 0.3, "b": 0.0, "c": 0.1})]
    df = frame(*ms)
    assert df.loc[df["method"] == "synflow", "collapsed_layers"].iloc[0] == 1
    ax = plots.layer_density(df, 0.9).axes[0]
    lines = lines_by_label(ax)
    assert lines["snip"].get_ydata() == pytest.approx([0.55, 0.05, 0.2])
    y = lines["synflow"].get_ydata()
    assert y[0] == 0.3 and np.isnan(y[1]) and y[2] == 0.1
    dead = [ln for ln in ax.get_lines() if ln.get_label() == "_synflow collapsed"][0]
    assert list(dead.get_xdata()) == [1] and dead.get_ydata()[0] < 0.05
    assert dead.get_color() == lines["synflow"].get_color()
    assert "collapsed layer (no weight left, ≥1 seed)" in lines
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]


def test_one_colour_per_method_in_every_figure(sweep):
    colours = {}
    for fig in (plots.accuracy_vs_sparsity(sweep), plots.cost_vs_imp(sweep),
                plots.accuracy_vs_cost(sweep, 0.9)):
        for ax in fig.axes:
            for label, line in lines_by_label(ax).items():
                method = methods.of_label(label)
                if method is not None:
                    colours.setdefault(method, set()).add(line.get_color())
    assert all(len(c) == 1 for c in colours.values()) and len(colours) >= 5


def test_legends_sit_outside_the_data(sweep, real_sweep):
    figures = [plots.accuracy_vs_sparsity(sweep), plots.cost_vs_imp(sweep),
               plots.accuracy_vs_cost(sweep, 0.9), plots.layer_density(sweep, 0.9),
               plots.accuracy_vs_sparsity(load(real_sweep.experiment))]
    for fig in figures:
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        renderer = canvas.get_renderer()
        assert fig.legends, "a figure legend"
        box = fig.legends[0].get_window_extent(renderer)
        for ax in fig.axes:
            if ax.get_visible() and ax.get_label() != "<colorbar>":
                assert not box.overlaps(ax.get_window_extent(renderer))


def test_save_figure_writes_png_and_pdf(sweep, tmp_path):
    paths = plots.save_figure(plots.accuracy_vs_sparsity(sweep), tmp_path / "f", "acc")
    assert [p.name for p in paths] == ["acc.png", "acc.pdf"]
    assert paths[0].read_bytes()[:4] == b"\x89PNG" and paths[1].read_bytes()[:4] == b"%PDF"


def test_thin_keeps_ticks_apart_and_the_extremes():
    ticks = thin([80, 64, 51.2, 50, 40.96, 20, 10, 5, 2])
    assert ticks[0] == 80 and ticks[-1] == 2
    assert not (51.2 in ticks and 50 in ticks)
    gaps = np.diff(np.log10(ticks[::-1]))
    assert (gaps >= 0.05).all()


def test_accuracy_vs_flops_places_each_level_at_its_flops(sweep):
    fig = plots.accuracy_vs_flops(sweep)
    ax = fig.axes[0]
    agg = aggregate(sweep)
    for label, line in lines_by_label(ax).items():
        if label == "dense":
            continue
        rows = agg[agg["label"] == label].sort_values("flops_fraction_mean", ascending=False)
        np.testing.assert_allclose(line.get_xdata(), 100 * rows["flops_fraction_mean"])
        np.testing.assert_allclose(line.get_ydata(), 100 * rows["test_acc_mean"])
    with pytest.raises(plots.NoData):
        plots.accuracy_vs_flops(sweep.assign(flops_fraction=np.nan))
