"""How long ``analysis.results.load`` takes on a folder of 2,000 trials.

Writes 2,000 synthetic trial records in the format of docs/results.md with the real writer
(``drive.record``: a ``start`` line with the resolved config, ``epoch`` lines, IMP ``level``
lines, an ``end`` line; some trials errored, some still running) into a temporary experiment
folder, then times ``load`` on it.

    python -m benchmarks.bench_results_loading [--trials 2000] [--epochs 12] [--repeat 3]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import Case, best, entry_point, print_table, side_by_side, verdict
from drive.config import set_dotted
from drive.record import Recorder
from drive.schema import RECORD_FILE

METHODS = ["drive", "snip", "grasp", "synflow", "magnitude", "random", "imp"]
SPARSITIES = [0.5, 0.8, 0.9, 0.95, 0.98, 0.99]
LAYERS = [f"features.{i}.0" for i in range(12)] + ["classifier"]
BASE = {"model": "resnet20", "dataset": "cifar10", "device": "cuda", "train.epochs": 160,
        "train.lr": 0.1, "train.batch_size": 128, "train.weight_decay": 1e-4,
        "train.schedule": "step", "drive.weights": [1.0, 1.0, 1.0], "drive.normalize": "mean",
        "drive.combine": "sum", "prune.score_batches": 1, "data.root": "/data"}


def _summary(rng: random.Random, sparsity: float) -> dict[str, Any]:
    density = 1 - sparsity
    return {"density": density, "params_prunable": 270_000,
            "params_remaining": round(density * 270_000),
            "layer_density": {n: min(1.0, density * rng.uniform(0.3, 3)) for n in LAYERS},
            "collapsed_layers": []}


def _write_trial(folder: Path, i: int, rng: random.Random, epochs: int) -> None:
    method = METHODS[i % len(METHODS)]
    sparsity = SPARSITIES[(i // len(METHODS)) % len(SPARSITIES)]
    params = {**BASE, "method": method, "sparsity": sparsity, "seed": i % 5,
              "warmup_epochs": 1 + i % 3, "prune_iterations": None if method == "imp" else 10}
    trial_id = f"{i:05d}"
    config: dict[str, Any] = {}
    for key, value in params.items():
        set_dotted(config, key, value)
    rec = Recorder(folder / RECORD_FILE)
    rec.write("start", record=1, method=method, sparsity=sparsity, model="resnet20",
              dataset="cifar10", seed=params["seed"], epochs=160,
              warmup_epochs=params["warmup_epochs"] if method == "drive" else 0,
              prune_iterations=params["prune_iterations"], trial_id=trial_id, resumed=None,
              selection=None, provenance={"git_commit": "0" * 40}, config=config)
    fate = "errored" if i % 50 == 7 else "running" if i % 50 == 13 else "finished"
    last = epochs // 3 if fate != "finished" else epochs
    levels = []
    for epoch in range(1, last + 1):
        rec.write("epoch", phase="train", level=0, epoch=epoch, epochs_done=epoch,
                  train_loss=rng.random(), train_acc=rng.random(), test_acc=rng.random(), lr=0.1,
                  density=1 - sparsity, prune_time_s=3.0, prune_samples=50_000,
                  train_time_s=epoch * 9.0)
        if method == "imp" and epoch % 2 == 0:  # one level per two epochs
            level = {"level": len(levels) + 1, "sparsity": round(1 - 0.8 ** (len(levels) + 1), 10),
                     "test_acc": rng.random(), "best_test_acc": rng.random(),
                     "prune_time_s": 20.0 * epoch, "prune_samples": 100_000 * epoch,
                     "train_time_s": 9.0, "total_time_s": 20.0 * epoch + 9,
                     **_summary(rng, 1 - 0.8 ** (len(levels) + 1))}
            levels.append(level)
            rec.write("level", **level)
    if fate == "finished":
        acc = rng.random()
        rec.end({"status": "finished", "reason": None, "method": method, "sparsity": sparsity,
                 "model": "resnet20", "dataset": "cifar10", "seed": params["seed"],
                 "device": "cuda", "epochs": 160,
                 "warmup_epochs": params["warmup_epochs"] if method == "drive" else 0,
                 "prune_iterations": len(levels) if method == "imp" else 10,
                 "test_acc": acc, "test_loss": 1.0, "best_test_acc": acc + 0.01,
                 **_summary(rng, sparsity), "params_total": 272_000,
                 "prune_time_s": 3.0, "prune_samples": 50_000, "train_time_s": 9.0 * epochs,
                 "total_time_s": 3 + 9.0 * epochs, "eval_time_s": 1.0,
                 "wall_time_s": 10.0 * epochs, "levels": levels})
    elif fate == "errored":
        rec.end_status("errored", "OutOfMemoryError: CUDA out of memory.")


def write_experiment(root: Path, trials: int, epochs: int, seed: int = 0) -> Path:
    """A synthetic experiment folder of ``trials`` trial folders; returns its path."""
    rng = random.Random(seed)
    experiment = root / "bench_experiment"
    for i in range(trials):
        _write_trial(experiment / f"trial_{i:05d}", i, rng, epochs)
    (experiment / "experiment_state-2025-01-01_00-00-00.json").write_text("{}")  # Tune's, unread
    return experiment


TARGET_S = 10.0


def run(opts: argparse.Namespace) -> dict[str, Any]:
    from analysis.results import load

    print(f"\n== Results loading: analysis.results.load on {opts.trials} synthetic trial records ==",
          flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        folder = write_experiment(Path(tmp), opts.trials, opts.epochs)
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        print(f"wrote {opts.trials} trials ({size / 1e6:.1f} MB) in {time.perf_counter() - start:.1f} s")
        frames = []
        times = side_by_side([Case("load", lambda: frames.append(load(folder)))], opts.repeat)
    df, took = frames[-1], best(times["load"])
    print(f"load: {took:.2f} s for {opts.trials} trials -> {len(df)} rows x {df.shape[1]} "
          f"columns (best of {opts.repeat}); statuses: {df['status'].value_counts().to_dict()}")
    checks = [{"target": f"load {opts.trials} trials < {TARGET_S:g} s", "value": f"{took:.2f} s",
               "status": verdict(took < TARGET_S if opts.trials >= 2000 else None)}]
    print_table(checks, title="targets")
    return {"trials": opts.trials, "megabytes": size / 1e6, "rows": len(df), "columns": df.shape[1],
            "load_s": took, "rounds_s": times["load"], "targets": checks}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_results_loading", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=12, help="epoch lines per finished trial")
    p.add_argument("--repeat", type=int, default=3)
    return p


QUICK = ["--trials", "200", "--repeat", "1"]


main = entry_point(build_parser, run)


if __name__ == "__main__":
    main()
