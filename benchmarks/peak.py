"""The machine's own arithmetic peak, measured, and a model's training FLOPs, counted.

``measured_peak`` times a large float32 matmul and a large channels_last 3x3 convolution (the
kinds of kernel a CNN's step is made of) at the current thread count and takes the faster of the
two as the peak FLOP/s this process can reach. ``training_flops`` counts the FLOPs of one
forward and backward pass with ``torch.utils.flop_counter.FlopCounterMode`` (matmuls and
convolutions; a 90%-sparse masked network still runs dense kernels, so its FLOPs are the dense
ones). Their ratio, FLOP/s achieved in training over the measured peak, says how much of the
machine a training path uses, independently of how fast the machine is.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.common import sync


def _rate(fn: Any, flops: float, device: torch.device, min_seconds: float) -> float:
    """FLOP/s of ``fn`` (which does ``flops``), the best of calls spread over ``min_seconds``."""
    fn()
    sync(device)
    best, spent = float("inf"), 0.0
    while spent < min_seconds:
        start = time.perf_counter()
        fn()
        sync(device)
        took = time.perf_counter() - start
        best, spent = min(best, took), spent + took
    return flops / best


def measured_peak(device: torch.device, min_seconds: float = 1.0, size: int = 1024) -> dict[str, float]:
    """GFLOP/s of a ``size`` x ``size`` float32 matmul and of a 3x3 convolution (batch 32,
    128 -> 128 channels, 32 x 32, channels_last), and the larger of the two as ``peak``."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    matmul = _rate(lambda: a @ b, 2.0 * size**3, device, min_seconds)
    x = torch.randn(32, 128, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
    w = torch.randn(128, 128, 3, 3, device=device).contiguous(memory_format=torch.channels_last)
    conv_flops = 2.0 * 32 * 128 * 32 * 32 * 128 * 9
    conv = _rate(lambda: F.conv2d(x, w, padding=1), conv_flops, device, min_seconds)
    return {"matmul_gflops": matmul / 1e9, "conv_gflops": conv / 1e9, "peak_gflops": max(matmul, conv) / 1e9}


def training_flops(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """FLOPs of one forward and backward pass of ``model`` on the batch ``(x, y)``."""
    counter = FlopCounterMode(display=False)
    with counter:
        F.cross_entropy(model(x), y).backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())
