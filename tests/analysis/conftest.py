"""Result records for the analysis tests: real records of tiny digits runs (written as a sweep
trial and `drive-sweep prune --out` write them), and hand-built ones written with the same
writer (drive.record)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from drive.schema import IDENTITY

TINY = {"device": "cpu", "train": {"epochs": 1, "batch_size": 128}, "model_args": {"width": 0.5}}
LAYERS = ["features.0.0", "features.1.0", "classifier"]


def config_tree(**axes: Any) -> dict[str, Any]:
    """TINY with dotted overrides (``train.epochs=2``)."""
    tree = json.loads(json.dumps(TINY))
    for key, value in axes.items():
        node = tree
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return tree


def run_real(record: Path | None = None, **axes: Any) -> dict[str, Any]:
    """A real experiment on digits, recorded (as a sweep trial or prune --out does) in ``record``."""
    from drive.config import build_config
    from drive.experiment import Experiment
    from drive.record import Recorder
    from drive.run import record_experiment

    cfg = build_config(config_tree(**axes))
    exp = Experiment(cfg)
    if record is None:
        return exp.run()
    recorder = Recorder(record, truncate=True)
    recorder.start(cfg, trial_id=record.parent.name if record.name == "metrics.jsonl" else None)
    return record_experiment(exp, recorder)


def method_info(method: str) -> dict[str, Any] | None:
    """What the writer records of a method (its ``Method.info()``), None for an unknown one."""
    from drive.errors import RegistryError
    from drive.method import get_method

    try:
        return get_method(method).info()
    except RegistryError:
        return None


def fake_metrics(method: str, sparsity: float, seed: int = 0, test_acc: float = 0.9,
                 prune_time_s: float = 1.0, prune_samples: int = 100, **fields: Any
                 ) -> dict[str, Any]:
    """Hand-built metrics in the contract's format (``final`` line without ``history``)."""
    density = 1.0 - sparsity
    layers = fields.pop("layer_density", {n: density for n in LAYERS})
    config = fields.pop("config", {})
    m = {"status": "finished", "reason": None, "method": method, "sparsity": sparsity,
         "model": "toy", "dataset": "toyset", "seed": seed, "device": "cpu", "epochs": 4,
         "warmup_epochs": 0, "prune_iterations": 1, "test_acc": test_acc, "test_loss": 0.5,
         "best_test_acc": test_acc + 0.01, "density": density, "layer_density": layers,
         "params_remaining": round(1000 * density), "params_prunable": 1000,
         "collapsed_layers": [n for n, d in layers.items() if d == 0], "params_total": 1100,
         "flops_dense": 1_000_000, "flops": round(1_000_000 * density), "flops_fraction": density,
         "prune_time_s": prune_time_s, "prune_samples": prune_samples, "train_time_s": 2.0,
         "total_time_s": prune_time_s + 2.0, "eval_time_s": 0.1, "wall_time_s": 5.0,
         "levels": [], "method_info": method_info(method),
         "config": {"method": method, "sparsity": sparsity, "model": "digits_cnn", "seed": seed,
                    "train": {"epochs": 4}, **config}}
    m.update(fields)
    return m


def write_record(folder: Path, trial_id: str, metrics: dict[str, Any] | None = None,
                 lines: list[dict[str, Any]] = (), end: dict[str, Any] | None = None,
                 tail: str = "", **start: Any) -> Path:
    """A trial's record ``<folder>/<trial_id>/metrics.jsonl`` written with the real writer:
    ``start`` (identity and config from ``metrics``, or ``start``), ``lines`` (epoch/level
    events), then the end: ``metrics`` as the final metrics, or ``end`` (status, reason), or
    none; ``tail`` is appended raw (e.g. a line cut short)."""
    from drive.record import Recorder

    path = folder / trial_id / "metrics.jsonl"
    rec = Recorder(path, truncate=True)
    src = {**(metrics or {}), **start}
    ident = {k: src.get(k) for k in IDENTITY}
    info = src.get("method_info", method_info(src["method"]) if src.get("method") else None)
    rec.write("start", record=1, **ident, trial_id=trial_id, resumed=None, selection=None,
              provenance=None, method_info=info, config=src.get("config", {}))
    for line in lines:
        rec.write(line["event"], **{k: v for k, v in line.items() if k != "event"})
    if end is not None:
        rec.end_status(**end)
    elif metrics is not None:
        rec.end(metrics)
    with path.open("a") as f:
        f.write(tail)
    return path


def epoch_line(epoch: int, **fields: Any) -> dict[str, Any]:
    return {"event": "epoch", "phase": "train", "level": 0, "epoch": epoch, "epochs_done": epoch,
            "train_loss": 1.0, "train_acc": 0.5, "test_acc": 0.5, "lr": 0.1, "density": 1.0,
            "prune_time_s": 0.5, "prune_samples": 64, "train_time_s": float(epoch), **fields}


@pytest.fixture
def make() -> SimpleNamespace:
    """Helpers to build result files."""
    return SimpleNamespace(metrics=fake_metrics, write_record=write_record, epoch=epoch_line,
                           run_real=run_real)


#: The real sweep: (axes, seeds). Sparsities 0.5 and 0.9; IMP lands on both.
SWEEP = [
    ({"method": "dense"}, (0, 1)),
    ({"method": "imp", "sparsity": 0.9, "imp.branches": [0.5], "imp.rate": 0.5}, (0, 1)),
    ({"method": "snip", "sparsity": 0.5}, (0, 1)),
    ({"method": "snip", "sparsity": 0.9}, (0, 1)),
    ({"method": "magnitude", "sparsity": 0.5}, (0, 1)),
    ({"method": "magnitude", "sparsity": 0.9}, (0, 1)),
    ({"method": "drive", "sparsity": 0.9, "train.epochs": 2, "warmup_epochs": 1,
      "prune_iterations": 2}, (0, 1)),
    ({"method": "drive", "sparsity": 0.9, "train.epochs": 2, "warmup_epochs": 1,
      "prune_iterations": 1}, (0,)),
]


@pytest.fixture(scope="session")
def real_sweep(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A small real sweep on digits recorded as a sweep's experiment folder, plus one errored,
    one running trial and one `drive-sweep prune --out` record; built once per session."""
    import torch

    root = tmp_path_factory.mktemp("real")
    experiment = root / "sweep"
    metrics = []
    n = 0
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny runs: one thread is as fast, and immune to a busy machine
    try:
        for axes, seeds in SWEEP:
            for seed in seeds:
                trial = experiment / f"{axes['method']}_{n:05d}" / "metrics.jsonl"
                metrics.append(run_real(trial, **axes, seed=seed))
                n += 1
        pruned = root / "pruned"
        random_metrics = run_real(pruned / "random_s0.9.jsonl", method="random", sparsity=0.9, seed=0)
    finally:
        torch.set_num_threads(threads)
    grasp = {"method": "grasp", "sparsity": 0.9, "seed": 0, "epochs": 1, "config": config_tree(
        method="grasp", sparsity=0.9)}
    write_record(experiment, "err01", lines=[epoch_line(1, density=0.1)],
                 end={"status": "errored", "reason": "RuntimeError: CUDA out of memory"}, **grasp)
    running = {"method": "snip", "sparsity": 0.9, "seed": 2, "epochs": 1,
               "config": config_tree(method="snip", sparsity=0.9, seed=2)}
    write_record(experiment, "run01", tail='{"event": "epoch", "phase": "tr', **running)
    return SimpleNamespace(experiment=experiment, pruned=pruned / "random_s0.9.jsonl",
                           metrics=metrics, random=random_metrics)
