"""Mask overhead: a training step with 90%-sparse masks against a dense step, same model and batch.

The dense step is forward, backward, ``optimizer.step()``; the masked step is the same with
``masks.step(optimizer)`` (mask the gradients, step: pruned weights and their momentum were
zeroed once, when the masks changed, so nothing is re-applied after the step), which is what
``drive.train.train_epoch`` does. Both run on the same model, optimiser and batch, in rounds
of steps alternating between the two; the overhead is the median over rounds of the ratio of
the two adjacent timings, which cancels the drift of a shared machine.

The learning rate is 0, so the weights (zeros included) never change and both kinds of step
see exactly the same state: the step's arithmetic is the same for any learning rate, and a
model that memorises the one batch drives its gradients into float denormals, which are many
times slower on CPUs and would make the comparison measure that instead. The enforcement
itself (``mask_gradients``, all a masked step adds) is also timed alone, a precise figure where the
step-time difference is within the noise. The relative overhead is largest on a small model
(digits_cnn), whose steps take a few milliseconds.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import torch

from benchmarks.common import (
    Case,
    best,
    csv_list,
    entry_point,
    median,
    print_table,
    resolve,
    side_by_side,
    step_timing_arguments,
    verdict,
)
from drive.config import TrainConfig
from drive.masks import Masks
from drive.models import build_model
from drive.train import make_optimizer, train_step

#: (channels, image side, batch size of the project's config) per model
INPUTS = {"resnet18": (3, 32, 128), "vgg16_bn": (3, 32, 128), "resnet20": (3, 32, 128),
          "alexnet": (3, 32, 128), "digits_cnn": (1, 8, 64), "digits_mlp": (1, 8, 64)}
TARGET_PCT = 5.0


def make_step(model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor],
              optimizer: torch.optim.Optimizer, masks: Masks | None, device: torch.device,
              cfg: TrainConfig) -> Callable[[], None]:
    """One training step as train_epoch takes it (dense when ``masks`` is None)."""
    return lambda: train_step(model, *batch, optimizer, masks, cfg, device)


def repeated(fn: Callable[[], Any], n: int) -> Callable[[], None]:
    def calls() -> None:
        for _ in range(n):
            fn()
    return calls


def measure(name: str, opts: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    channels, side, default_batch = INPUTS[name]
    batch_size = opts.batch_size or default_batch
    cfg = TrainConfig(batch_size=batch_size)
    torch.manual_seed(opts.seed)
    model = build_model(name, 10, channels, side).to(device)
    x = torch.randn(batch_size, channels, side, side, device=device)
    if cfg.channels_last:  # as drive.experiment does
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    batch = (x, torch.randint(0, 10, (batch_size,), device=device))
    masks = Masks.for_model(model)
    masks.prune_to({n: w.detach().abs() for n, w in masks.weights.items()}, 1 - opts.sparsity)
    optimizer = make_optimizer(model, cfg)
    for group in optimizer.param_groups:
        group["lr"] = 0.0  # see the module's docstring
    dense_step = make_step(model, batch, optimizer, None, device, cfg)
    masked_step = make_step(model, batch, optimizer, masks, device, cfg)
    # size the rounds: steps per round so that a round takes about --round-seconds
    probe = side_by_side([Case("probe", repeated(dense_step, 2), warmup=repeated(masked_step, 2))], 1, device)
    steps = max(1, min(opts.max_steps, round(opts.round_seconds / (probe["probe"][0] / 2))))
    times = side_by_side([Case("dense", repeated(dense_step, steps)),
                          Case("masked", repeated(masked_step, steps))], opts.repeat, device)
    enforce_n = max(10, steps)  # the enforcement alone, as masks.step adds it before optimizer.step
    enforce = repeated(masks.mask_gradients, enforce_n)
    alone = side_by_side([Case("enforce", enforce)], opts.repeat, device)
    dense_ms = 1000 * median(times["dense"]) / steps
    enforce_ms = 1000 * best(alone["enforce"]) / enforce_n
    paired = median([m / d for m, d in zip(times["masked"], times["dense"])])
    return {"model": name, "device": device.type, "batch": batch_size, "params": masks.total,
            "density": round(masks.density(), 4), "steps": steps * opts.repeat,
            "dense_ms": dense_ms, "masked_ms": 1000 * median(times["masked"]) / steps,
            "overhead_pct": 100 * (paired - 1), "enforce_ms": enforce_ms,
            "enforce_pct": 100 * enforce_ms / dense_ms,
            "seconds": {k: [round(t, 4) for t in v] for k, v in times.items()}}


def run(opts: argparse.Namespace) -> dict[str, Any]:
    device = resolve(opts.device)
    print(f"\n== Mask overhead: {opts.sparsity:.0%}-sparse masked step vs dense step ({device.type}; "
          f"{opts.repeat} alternating rounds of ~{opts.round_seconds:g} s per model and case) ==", flush=True)
    rows = []
    for name in opts.models:
        rows.append(measure(name, opts, device))
        print_table(rows[-1:], ["model", "batch", "dense_ms", "masked_ms", "overhead_pct", "enforce_pct"])
    columns = ["model", "device", "batch", "params", "density", "steps", "dense_ms", "masked_ms",
               "overhead_pct", "enforce_ms", "enforce_pct"]
    print_table(rows, columns, "step time (ms, median of rounds); overhead: median over rounds of masked / "
                               "dense - 1; enforce: mask_gradients alone (fastest round)")
    checks = [{"target": f"{r['model']}: mask overhead < {TARGET_PCT:g}% of a step",
               "value": f"{r['overhead_pct']:.1f}% (enforcement alone {r['enforce_pct']:.1f}%)",
               "status": verdict(r["overhead_pct"] < TARGET_PCT)} for r in rows]
    print_table(checks, title="targets")
    return {"rows": rows, "targets": checks}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_masks", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", type=csv_list(), default=["resnet18", "digits_cnn"],
                   help=f"any of {', '.join(INPUTS)}")
    p.add_argument("--sparsity", type=float, default=0.9)
    step_timing_arguments(p, repeat=20)
    return p


QUICK = ["--repeat", "6", "--round-seconds", "0.25"]


main = entry_point(build_parser, run)


if __name__ == "__main__":
    main()
