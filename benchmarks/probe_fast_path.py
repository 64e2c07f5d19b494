"""One process's measurements for :mod:`benchmarks.bench_before_after`, run against a source tree.

Run as ``PYTHONPATH=<tree> python benchmarks/probe_fast_path.py --out FILE ...``. It imports
only what every version of ``drive`` since the method registry has (``Experiment``,
``train_step``, ``train_epoch``, ``make_optimizer``, ``Masks``, ``save_state``), so the same
script measures the code before and after a change; it uses ``CheckpointWriter`` where the tree
has one. It writes one JSON object: step times, epoch times and checkpoint sizes and times.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

import drive.state as state_module
from drive.config import build_config
from drive.experiment import Experiment
from drive.masks import Masks
from drive.models import build_model
from drive.train import make_optimizer, train_epoch, train_step

#: model -> (channels, side, batch size of the project's config)
STEP_MODELS = {"digits_cnn": (1, 8, 64), "resnet20": (3, 32, 128)}


def timed(fn: Any, min_seconds: float, at_least: int = 2) -> float:
    """Seconds per call: the best of batches of calls spread over ``min_seconds``."""
    fn()
    calls, spent, best = 1, 0.0, float("inf")
    while spent < min_seconds or calls < at_least:
        start = time.perf_counter()
        fn()
        took = time.perf_counter() - start
        best, spent, calls = min(best, took), spent + took, calls + 1
    return best


def step_times(name: str, seconds: float) -> dict[str, float]:
    """ms per training step of ``name``: dense masks (a dense phase) and 90%-sparse masks."""
    channels, side, batch = STEP_MODELS[name]
    cfg = build_config({"device": "cpu"}).train.model_copy(update={"batch_size": batch})
    out = {}
    for phase in ("dense", "sparse"):
        torch.manual_seed(0)
        model = build_model(name, 10, channels, side).to(memory_format=torch.channels_last)
        masks = Masks.for_model(model)
        if phase == "sparse":
            masks.prune_to({n: w.detach().abs() for n, w in masks.weights.items()}, 0.1)
        optimizer = make_optimizer(model, cfg)
        for group in optimizer.param_groups:
            group["lr"] = 0.0  # the same weights all along (no float denormals), as bench_masks
        x = torch.randn(batch, channels, side, side).contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, 10, (batch,))
        out[phase] = 1000 * timed(lambda: train_step(model, x, y, optimizer, masks, cfg, torch.device("cpu")),
                                  seconds)
    return out


def epoch_time(fields: dict[str, Any], seconds: float) -> float:
    """Seconds of one 90%-sparse training epoch through the experiment's own loader."""
    exp = Experiment(build_config({"device": "cpu", "method": "magnitude", **fields}))
    exp.masks.prune_to({n: w.detach().abs() for n, w in exp.masks.weights.items()}, 0.1)
    optimizer = make_optimizer(exp.model, exp.cfg.train)
    epoch = [0]

    def one() -> None:
        exp.train_batches.set_epoch(epoch[0])
        epoch[0] += 1
        train_epoch(exp.model, exp.train_batches, optimizer, exp.masks, exp.cfg.train, exp.device)

    return timed(one, seconds)


class Stop(Exception):
    pass


def checkpoint(fields: dict[str, Any], stop_at: int, repeat: int, folder: Path) -> dict[str, Any]:
    """Size of the state after ``stop_at`` progress events and the time to checkpoint it: on
    the training thread (state copy + synchronous write, or + hand-off to the background writer)
    and until the file is complete."""
    exp = Experiment(build_config({"device": "cpu", **fields}))
    seen = [0]

    def stop(_p: Any) -> None:
        seen[0] += 1
        if seen[0] == stop_at:
            raise Stop

    try:
        exp.run(stop)
    except Stop:
        pass
    path = folder / "state.pt"
    writer_class = getattr(state_module, "CheckpointWriter", None)
    training, complete = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        state = exp.state_dict()
        if writer_class is None:
            state_module.save_state(state, path)
            training.append(time.perf_counter() - start)
        else:
            writer = writer_class()
            writer.submit(state, path)
            training.append(time.perf_counter() - start)
            writer.wait()
        complete.append(time.perf_counter() - start)
    return {"bytes": path.stat().st_size, "training_thread_s": min(training), "complete_s": min(complete),
            "background": writer_class is not None, "phase": exp.stage.phase}


CHECKPOINTS = {  # ResNet-18 on CIFAR-shaped images (64 of them: one batch per epoch)
    "resnet18_drive": ({"method": "drive", "model": "resnet18", "dataset": "synthetic", "warmup_epochs": 1,
                        "prune_iterations": 1, "data": {"train_size": 64, "test_size": 64},
                        "train": {"epochs": 2, "batch_size": 64}}, 2),  # after pruning, in training
    "resnet18_imp": ({"method": "imp", "sparsity": 0.36, "model": "resnet18", "dataset": "synthetic",
                      "data": {"train_size": 64, "test_size": 64}, "train": {"epochs": 2, "batch_size": 64}},
                     5),  # IMP level 1, after its first epoch (rewind_epoch 0)
}
EPOCHS = {
    "digits_cnn_digits": {"model": "digits_cnn"},
    "resnet20_cifar_shaped": {"model": "resnet20", "dataset": "synthetic",
                              "data": {"train_size": 1024, "test_size": 64, "augment": True},
                              "train": {"batch_size": 128}},
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--seconds", type=float, default=1.0, help="time spent per timed case")
    parser.add_argument("--checkpoint-repeat", type=int, default=3)
    parser.add_argument("--cases", default="step,epoch,checkpoint")
    opts = parser.parse_args()
    cases = opts.cases.split(",")
    result: dict[str, Any] = {"torch_threads": torch.get_num_threads()}
    if "step" in cases:
        result["step_ms"] = {name: step_times(name, opts.seconds) for name in STEP_MODELS}
    if "epoch" in cases:
        result["epoch_s"] = {name: epoch_time(fields, opts.seconds) for name, fields in EPOCHS.items()}
    if "checkpoint" in cases:
        with tempfile.TemporaryDirectory(prefix="probe_ckpt_") as tmp:
            result["checkpoint"] = {name: checkpoint(fields, stop, opts.checkpoint_repeat, Path(tmp))
                                    for name, (fields, stop) in CHECKPOINTS.items()}
    Path(opts.out).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
