"""Real sweeps on local Ray whose trials end every way a trial can: finished, stopped by ASHA
(by epoch), errored; and an Optuna sweep that covers its grid. Each trial must be labelled in
results.csv and report.md with the method, sparsity and seed it really ran (Tune's own
params.json, read here only as the independent truth)."""

import json
import os
from pathlib import Path

import pandas as pd
import pytest
import ray
import yaml

from sweeps.cli import main
from sweeps.results import exit_code

REPO = Path(__file__).resolve().parents[2]
BASE = {"dataset": "digits", "model_args": {"width": 0.5}, "device": "cpu",
        "train": {"epochs": 3, "batch_size": 128}, "data": {"val_fraction": 0.2}}


def tune_points(folder: Path) -> dict[str, dict]:
    """Trial folder name -> the grid point and samples Tune gave it (params.json)."""
    return {p.parent.name: json.loads(p.read_text()) for p in folder.glob("*/params.json")}


def records(folder: Path) -> dict[str, list[dict]]:
    return {p.parent.name: [json.loads(x) for x in p.read_text().splitlines()]
            for p in folder.glob("*/metrics.jsonl")}


@pytest.fixture(scope="module")
def asha(tmp_path_factory):
    """Grid model x lr, ASHA on val_acc with rungs at epochs 1 and 2, one trial at a time:
    (cnn, 0.1) finishes; the lr 1e-6 trials learn nothing and are stopped at epoch 1; the
    faulty model passes the rung (it learns like the cnn) and raises in epoch 2."""
    tmp = tmp_path_factory.mktemp("asha")
    sweep = {"name": "asha", "max_concurrent": 1, "retries": 0, "checkpoint_every": 1,
             "experiment": {**BASE, "method": "magnitude", "sparsity": 0.5, "seed": 3},
             "sweep": {"model": ["digits_cnn", "tests.sweeps.faulty:model"], "train.lr": [0.1, 1e-6]},
             "scheduler": {"name": "asha", "grace_period": 1, "reduction_factor": 2}}
    path = tmp / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep))
    with pytest.MonkeyPatch.context() as mp:  # the faulty model must import in Ray's workers
        mp.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
        mp.syspath_prepend(str(REPO))
        try:
            code = main(["run", str(path), "--storage", str(tmp / "out")])
        finally:
            ray.shutdown()
    folder = tmp / "out" / "asha"
    report = tmp / "report"
    assert main(["report", str(folder), "--out", str(report)]) == 0
    return code, folder, report / "report.md"


def test_asha_stops_by_epoch_and_an_errored_trial_keeps_its_identity(asha):
    code, folder, report = asha
    assert code == 1  # the errored trial
    table = pd.read_csv(folder / "results.csv")
    points, recs = tune_points(folder), records(folder)
    assert len(table) == len(points) == len(recs) == 4
    outcome = {}
    for name, point in points.items():
        row = table[table["path"].str.contains(name)].iloc[0]
        trial = point["trial"]
        assert (row["method"], row["sparsity"], row["seed"]) == ("magnitude", 0.5, 3)
        assert (row["model"], row["cfg.train.lr"]) == (trial["model"], trial["train.lr"])
        ends = [x for x in recs[name] if x["event"] == "end"]
        assert len(ends) == 1 and ends[0]["status"] == row["status"]
        outcome[(trial["model"].split(":")[-1], trial["train.lr"])] = row
    done, slow, faulty, faulty_slow = (outcome[k] for k in (("digits_cnn", 0.1), ("digits_cnn", 1e-6),
                                                            ("model", 0.1), ("model", 1e-6)))
    assert done["status"] == "finished" and done["complete"] and done["epochs_done"] == 3
    for stopped in (slow, faulty_slow):  # stopped at the first rung: after ONE training epoch
        assert stopped["status"] == "stopped" and stopped["epochs_done"] == 1
        assert stopped["reason"].startswith("stopped by ASHA after 1 epoch(s): val_acc")
        assert pd.isna(stopped["test_acc"])
    assert faulty["status"] == "errored" and faulty["epochs_done"] == 1
    assert faulty["reason"] == ("ConfigError: model_args.fail_after: gave up after 12 batches; "
                                "a second line of the same error")  # the message intact
    text = report.read_text()
    assert "4 trials (1 finished, 2 stopped, 1 errored)" in text
    failed = text[text.index("## Trials that did not finish"):]
    rows = [r for r in failed.splitlines() if r.startswith("| asha |")]
    assert len(rows) == 3 and all("| magnitude | 50% | 3 |" in r for r in rows)


def test_reports_never_carry_an_accuracy_before_it_is_measured(asha):
    _, folder, _ = asha
    for lines in records(folder).values():
        prune = next(x for x in lines if x["event"] == "epoch")
        assert prune["phase"] == "prune" and not {"test_acc", "val_acc"} & set(prune)
        assert lines[0]["selection"] == {"metric": "val_acc", "mode": "max", "by": ["asha"],
                                         "on_test": False}
    result = next(folder.glob("*/result.json")).read_text().splitlines()
    assert "test_acc" not in json.loads(result[0])  # what Tune saw first: the pruning step


def test_stopped_trials_do_not_fail_a_sweep():
    assert exit_code({"finished": 3, "stopped": 5, "diverged": 1}) == 0
    assert exit_code({"finished": 3, "errored": 1}) == 1
    assert exit_code({"finished": 3, "interrupted": 1}) == 1
    assert exit_code({"finished": 3, "not started": 2}) == 1


@pytest.fixture(scope="module")
def optuna(tmp_path_factory):
    """Optuna on val_acc: 2 methods x 2 sparsities, 2 sampled learning rates per grid point,
    on a file:// storage URI (the code path of s3:// and gs://)."""
    tmp = tmp_path_factory.mktemp("optuna")
    sweep = {"name": "tpe", "storage": f"file://{tmp}/store",
             "experiment": {**BASE, "train": {"epochs": 1, "batch_size": 128}},
             "sweep": {"method": ["magnitude", "snip"], "sparsity": [0.5, 0.8], "seed": [0],
                       "train.lr": {"loguniform": [0.01, 0.2]}},
             "search": {"algorithm": "optuna", "num_samples": 2, "seed": 0}}
    path = tmp / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep))
    try:
        code = main(["run", str(path)])
    finally:
        ray.shutdown()
    return code, tmp / "store" / "tpe"


def test_optuna_covers_the_grid_with_num_samples_per_point(optuna):
    code, folder = optuna
    assert code == 0
    table = pd.read_csv(folder / "results.csv")
    assert len(table) == 8 and set(table["status"]) == {"finished"}
    per_point = table.groupby(["method", "sparsity"])["cfg.train.lr"].agg(list)
    assert sorted(per_point.index) == [("magnitude", 0.5), ("magnitude", 0.8), ("snip", 0.5), ("snip", 0.8)]
    for lrs in per_point:
        assert len(lrs) == 2 and len(set(lrs)) == 2 and all(0.01 <= lr <= 0.2 for lr in lrs)
    points = tune_points(folder)
    for name, point in points.items():  # each row is the trial Tune ran, at its sampled lr
        row = table[table["path"].str.contains(name)].iloc[0]
        assert (row["method"], row["sparsity"]) == (point["trial"]["method"], point["trial"]["sparsity"])
        assert row["cfg.train.lr"] == point["train.lr"]
    assert table["val_acc"].notna().all() and table["selection"].eq("optuna on val_acc").all()
