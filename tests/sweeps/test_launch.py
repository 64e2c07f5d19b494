"""Sweeps on embedded local Ray (2 CPUs): results per trial, crash recovery from checkpoints."""

import json
from pathlib import Path

import pytest
import ray

from sweeps.launch import resolved_base, run_sweep
from sweeps.spec import SweepError, load_spec
from sweeps.trainable import FAIL_ONCE_ENV

FAST = {"dataset": "digits", "model": "digits_cnn", "model_args": {"width": 0.5}, "device": "cpu",
        "train": {"epochs": 2, "batch_size": 128}}


def events(trial_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines() if line.strip()]


def trial_dirs(path: str) -> list[Path]:
    return sorted(p.parent for p in Path(path).glob("*/result.json"))


@pytest.fixture(autouse=True)
def fresh_ray():
    yield
    ray.shutdown()


def test_a_small_grid_gives_one_final_result_per_trial_with_its_config(tmp_path):
    spec = load_spec(tree={"name": "grid", "storage": str(tmp_path), "experiment": FAST,
                           "sweep": {"method": ["snip", "magnitude"], "sparsity": [0.5, 0.9], "seed": [0]}})
    path = run_sweep(spec, verbose=0)
    dirs = trial_dirs(path)
    assert len(dirs) == 4
    seen = set()
    for d in dirs:
        point = json.loads((d / "params.json").read_text())["trial"]
        finals = [e for e in events(d) if e["event"] == "final"]
        assert len(finals) == 1
        final = finals[0]
        assert final["status"] == "finished"
        assert (final["method"], final["sparsity"]) == (point["method"], point["sparsity"])
        config = final["experiment_config"]
        assert config["method"] == point["method"] and config["sparsity"] == point["sparsity"]
        assert config["model_args"] == {"width": 0.5} and config["train"]["epochs"] == 2
        assert final["provenance"]["versions"]["torch"]
        assert [e["epochs_done"] for e in events(d) if e["event"] == "epoch" and e["phase"] == "train"] == [1, 2]
        seen.add((point["method"], point["sparsity"]))
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
    assert len(crashed) == 1, "exactly one trial died after epoch 3 and reported it again"
    assert trained[crashed[0]] == [1, 2, 3, 3, 4, 5]  # resumed from the epoch-2 checkpoint, not from 0
    finals = [next(e for e in ev if e["event"] == "final") for ev in runs.values()]
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


def test_sampled_axes_with_optuna_asha_and_uri_storage(tmp_path):
    """Sampled learning rates through Optuna, the ASHA scheduler, and a storage URI (the code
    path of s3:// and gs://, here on the local file system)."""
    from sweeps.results import write_results

    spec = load_spec(tree={
        "name": "tuned", "storage": f"file://{tmp_path}/store",
        "experiment": {**FAST, "method": "snip", "sparsity": 0.8},
        "sweep": {"train.lr": {"loguniform": [0.01, 0.2]}, "seed": [0]},
        "search": {"algorithm": "optuna", "num_samples": 3, "seed": 0},
        "scheduler": {"name": "asha", "max_t": 10, "grace_period": 1}})
    path = run_sweep(spec, verbose=0)
    assert path == f"file://{tmp_path}/store/tuned"
    folder = tmp_path / "store" / "tuned"
    lrs = []
    for d in trial_dirs(str(folder)):
        ev = events(d)
        assert ev[-1]["event"] in ("final", "epoch")  # ASHA may stop a trial early
        lrs += [e["experiment_config"]["train"]["lr"] for e in ev if e["event"] == "final"]
    assert len(trial_dirs(str(folder))) == 3 and lrs
    assert all(0.01 <= lr <= 0.2 for lr in lrs) and len(set(lrs)) == len(lrs)
    frame = write_results(path)
    assert (folder / "results.csv").exists() and (folder / "results.parquet").exists()
    assert set(frame["status"]) <= {"finished", "running"}
