"""Result folders for the analysis tests: real metrics from tiny digits runs, and hand-written
Ray Tune trial folders in the format of docs/results.md."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

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


def run_real(**axes: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A real experiment on digits: its metrics and the result.json lines a sweep reports."""
    from drive.config import build_config
    from drive.experiment import run

    cfg = build_config(config_tree(**axes))
    lines: list[dict[str, Any]] = []

    def report(p) -> None:
        lines.append({"event": "epoch", **p.metrics})
        if p.level:
            lines.append({"event": "level", **p.level, "method": cfg.method, "model": cfg.model,
                          "dataset": cfg.dataset, "seed": cfg.seed, "epochs": cfg.train.epochs,
                          "experiment_config": cfg.model_dump(mode="json")})

    metrics = run(cfg, report)
    final = {k: v for k, v in metrics.items() if k not in ("history", "config")}
    lines.append({"event": "final", **final, "experiment_config": metrics["config"]})
    return metrics, lines


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
         "prune_time_s": prune_time_s, "prune_samples": prune_samples, "train_time_s": 2.0,
         "total_time_s": prune_time_s + 2.0, "eval_time_s": 0.1, "wall_time_s": 5.0,
         "levels": [],
         "config": {"method": method, "sparsity": sparsity, "model": "digits_cnn", "seed": seed,
                    "train": {"epochs": 4}, **config}}
    m.update(fields)
    return m


def tune_lines(lines: list[dict[str, Any]], trial_id: str, params: dict[str, Any]) -> str:
    """result.json text: each line with the fields Ray Tune adds (``config`` = the params)."""
    return "".join(json.dumps({**line, "trial_id": trial_id, "training_iteration": i + 1,
                               "date": "2025-01-01_00-00-00", "time_total_s": 1.0 + i,
                               "config": params}) + "\n" for i, line in enumerate(lines))


def write_trial(experiment: Path, trial_id: str, lines: list[dict[str, Any]],
                params: dict[str, Any], error: str | None = None, tail: str = "") -> Path:
    """A Ray Tune trial folder; ``tail`` is appended raw (e.g. a half-written line)."""
    folder = experiment / f"train_{trial_id}_{params.get('method', 'x')}"
    folder.mkdir(parents=True)
    (folder / "params.json").write_text(json.dumps(params))
    (folder / "result.json").write_text(tune_lines(lines, trial_id, params) + tail)
    if error is not None:
        (folder / "error.txt").write_text(
            "Failure # 1 (occurred at 2025-01-01_00-00-00)\nTraceback (most recent call last):\n"
            f'  File "trainable.py", line 3, in train\n{error}\n\n')
    return folder


def epoch_line(epoch: int, **fields: Any) -> dict[str, Any]:
    return {"event": "epoch", "phase": "train", "level": 0, "epoch": epoch, "epochs_done": epoch,
            "train_loss": 1.0, "train_acc": 0.5, "test_acc": 0.5, "lr": 0.1, "density": 1.0,
            "prune_time_s": 0.5, "prune_samples": 64, "train_time_s": float(epoch), **fields}


@pytest.fixture
def make() -> SimpleNamespace:
    """Helpers to build result files."""
    return SimpleNamespace(metrics=fake_metrics, write_trial=write_trial, epoch=epoch_line,
                           run_real=run_real, tune_lines=tune_lines)


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
    """A small real sweep on digits written as a Ray Tune experiment folder, plus one errored,
    one running and one `drive-sweep prune --out` file; built once per session."""
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
                m, lines = run_real(**axes, seed=seed)
                params = {**axes, "seed": seed, "train.epochs": axes.get("train.epochs", 1),
                          "model_args.width": 0.5, "device": "cpu", "train.batch_size": 128}
                write_trial(experiment, f"{n:05d}", lines, params)
                metrics.append(m)
                n += 1
        random_metrics, _ = run_real(method="random", sparsity=0.9, seed=0)
    finally:
        torch.set_num_threads(threads)
    grasp = {"method": "grasp", "sparsity": 0.9, "seed": 0, "train.epochs": 1}
    write_trial(experiment, "err01", [epoch_line(1, density=0.1)], grasp,
                error="RuntimeError: CUDA out of memory")
    running = {"method": "snip", "sparsity": 0.9, "seed": 2, "train.epochs": 1}
    write_trial(experiment, "run01", [], running, tail='{"event": "epoch", "phase": "tr')
    pruned = root / "pruned"
    pruned.mkdir()
    (pruned / "random_s0.9.json").write_text(json.dumps(random_metrics))
    return SimpleNamespace(experiment=experiment, pruned=pruned / "random_s0.9.json",
                           metrics=metrics, random=random_metrics)
