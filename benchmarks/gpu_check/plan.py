"""What the GPU check runs: the steps in order with their time limits, the budget, and the sizes
of each mode (standard library only: the orchestrating process imports it)."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import Any

#: how a step can end
STATUSES = ("ran", "skipped", "failed", "timed_out")
DEFAULT_BUDGET_S = 480.0
CPU_BUDGET_S = 150.0
#: the CIFAR-10 training set's size: a full epoch on the GPU
CIFAR_TRAIN = 50_000


@dataclass(frozen=True)
class Step:
    """One step of the check: its name, what it measures, and its time limits."""

    name: str
    what: str
    limit_s: float  # on the GPU machine
    cpu_limit_s: float = 60.0  # in the --cpu smoke
    min_s: float = 10.0  # skipped when less than this is left of the budget
    cpu_skip: str | None = None  # why the --cpu smoke skips it (unless named in --only)


ONE_MODEL = "the ResNet-18 step runs the same code (one model keeps the smoke short)"
#: the steps, most valuable first
STEPS = [
    Step("env", "versions, GPU, driver, imports, bf16 matmul and copy ceilings, a tiny compile", 60, 60, 5),
    Step("cuda_tests", "the tests that skip without CUDA, under pytest", 120),
    Step("throughput_resnet18", "bench_throughput, ResNet-18, 50,000-image epoch: project vs plain", 170),
    Step("throughput_vgg16_bn", "bench_throughput, VGG-16-BN, 50,000-image epoch: project vs plain", 140,
         cpu_skip=ONE_MODEL),
    Step("nvjpeg", "JPEG decoding: CPU (1 thread, thread pool) vs batched nvJPEG on the GPU", 45,
         cpu_skip="needs CUDA (nvJPEG)"),
    Step("masks", "bench_masks: 90%-sparse masked step vs dense step", 50),
    Step("inference", "bench_inference --device cuda: dense-masked vs sparse (CSR / 2:4 semi-structured)", 75),
    Step("packing", "4 drive-sweep prune processes sharing the GPU vs 1: throughput ratio", 150,
         cpu_limit_s=120, cpu_skip="needs CUDA (GPU packing)", min_s=40),  # --cpu: 55 s at load 6 on 2 cores
    Step("ablation_resnet18", "project path, ResNet-18: bf16 / channels_last / compile / CUDA graphs off", 150,
         min_s=45),
    Step("pruning_cost", "bench_pruning_cost: IMP vs every method, time and sample passes", 90, min_s=30),
    Step("ablation_vgg16_bn", "project path, VGG-16-BN: bf16 / channels_last / compile / CUDA graphs off", 130,
         min_s=45, cpu_skip=ONE_MODEL),
    Step("imagenet_input", "bench_imagenet_input: PIL / CPU / device (nvJPEG) decoding in the loader", 60,
         min_s=30, cpu_skip="needs CUDA (the device decoder)"),
    Step("drive_suite", "tests/drive on this machine's torch, with the time left", 600, min_s=30,
         cpu_skip="the CPU suite is `make test`"),
]
STEP_NAMES = [s.name for s in STEPS]
BY_NAME = {s.name: s for s in STEPS}


def budget(opts: argparse.Namespace) -> float:
    """Seconds for the whole check: ``--budget``, else the mode's default."""
    if opts.budget is not None:
        return opts.budget
    return CPU_BUDGET_S if opts.cpu else DEFAULT_BUDGET_S


def step_limits(opts: argparse.Namespace) -> dict[str, float]:
    """Each step's time limit in this mode, with the ``--limit STEP=SECONDS`` given."""
    limits = {s.name: (s.cpu_limit_s if opts.cpu else s.limit_s) for s in STEPS}
    for item in opts.limit:
        name, _, value = item.partition("=")
        if name not in limits:
            raise SystemExit(f"gpu_check: --limit: unknown step {name!r}; steps: {', '.join(STEP_NAMES)}")
        limits[name] = float(value)
    return limits


def sizes(opts: argparse.Namespace) -> dict[str, Any]:
    """The sizes of this mode, with the options given overriding them."""
    cores = os.cpu_count() or 1
    if opts.cpu:
        base = {"images": 4, "batch_size": 2, "repeat": 1, "ablation_repeat": 1, "workers": 0, "jpeg_images": 8,
                "packing_procs": 2, "packing_model": "digits_cnn", "packing_images": None,
                "packing_epochs": 3, "device": "cpu"}
    else:
        base = {"images": CIFAR_TRAIN, "batch_size": 128, "repeat": 2, "ablation_repeat": 1, "workers": min(8, cores),
                "jpeg_images": 512, "packing_procs": 4, "packing_model": "resnet18",
                "packing_images": 156 * 128, "packing_epochs": 8, "device": "cuda"}
    for key in list(base):
        given = getattr(opts, key, None)
        if given is not None:
            base[key] = given
    return base


def skip_reason(step: Step, opts: argparse.Namespace) -> str | None:
    """Why the options leave ``step`` out (None: they select it)."""
    if opts.only is not None and step.name not in opts.only:
        return "not selected (--only)"
    if step.name in opts.skip:
        return "not selected (--skip)"
    if opts.cpu and step.cpu_skip and not (opts.only and step.name in opts.only):
        return f"--cpu: {step.cpu_skip}"
    return None
