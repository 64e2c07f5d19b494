"""analysis.aggregate: over seeds, labels, speed-up vs IMP."""

import numpy as np
import pandas as pd
import pytest

from analysis.aggregate import (
    aggregate,
    attempted_levels,
    default_sparsity,
    headline_levels,
    primary_labels,
    speedup,
    swept_columns,
)
from analysis.results import rows_from_metrics, tidy


def frame(*metrics, **extra):
    rows = []
    for i, m in enumerate(metrics):
        rows += rows_from_metrics(m, experiment="e", trial_id=f"t{i}", **extra)
    return tidy(pd.DataFrame(rows))


def test_mean_std_min_max_count_over_seeds(make):
    accs = [0.5, 0.7, 0.9]
    df = frame(*[make.metrics("snip", 0.9, seed=s, test_acc=a, prune_time_s=1 + s)
                 for s, a in enumerate(accs)],
               make.metrics("snip", 0.5, seed=0, test_acc=0.95))
    agg = aggregate(df).set_index("sparsity")
    row = agg.loc[0.9]
    assert row["test_acc_mean"] == pytest.approx(np.mean(accs))
    assert row["test_acc_std"] == pytest.approx(np.std(accs, ddof=1))
    assert (row["test_acc_min"], row["test_acc_max"], row["test_acc_count"]) == (0.5, 0.9, 3)
    assert row["prune_time_s_mean"] == pytest.approx(2.0)
    assert (row["seeds"], row["trials"], row["label"]) == (3, 3, "snip")
    assert np.isnan(agg.loc[0.5, "test_acc_std"]) and agg.loc[0.5, "seeds"] == 1


def test_only_complete_rows_count_and_a_seed_counts_once(make):
    df = frame(make.metrics("snip", 0.9, seed=0, test_acc=0.6),
               make.metrics("snip", 0.9, seed=1, test_acc=0.1, status="diverged", reason="nan"),
               make.metrics("snip", 0.9, seed=0, test_acc=0.8))  # same seed again (a rerun)
    row = aggregate(df).iloc[0]
    assert row["seeds"] == 1 and row["trials"] == 2
    assert row["test_acc_mean"] == pytest.approx(0.7) and row["test_acc_count"] == 1


def test_drive_variants_get_labels_and_other_methods_do_not(make):
    df = frame(*[make.metrics("drive", 0.9, seed=s, warmup_epochs=w, prune_iterations=t,
                              test_acc=0.5 + w / 10 + t / 100)
                 for s in (0, 1) for w in (1, 2) for t in (5, 10)],
               *[make.metrics("imp", 0.9, seed=s, prune_iterations=3) for s in (0, 1)],
               make.metrics("imp", 0.5, seed=0, prune_iterations=1),
               *[make.metrics("snip", 0.9, seed=s, warmup_epochs=0) for s in (0, 1)])
    agg = aggregate(df)
    labels = set(agg["label"])
    assert {"drive (warm-up 1, T 5)", "drive (warm-up 2, T 10)", "imp", "snip"} <= labels
    assert len(labels) == 6
    cell = agg[agg["label"] == "drive (warm-up 2, T 5)"].iloc[0]
    assert cell["test_acc_mean"] == pytest.approx(0.75) and cell["seeds"] == 2
    # the primary label of a method: most levels, most seeds, DRIVE's default T, longest warm-up
    assert set(primary_labels(agg)["label"]) == {"drive (warm-up 2, T 10)", "imp", "snip"}


def test_an_ablation_mixed_into_a_report_does_not_change_the_headline(make):
    """The main variant is the one with the method's default settings, even when an ablation
    (here other DRIVE term weights) covers more levels and seeds; ``report --variant`` picks
    another explicitly."""
    from analysis.report import choose_variants
    from analysis.results import ResultsError

    default = [make.metrics("drive", s, seed=0, prune_iterations=10, warmup_epochs=2,
                            config={"drive": {"weights": [1, 1, 1]}}) for s in (0.9,)]
    ablation = [make.metrics("drive", s, seed=seed, prune_iterations=10, warmup_epochs=2,
                             config={"drive": {"weights": [1, 0, 1]}})
                for s in (0.5, 0.9, 0.95) for seed in (0, 1, 2)]
    df = frame(*default, *ablation)
    agg = aggregate(df)
    assert set(agg["label"]) == {"drive (w 1,1,1)", "drive (w 1,0,1)"}
    assert set(primary_labels(agg)["label"]) == {"drive (w 1,1,1)"}
    chosen = choose_variants(df, ["drive:drive.weights=1,0,1"])
    assert chosen["chosen"].equals(choose_variants(df, ["drive:drive.weights=[1, 0, 1]"])["chosen"])
    assert set(primary_labels(aggregate(chosen))["label"]) == {"drive (w 1,0,1)"}
    with pytest.raises(ResultsError, match="--variant: no drive trial has drive.weights = 9"):
        choose_variants(df, ["drive:drive.weights=9"])
    with pytest.raises(ResultsError, match="METHOD:FIELD=VALUE"):
        choose_variants(df, ["drive"])


def test_swept_hyperparameter_is_a_variant(make):
    df = frame(*[make.metrics("snip", 0.9, seed=s, test_acc=acc, config={"train": {"lr": lr}})
                 for s in (0, 1) for lr, acc in ((0.1, 0.8), (0.01, 0.6))])
    assert swept_columns(df) == ["cfg.train.lr"]
    agg = aggregate(df).set_index("label")
    assert agg.loc["snip (lr 0.1)", "test_acc_mean"] == pytest.approx(0.8)
    assert agg.loc["snip (lr 0.01)", "test_acc_mean"] == pytest.approx(0.6)


def test_speedup_is_imp_time_over_method_time(make):
    df = frame(*[make.metrics("imp", s, seed=seed, prune_time_s=100 * s + seed,
                              prune_samples=10_000)
                 for s in (0.5, 0.9) for seed in (0, 1)],
               *[make.metrics("drive", 0.9, seed=seed, prune_time_s=2 + 2 * seed,
                              prune_samples=500) for seed in (0, 1)],
               make.metrics("magnitude", 0.9, prune_time_s=0.01, prune_samples=0),
               make.metrics("snip", 0.8, prune_time_s=0.5),  # IMP has no 0.8 level
               make.metrics("dense", 0.0, prune_time_s=0, prune_samples=0))
    fast = speedup(aggregate(df)).set_index(["method", "sparsity"])
    assert "dense" not in fast.index.get_level_values("method")
    imp_time = np.mean([90, 91])
    assert fast.loc[("drive", 0.9), "speedup_time"] == pytest.approx(imp_time / 3.0)
    assert fast.loc[("drive", 0.9), "speedup_samples"] == pytest.approx(20.0)
    assert fast.loc[("magnitude", 0.9), "speedup_time"] == pytest.approx(imp_time / 0.01)
    assert fast.loc[("magnitude", 0.9), "speedup_samples"] == np.inf  # free: no sample passes
    assert np.isnan(fast.loc[("snip", 0.8), "speedup_time"])  # no IMP at 0.8: not invented
    assert fast.loc[("imp", 0.5), "speedup_time"] == 1.0


def test_headline_levels_default_sparsity_and_attempted_levels(make):
    df = frame(make.metrics("imp", 0.2), make.metrics("imp", 0.36), make.metrics("imp", 0.9),
               make.metrics("snip", 0.9), make.metrics("drive", 0.9), make.metrics("snip", 0.5),
               make.metrics("grasp", 0.95, status="diverged", reason="nan"))
    agg = aggregate(df)
    assert headline_levels(agg) == [0.5, 0.9]
    assert default_sparsity(agg) == 0.9
    tried = attempted_levels(df, agg)
    grasp = tried[tried["method"] == "grasp"]
    assert grasp[["label", "sparsity", "status"]].values.tolist() == [["grasp", 0.95, "diverged"]]


def test_empty_frame_aggregates_to_empty(make):
    df = frame(make.metrics("snip", 0.9, status="diverged"))
    assert aggregate(df).empty and speedup(aggregate(df)).empty
    assert default_sparsity(aggregate(df)) is None


def test_a_plugin_method_is_labelled_by_its_registry_name(make):
    df = frame(make.metrics("tests.drive.test_methods:SQUARED", 0.9),
               make.metrics("no_such_pkg_xyz.mod:FANCY", 0.9), make.metrics("snip", 0.9))
    assert set(aggregate(df)["label"]) == {"|w|²", "FANCY", "snip"}
