"""Trackers through Ray Tune's callbacks: TensorBoard, progress.csv with every metric, MLflow to a
local file store, W&B offline, and each trial's own output. One small sweep serves them all."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sweeps.csv_logger import AllMetricsCSVCallback
from sweeps.loggers import logger_entries
from sweeps.spec import SweepError, load_spec

FAKES = Path(__file__).resolve().parents[1] / "fakes"
EPOCHS = 3
SWEEP = {
    "name": "tracked", "checkpoint_every": 2,
    "experiment": {"dataset": "digits", "model": "drive_test_fakes:noisy_digits_cnn", "device": "cpu",
                   "method": "magnitude", "train": {"epochs": EPOCHS, "batch_size": 128}},
    "sweep": {"sparsity": [0.5, 0.9]},
    "loggers": ["tensorboard", "csv", "json", {"mlflow": {}}, {"wandb": {"mode": "offline"}}],
}


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    base = tmp_path_factory.mktemp("tracked")
    (base / "sweep.yaml").write_text(yaml.safe_dump(SWEEP))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(FAKES), *sys.path]), "WANDB_SILENT": "true"}
    env.pop("WANDB_API_KEY", None)
    run = subprocess.run([sys.executable, "-m", "sweeps.cli", "run", str(base / "sweep.yaml"),
                          "--storage", str(base / "results")], cwd=base, env=env,
                         capture_output=True, text=True, timeout=500)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    path = base / "results" / "tracked"
    return {"path": path, "output": run.stdout + run.stderr,
            "trials": sorted(p.parent for p in path.glob("*/result.json"))}


def test_tensorboard_event_files_hold_test_accuracy_per_epoch(swept):
    from tbparse import SummaryReader

    assert len(swept["trials"]) == 2
    for trial in swept["trials"]:
        assert list(trial.glob("events.out.tfevents.*"))
        scalars = SummaryReader(str(trial)).scalars
        series = scalars.pivot_table(index="step", columns="tag", values="value")
        # an epoch's report carries test_acc once it was measured (every epoch here)
        trained = series[series["ray/tune/test_acc"].notna() & series["ray/tune/train_loss"].notna()]
        per_epoch = trained.set_index("ray/tune/epochs_done")["ray/tune/test_acc"]
        assert list(per_epoch.index) == list(range(1, EPOCHS + 1))
        assert per_epoch.between(0, 1).all() and per_epoch.iloc[-1] > 0.1  # above chance
        final = json.loads((trial / "result.json").read_text().splitlines()[-1])
        assert per_epoch.iloc[-1] == pytest.approx(final["test_acc"])


def test_progress_csv_has_every_metric_including_the_final_ones(swept):
    for trial in swept["trials"]:
        with (trial / "progress.csv").open(newline="") as f:
            rows = list(csv.DictReader(f))
        events = [json.loads(line) for line in (trial / "result.json").read_text().splitlines()]
        assert len(rows) == len(events)
        assert rows[0]["event"] == "epoch" and rows[-1]["event"] == "end"
        for key in ("test_acc", "best_test_acc", "density", "prune_time_s", "train_time_s", "params_remaining"):
            assert rows[-1][key] != "", key
        assert float(rows[-1]["test_acc"]) == pytest.approx(events[-1]["test_acc"])
        assert any(k.startswith("layer_density/") for k in rows[-1])


def test_mlflow_runs_in_a_local_database_file(swept):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{swept['path'] / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tracked")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 2
    for run in runs:
        history = client.get_metric_history(run.info.run_id, "test_acc")
        assert len(history) >= EPOCHS and 0 < history[-1].value <= 1


def test_wandb_offline_runs_are_written_for_a_later_sync(swept):
    for trial in swept["trials"]:
        runs = list(trial.glob("wandb/offline-run-*/run-*.wandb"))
        assert len(runs) == 1 and runs[0].stat().st_size > 0, list(trial.rglob("*"))[:20]


def test_trial_output_is_in_the_terminal_and_in_the_trial_folder(swept):
    assert "noisy model: built on stdout" in swept["output"]
    for trial in swept["trials"]:
        assert "noisy model: built on stdout" in (trial / "stdout").read_text()
        assert "noisy model: a warning from the trial" in (trial / "stderr").read_text()


def test_logger_entries_are_validated():
    assert logger_entries(["tensorboard", {"mlflow": {"tracking_uri": "file:///x"}}]) == {
        "tensorboard": {}, "mlflow": {"tracking_uri": "file:///x"}}
    with pytest.raises(SweepError, match="loggers.*'comet' is not a logger; allowed: json, csv, tensorboard, mlflow, wandb"):
        load_spec(tree={"loggers": ["comet"]})
    with pytest.raises(SweepError, match="loggers.*an entry is a logger name"):
        load_spec(tree={"loggers": [{"mlflow": 1, "wandb": 2}]})
    assert load_spec(tree={}).loggers == ["tensorboard", "csv", "json"]
    # options Ray's callback would refuse with a TypeError once the sweep had started, or ignore
    with pytest.raises(SweepError, match="loggers.*mlflow: unknown option.s. trackin_uri; allowed: tracking_uri"):
        load_spec(tree={"loggers": [{"mlflow": {"trackin_uri": "file:///x"}}]})
    with pytest.raises(SweepError, match=r"loggers.*tensorboard takes no options, got \['flush_secs'\]"):
        load_spec(tree={"loggers": [{"tensorboard": {"flush_secs": 5}}]})
    assert logger_entries([{"wandb": {"mode": "offline", "entity": "me"}}])["wandb"]["entity"] == "me"


def test_a_missing_optional_tracker_names_its_extra(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(ValueError, match=r"wandb needs the wandb package: pip install 'drive-sweeps\[wandb\]'"):
        logger_entries(["wandb"])


class _Trial:
    def __init__(self, path):
        self.local_path = str(path)

    def init_local_path(self):
        Path(self.local_path).mkdir(parents=True, exist_ok=True)


def test_the_csv_grows_its_columns_and_keeps_every_row(tmp_path):
    callback, trial = AllMetricsCSVCallback(), _Trial(tmp_path / "t")
    callback.log_trial_result(1, trial, {"event": "epoch", "test_acc": 0.5, "config": {"x": 1}})
    callback.log_trial_result(2, trial, {"event": "epoch", "test_acc": 0.6})
    callback.log_trial_result(3, trial, {"event": "final", "test_acc": 0.7, "layer_density": {"fc": 0.1}})
    callback.log_trial_end(trial)
    callback.log_trial_result(4, trial, {"event": "epoch", "test_acc": 0.8})  # e.g. after a restore
    with (tmp_path / "t" / "progress.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["test_acc"] for r in rows] == ["0.5", "0.6", "0.7", "0.8"]
    assert rows[2]["layer_density/fc"] == "0.1" and rows[0]["layer_density/fc"] == ""
    assert "config" not in rows[0] and "config/x" not in rows[0]
