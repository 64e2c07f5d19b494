"""Step time with ``train.compile`` on and off, what compiling costs, and when it pays.

For each model a 90%-sparse training step as ``drive.train.train_step`` takes it (channels_last,
fused SGD, masked gradients) runs eager and through ``drive.train.training_model`` with
``compile: true``, on the same initial weights and batch, in alternating rounds of steps. The
compilation is timed twice: cold (the inductor caches disabled: the first run on a machine) and
warm (a fresh ``torch.compile`` of a new model with the on-disk caches filled: what every later
trial of a sweep pays, since a trial is a new process; a first compilation fills the caches). The break-even point is the number of
steps after which the compiled trial has caught up with the eager one, and in epochs of the
model's usual data set (``steps_per_epoch``): compile is worth it for a trial only when it
trains well past that. The learning rate is 0, as in ``bench_masks``, so that both paths see the
same weights all along.
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

import torch

from benchmarks.common import (
    Case,
    csv_list,
    entry_point,
    median,
    print_table,
    resolve,
    side_by_side,
    step_timing_arguments,
    sync,
)
from drive.config import TrainConfig
from drive.masks import Masks
from drive.models import MODELS, build_model
from drive.train import make_optimizer, train_step, training_model

#: model -> (sample shape, batch size of the project's config, training samples per epoch)
INPUTS: dict[str, tuple[tuple[int, ...], int, int]] = {
    "digits_cnn": ((1, 8, 8), 64, 1437),       # scikit-learn's digits, the demo
    "resnet20": ((3, 32, 32), 128, 50_000),    # CIFAR-10
    "mnist1d_cnn": ((1, 40), 100, 4000),       # MNIST-1D
}


def _setup(name: str, batch_size: int, shape: tuple[int, ...], device: torch.device, seed: int):
    torch.manual_seed(seed)
    kwargs = {"sample_shape": shape} if len(shape) == 2 else {}
    model = build_model(name, 10, shape[0], shape[-1], **kwargs).to(device)
    x = torch.randn(batch_size, *shape, device=device)
    if len(shape) == 3:  # as drive.experiment does
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    masks = Masks.for_model(model)
    masks.prune_to({n: w.detach().abs() for n, w in masks.weights.items()}, 0.1)
    return model, masks, (x, torch.randint(0, 10, (batch_size,), device=device))


def _optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    optimizer = make_optimizer(model, cfg)
    for group in optimizer.param_groups:
        group["lr"] = 0.0  # see the module's docstring
    return optimizer


def _first_step_seconds(name: str, batch_size: int, shape: tuple[int, ...], cfg: TrainConfig,
                        device: torch.device, seed: int, cold: bool) -> float:
    """Seconds of the first compiled step of a new model (compilation included)."""
    import torch._inductor.config as inductor_config

    torch._dynamo.reset()
    model, masks, batch = _setup(name, batch_size, shape, device, seed)
    optimizer = _optimizer(model, cfg)
    stepper = training_model(model, cfg.model_copy(update={"compile": True}), device)
    with inductor_config.patch(force_disable_caches=cold):
        sync(device)
        start = time.perf_counter()
        train_step(stepper, *batch, optimizer, masks, cfg, device)
        sync(device)
    return time.perf_counter() - start


def measure(name: str, opts: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    shape, batch_size, per_epoch = INPUTS[name]
    batch_size = opts.batch_size or batch_size
    cfg = TrainConfig(batch_size=batch_size)
    _first_step_seconds(name, batch_size, shape, cfg, device, opts.seed, cold=False)  # fills the caches
    cold = _first_step_seconds(name, batch_size, shape, cfg, device, opts.seed, cold=True)
    warm = _first_step_seconds(name, batch_size, shape, cfg, device, opts.seed, cold=False)
    steppers = {}
    for kind in ("eager", "compiled"):
        model, masks, batch = _setup(name, batch_size, shape, device, opts.seed)
        optimizer = _optimizer(model, cfg)
        stepper = training_model(model, cfg.model_copy(update={"compile": kind == "compiled"}), device)
        steppers[kind] = (lambda s=stepper, m=masks, o=optimizer, b=batch: train_step(s, *b, o, m, cfg, device))

    def rounds(fn, n):
        return lambda: [fn() for _ in range(n)]

    probe = side_by_side([Case("probe", rounds(steppers["eager"], 3), warmup=rounds(steppers["compiled"], 2))],
                         1, device)["probe"][0] / 3
    steps = max(1, min(opts.max_steps, round(opts.round_seconds / probe)))
    times = side_by_side([Case(k, rounds(fn, steps)) for k, fn in steppers.items()], opts.repeat, device)
    eager_ms, compiled_ms = (1000 * median(times[k]) / steps for k in ("eager", "compiled"))
    saved = (eager_ms - compiled_ms) / 1000
    break_even = warm / saved if saved > 0 else math.inf
    return {"model": name, "device": device.type, "batch": batch_size, "eager_ms": eager_ms,
            "compiled_ms": compiled_ms, "speedup": eager_ms / compiled_ms, "compile_cold_s": cold,
            "compile_warm_s": warm, "break_even_steps": break_even, "steps_per_epoch": math.ceil(per_epoch / batch_size),
            "break_even_epochs": break_even / math.ceil(per_epoch / batch_size),
            "seconds": {k: [round(t, 4) for t in v] for k, v in times.items()}}


def run(opts: argparse.Namespace) -> dict[str, Any]:
    device = resolve(opts.device)
    models = [m for m in opts.models if m in MODELS]  # mnist1d_cnn exists from the MNIST-1D work on
    print(f"\n== train.compile: compiled vs eager 90%-sparse training step ({device.type}; {opts.repeat} "
          f"alternating rounds of ~{opts.round_seconds:g} s) ==", flush=True)
    rows = []
    for name in models:
        rows.append(measure(name, opts, device))
        print_table(rows[-1:], ["model", "eager_ms", "compiled_ms", "speedup", "compile_warm_s"])
    print_table(rows, ["model", "device", "batch", "eager_ms", "compiled_ms", "speedup", "compile_cold_s",
                       "compile_warm_s", "break_even_steps", "steps_per_epoch", "break_even_epochs"],
                "step time (ms, median of rounds); compile: first compiled step, caches off (cold) / on (warm)")
    return {"rows": rows}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_compile", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", type=csv_list(), default=list(INPUTS),
                   help=f"any of {', '.join(INPUTS)} (those not registered are left out)")
    step_timing_arguments(p, repeat=10)
    return p


QUICK = ["--models", "digits_cnn", "--repeat", "3", "--round-seconds", "0.2"]


main = entry_point(build_parser, run)


if __name__ == "__main__":
    main()
