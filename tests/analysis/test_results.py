"""analysis.results: result files -> the tidy frame."""

import json

import numpy as np
import pandas as pd
import pytest

from analysis.configs import list_text
from analysis.results import (
    COLUMNS,
    ResultsError,
    ResultsWarning,
    layer_frame,
    load,
    read_saved,
    rows_from_metrics,
    save,
    tidy,
)


def test_real_sweep_folder_gives_one_row_per_trial_and_imp_level(real_sweep):
    df = load(real_sweep.experiment)
    assert list(df.columns[: len(COLUMNS)]) == list(COLUMNS)
    finished = df[df["status"] == "finished"]
    imp = [m for m in real_sweep.metrics if m["method"] == "imp"]
    others = [m for m in real_sweep.metrics if m["method"] != "imp"]
    assert len(finished) == len(others) + sum(len(m["levels"]) for m in imp)
    for m in others:
        row = finished[(finished["method"] == m["method"]) & (finished["seed"] == m["seed"])
                       & (finished["sparsity"] == m["sparsity"])
                       & (finished["prune_iterations"] == m["prune_iterations"])].iloc[0]
        assert row["test_acc"] == m["test_acc"] and row["density"] == m["density"]
        assert row["prune_time_s"] == m["prune_time_s"]
        assert row["prune_samples"] == m["prune_samples"]
        assert json.loads(row["layer_density"]) == m["layer_density"]
        assert row["cfg.train.epochs"] == m["epochs"] and row["cfg.model_args.width"] == 0.5
    imp_rows = finished[(finished["method"] == "imp") & (finished["seed"] == 0)]
    levels = imp[0]["levels"]
    assert list(imp_rows["sparsity"]) == [round(lv["sparsity"], 6) for lv in levels]
    assert list(imp_rows["level"]) == list(imp_rows["prune_iterations"]) == [1, 2, 3, 4]
    assert list(imp_rows["test_acc"]) == [lv["test_acc"] for lv in levels]
    assert imp_rows["test_acc"].iloc[-1] == imp[0]["test_acc"]  # the last level is the headline
    assert {0.5, 0.9} <= set(imp_rows["sparsity"])


def test_real_sweep_lists_errored_and_running_trials_without_inventing_accuracy(real_sweep):
    df = load(real_sweep.experiment).set_index("trial_id")
    err, run = df.loc["err01"], df.loc["run01"]
    assert (err["status"], err["reason"]) == ("errored", "RuntimeError: CUDA out of memory")
    assert run["status"] == "running" and pd.isna(run["reason"])
    for row in (err, run):
        assert not row["complete"] and np.isnan(row["test_acc"]) and np.isnan(row["best_test_acc"])
    assert (err["method"], err["sparsity"], err["seed"], err["epochs_done"]) == ("grasp", 0.9, 0, 1)
    assert err["density"] == 0.1  # progress from the last epoch line
    # its identity comes from its start line; its only other line was cut short
    assert (run["method"], run["sparsity"], run["seed"]) == ("snip", 0.9, 2)
    assert pd.isna(run["epochs_done"])


def test_prune_out_json_and_folders_of_them(real_sweep, tmp_path):
    m = real_sweep.random
    one = load(real_sweep.pruned)
    assert len(one) == 1
    row = one.iloc[0]
    assert (row["experiment"], row["trial_id"]) == ("pruned", "random_s0.9")
    assert row["status"] == "finished"
    assert row["test_acc"] == m["test_acc"] and row["prune_samples"] == 0
    assert row["warmup_epochs"] == 0 and "cfg.drive.weights" not in one  # random has no DRIVE args
    both = load([real_sweep.pruned.parent, real_sweep.experiment])
    assert set(both["experiment"]) == {"pruned", "sweep"}


def test_rows_from_metrics_imp_levels_and_extra_fields(real_sweep):
    imp = next(m for m in real_sweep.metrics if m["method"] == "imp")
    rows = rows_from_metrics(imp, experiment="e", trial_id="t1")
    assert [r["level"] for r in rows] == [lv["level"] for lv in imp["levels"]]
    assert all(r["experiment"] == "e" and r["trial_id"] == "t1" and r["complete"] for r in rows)
    assert rows[-1]["params_remaining"] == imp["params_remaining"]


def test_hand_written_records_statuses_reasons_and_partial_imp(tmp_path, make):
    exp = tmp_path / "exp"
    snip = make.metrics("snip", 0.9, test_acc=0.7)
    make.write_record(exp, "fin", snip, lines=[make.epoch(1)])
    div = make.metrics("drive", 0.9, status="diverged", reason="training loss became nan",
                       test_acc=0.1, warmup_epochs=2, prune_iterations=10)
    make.write_record(exp, "div", div, lines=[make.epoch(1)])
    level = {k: v for k, v in make.metrics("imp", 0.2, test_acc=0.8).items()
             if k in ("sparsity", "test_acc", "best_test_acc", "prune_time_s", "prune_samples",
                      "train_time_s", "total_time_s", "density", "layer_density",
                      "params_remaining", "params_prunable", "collapsed_layers")}
    lv1 = {"event": "level", "level": 1, **level}
    lv1_again = {**lv1, "test_acc": 0.81}  # reported again after a restore: the last copy wins
    lv2 = {**lv1, "level": 2, "sparsity": 0.36000000000000004, "test_acc": 0.79}
    make.write_record(exp, "imp", lines=[make.epoch(1), lv1, make.epoch(2), lv1_again, lv2,
                                         make.epoch(3, epochs_done=7, density=0.512)],
                      end={"status": "errored", "reason": "NodeDiedError: the node died"},
                      method="imp", sparsity=0.9, seed=3, epochs=4, model="toy", dataset="toyset",
                      config={"method": "imp", "sparsity": 0.9, "seed": 3, "train": {"epochs": 4}})
    make.write_record(exp, "early", end={"status": "errored", "reason": "ValueError: boom"},
                      method="grasp", sparsity=0.5, seed=0, config={"method": "grasp", "sparsity": 0.5})
    make.write_record(exp, "asha", lines=[make.epoch(1)],
                      end={"status": "stopped", "reason": "stopped by ASHA after 1 epoch(s)",
                           "stopped_by": "asha"},
                      method="snip", sparsity=0.5, seed=1, config={"method": "snip", "sparsity": 0.5})
    # Ray Tune's own files are never read, even when they look like results
    (exp / "fin" / "result.json").write_text(json.dumps({"event": "final", **snip, "seed": 99}))
    (exp / "fin" / "params.json").write_text(json.dumps({"trial": {"method": "dense"}}))
    (exp / "experiment_state-2025.json").write_text(json.dumps({"method": 1, "status": 2}))
    (exp / "notes.json").write_text("[1, 2]")

    df = load(exp)
    by = {t: g for t, g in df.groupby("trial_id")}
    assert set(by) == {"fin", "div", "imp", "early", "asha"}
    assert by["fin"]["status"].tolist() == ["finished"] and by["fin"]["complete"].all()
    assert by["fin"]["seed"].tolist() == [0]
    d = by["div"].iloc[0]
    assert (d["status"], d["reason"]) == ("diverged", "training loss became nan")
    assert not d["complete"]
    assert (d["warmup_epochs"], d["prune_iterations"], list_text(d["cfg.drive.weights"])) == (2, 10, "1,1,1")
    imp = by["imp"].sort_values("sparsity")
    assert imp["status"].unique().tolist() == ["errored"]
    assert imp["reason"].iloc[0] == "NodeDiedError: the node died"
    assert imp["sparsity"].tolist() == [0.2, 0.36, 0.9]  # two finished levels + where it stopped
    assert imp["complete"].tolist() == [True, True, False]
    assert imp["test_acc"].iloc[:2].tolist() == [0.81, 0.79] and np.isnan(imp["test_acc"].iloc[2])
    assert imp["epochs_done"].iloc[2] == 7 and imp["density"].iloc[2] == 0.512
    e = by["early"].iloc[0]
    assert (e["status"], e["reason"], e["method"], e["sparsity"]) == ("errored", "ValueError: boom",
                                                                       "grasp", 0.5)
    # a config holding only some fields: the rest is resolved with the config defaults
    assert e["cfg.train.epochs"] == 12 and e["model"] == "digits_cnn"
    a = by["asha"].iloc[0]
    assert (a["status"], a["method"], a["sparsity"], a["seed"]) == ("stopped", "snip", 0.5, 1)
    assert a["epochs_done"] == 1 and np.isnan(a["test_acc"])


def test_only_drive_has_warmup_and_term_settings(tmp_path, make):
    exp = tmp_path / "exp"
    snip = make.metrics("snip", 0.9, warmup_epochs=0, config={"warmup_epochs": 3})
    drive = make.metrics("drive", 0.9, warmup_epochs=3, prune_iterations=5,
                         config={"drive": {"weights": [1, 0, 0.5], "combine": "product"}})
    make.write_record(exp, "a", snip)
    make.write_record(exp, "b", drive)
    df = load(exp).set_index("method")
    assert df.loc["snip", "warmup_epochs"] == 0 and pd.isna(df.loc["snip", "cfg.drive.combine"])
    assert df.loc["snip", "cfg.warmup_epochs"] == 3  # the raw config is still there
    drive = df.loc["drive"]
    assert (drive["warmup_epochs"], drive["prune_iterations"], list_text(drive["cfg.drive.weights"]),
            drive["cfg.drive.normalize"], drive["cfg.drive.combine"]) == (3, 5, "1,0,0.5", "mean",
                                                                          "product")


def test_csv_and_parquet_round_trip(real_sweep, tmp_path):
    df = load(real_sweep.experiment)
    csv, parquet = save(df, tmp_path)
    assert (csv.name, parquet.name) == ("results.csv", "results.parquet")
    pd.testing.assert_frame_equal(read_saved(parquet), df)
    pd.testing.assert_frame_equal(read_saved(csv), df, check_dtype=False)
    assert save(df, tmp_path / "other.csv")[1].name == "other.parquet"


def test_layer_frame_keeps_model_order(real_sweep):
    df = load(real_sweep.pruned)
    layers = layer_frame(df)
    assert layers["layer"].tolist() == list(real_sweep.random["layer_density"])
    assert layers["layer_index"].tolist() == list(range(len(layers)))
    assert layers["layer_density"].tolist() == list(real_sweep.random["layer_density"].values())
    assert (layers["method"] == "random").all()


def test_bad_paths(tmp_path):
    with pytest.raises(ResultsError, match="no such file"):
        load(tmp_path / "missing")
    other = tmp_path / "x.json"
    other.write_text("{}")
    with pytest.raises(ResultsError, match="not a result record"):
        load(other)
    assert load(tmp_path).empty and list(tidy(pd.DataFrame()).columns) == list(COLUMNS)


def test_unreadable_trial_records_are_left_out_with_one_warning_each(real_sweep, tmp_path):
    """A trial's metrics.jsonl cut short before its first line ends, emptied or overwritten
    (a full disk, a crash) is named in a warning, not dropped silently; the others load."""
    whole = next(real_sweep.experiment.glob("snip_*/metrics.jsonl")).read_bytes()
    exp = tmp_path / "exp"
    for name, data in (("whole", whole), ("cut", whole[:40]), ("empty", b""),
                       ("binary", b"\x89PNG\x00\x00")):
        (exp / name).mkdir(parents=True)
        (exp / name / "metrics.jsonl").write_bytes(data)
    with pytest.warns(ResultsWarning) as caught:
        df = load(exp)
    named = sorted(str(w.message).split(": ")[0] for w in caught)
    assert named == sorted(str(exp / n / "metrics.jsonl") for n in ("binary", "cut", "empty"))
    assert len(df) == 1 and df["status"].tolist() == ["finished"]
