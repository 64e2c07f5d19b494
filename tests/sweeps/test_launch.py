"""Sweeps on embedded local Ray (2 CPUs): results per trial, crash recovery from checkpoints."""

import json
from pathlib import Path

import pytest
import ray

from drive.record import read_record
from sweeps.launch import run_sweep
from sweeps.spec import SweepError, load_spec
from sweeps.trainable import FAIL_ONCE_ENV
from sweeps.trials import resolved_base

FAST = {"dataset": "digits", "model": "digits_cnn", "model_args": {"width": 0.5}, "device": "cpu",
        "train": {"epochs": 2, "batch_size": 128}}


def events(trial_dir: Path) -> list[dict]:
    """The raw lines of a trial's record."""
    return [json.loads(line) for line in (trial_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


def trial_dirs(path: str) -> list[Path]:
    return sorted(p.parent for p in Path(path).glob("*/metrics.jsonl"))


@pytest.fixture(autouse=True)
def fresh_ray():
    yield
    ray.shutdown()


def test_a_small_grid_gives_one_record_per_trial_with_its_config(tmp_path):
    spec = load_spec(tree={"name": "grid", "storage": str(tmp_path), "experiment": FAST,
                           "sweep": {"method": ["magnitude", "snip"], "sparsity": [0.5, 0.9], "seed": [0]}})
    path = run_sweep(spec, verbose=0)
    dirs = trial_dirs(path)
    assert len(dirs) == 4
    # the longer trials (SNIP scores a batch, magnitude nothing) start first, whatever the axis order
    starts = sorted((events(d)[0]["time"], events(d)[0]["method"]) for d in dirs)
    assert [m for _, m in starts] == ["snip", "snip", "magnitude", "magnitude"]
    seen = set()
    for d in dirs:
        lines = events(d)
        start, ends = lines[0], [e for e in lines if e["event"] == "end"]
        assert start["event"] == "start" and len(ends) == 1
        end = ends[0]
        assert end["status"] == "finished"
        assert (end["method"], end["sparsity"]) == (start["method"], start["sparsity"])
        config = start["config"]
        assert config["method"] == start["method"] and config["sparsity"] == start["sparsity"]
        assert config["model_args"] == {"width": 0.5} and config["train"]["epochs"] == 2
        assert start["provenance"]["versions"]["torch"] and start["trial_id"] in d.name
        assert start["selection"] is None  # a grid: nothing ranks the trials
        train = [e for e in lines if e["event"] == "epoch" and e["phase"] == "train"]
        assert [e["epochs_done"] for e in train] == [1, 2]
        # no validation split: no val metric, and no accuracy before the first evaluation
        assert all("val_acc" not in e for e in lines if e["event"] == "epoch") and end["val_acc"] is None
        assert "test_acc" not in next(e for e in lines if e["event"] == "epoch" and e["phase"] == "prune")
        seen.add((start["method"], start["sparsity"]))
    assert seen == {("snip", 0.5), ("snip", 0.9), ("magnitude", 0.5), ("magnitude", 0.9)}
    assert (Path(path) / "sweep.yaml").exists()


def test_a_crashed_trial_resumes_from_its_checkpoint_and_ends_like_its_twin(tmp_path, monkeypatch):
    marker = tmp_path / "crashed"
    monkeypatch.setenv(FAIL_ONCE_ENV, f"3:{marker}")
    # two identical experiments: data.num_workers is unused by digits, so only the name differs
    spec = load_spec(tree={
        "name": "crash", "storage": str(tmp_path / "out"), "checkpoint_every": 2,
        "experiment": {**FAST, "method": "drive", "warmup_epochs": 1, "prune_iterations": 2,
                       "train": {**FAST["train"], "epochs": 5}},
        "sweep": {"data.num_workers": [3, 4]}})
    path = run_sweep(spec, verbose=0)
    assert marker.exists()
    runs = {d: events(d) for d in trial_dirs(path)}
    trained = {d: [e["epochs_done"] for e in ev if "train_loss" in e] for d, ev in runs.items()}
    crashed = [d for d, done in trained.items() if done.count(3) == 2]
    assert len(crashed) == 1, "exactly one trial died after epoch 3 and recorded it again"
    assert trained[crashed[0]] == [1, 2, 3, 3, 4, 5]  # resumed from the epoch-2 checkpoint, not from 0
    starts = [e for e in runs[crashed[0]] if e["event"] == "start"]
    assert [s["resumed"] for s in starts][0] is None and starts[1]["resumed"]["epochs_done"] == 2
    record = read_record(crashed[0] / "metrics.jsonl")
    assert record.attempts == 2 and record.status == "finished"
    assert [h["epochs_done"] for h in record.history if "train_loss" in h] == [1, 2, 3, 4, 5]
    finals = [next(e for e in ev if e["event"] == "end") for ev in runs.values()]
    keys = ("test_acc", "best_test_acc", "test_loss", "density", "layer_density", "params_remaining")
    assert {k: finals[0][k] for k in keys} == {k: finals[1][k] for k in keys}


def test_the_same_name_twice_is_refused(tmp_path):
    spec = load_spec(tree={"name": "twice", "storage": str(tmp_path), "experiment": FAST,
                           "sweep": {"method": ["magnitude"], "sparsity": [0.5]}})
    run_sweep(spec, verbose=0)
    with pytest.raises(SweepError, match="already holds a sweep"):
        run_sweep(spec, verbose=0)


def test_missing_data_fails_before_ray_starts(tmp_path):
    spec = load_spec(tree={"name": "nodata", "storage": str(tmp_path), "experiment": {
        **FAST, "method": "snip", "dataset": "cifar10", "model": "resnet20",
        "data": {"root": str(tmp_path / "none")}}})
    with pytest.raises(Exception, match="data.root"):
        run_sweep(spec, verbose=0)
    assert not ray.is_initialized()


def test_relative_data_root_is_pinned_to_the_launch_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = load_spec(tree={"experiment": {"data": {"root": "data"}}})
    assert resolved_base(spec)["data"]["root"] == str(tmp_path / "data")
    spec = load_spec(tree={"experiment": {"data": {"root": "~/data"}}})
    assert resolved_base(spec)["data"]["root"] == "~/data"


def test_missing_data_leaves_no_experiment_folder(tmp_path):
    spec = load_spec(tree={"name": "nodata", "storage": str(tmp_path), "experiment": {
        **FAST, "method": "snip", "dataset": "cifar10", "model": "resnet20",
        "data": {"root": str(tmp_path / "none")}}})
    with pytest.raises(SweepError):
        run_sweep(spec, verbose=0)
    assert not (tmp_path / "nodata").exists()


def test_two_launches_at_once_exactly_one_claims_the_name(tmp_path):
    """Eight launches released at the same instant (an O_EXCL create decides, as between
    processes): exactly one owns the folder."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from sweeps.storage import claim

    path = str(tmp_path / "race")
    gate = threading.Barrier(8)

    def launch(i: int) -> bool:
        gate.wait()
        return claim(path, f"launch {i}\n", "sweep.yaml")

    with ThreadPoolExecutor(8) as pool:
        won = list(pool.map(launch, range(8)))
    assert sum(won) == 1
    assert (tmp_path / "race" / "sweep.yaml").read_text() == f"launch {won.index(True)}\n"


def test_a_launch_failing_before_tune_starts_removes_its_claim(tmp_path, monkeypatch):
    import sweeps.launch as launch

    def broken(*args, **kwargs):
        raise RuntimeError("tune could not start")

    monkeypatch.setattr(launch, "_new_tuner", broken)
    spec = load_spec(tree={"name": "broken", "storage": str(tmp_path),
                           "experiment": {**FAST, "method": "snip"}, "sweep": {"sparsity": [0.5]}})
    with pytest.raises(RuntimeError, match="tune could not start"):
        run_sweep(spec, verbose=0)
    assert not (tmp_path / "broken").exists() and tmp_path.exists()
