"""The machine's own arithmetic peak, measured, and a model's training FLOPs, counted.

``measured_peak`` times a large matmul and a large channels_last 3x3 convolution (the kinds of
kernel a CNN's step is made of) in one dtype at the current thread count and takes the faster of
the two as the peak FLOP/s this process can reach in that dtype: float32 where training runs in
float32 (the CPU), bfloat16 where it runs under bf16 autocast (CUDA), so that a training path is
compared with the peak of the arithmetic it uses and its share cannot pass 100% by using a
faster dtype than the peak's. On CUDA the problems are larger (an 8192 x 8192 matmul, a batch of
256 for the convolution) and each timing covers ten calls, so that launch and synchronisation
do not hide the peak. ``training_flops`` counts the FLOPs of one forward and backward pass with
``torch.utils.flop_counter.FlopCounterMode`` (matmuls and convolutions; a 90%-sparse masked
network still runs dense kernels, so its FLOPs are the dense ones). Their ratio, FLOP/s achieved
in training over the measured peak, says how much of the machine a training path uses,
independently of how fast the machine is.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.common import sync


def _rate(fn: Any, flops: float, device: torch.device, min_seconds: float, calls: int = 1) -> float:
    """FLOP/s of ``fn`` (which does ``flops``), the best of timings of ``calls`` calls each,
    spread over ``min_seconds`` (at least one timing)."""
    fn()
    sync(device)
    best, spent = float("inf"), 0.0
    while spent < min_seconds or best == float("inf"):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        sync(device)
        took = time.perf_counter() - start
        best, spent = min(best, took / calls), spent + took
    return flops / best


def measured_peak(device: torch.device, min_seconds: float = 1.0, size: int | None = None,
                  dtype: torch.dtype = torch.float32) -> dict[str, Any]:
    """GFLOP/s in ``dtype`` of a ``size`` x ``size`` matmul (default 1024; 8192 on CUDA) and of
    a 3x3 convolution (128 -> 128 channels, 32 x 32, channels_last; batch 32, on CUDA 256), the
    larger of the two as ``peak_gflops``, and the dtype's name as ``peak_dtype``."""
    cuda = device.type == "cuda"
    size = size or (8192 if cuda else 1024)
    batch, calls = (256, 10) if cuda else (32, 1)
    a = torch.randn(size, size, device=device, dtype=dtype)  # random data, never zeros
    b = torch.randn(size, size, device=device, dtype=dtype)
    matmul = _rate(lambda: a @ b, 2.0 * size**3, device, min_seconds, calls)
    x = torch.randn(batch, 128, 32, 32, device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)
    w = torch.randn(128, 128, 3, 3, device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)
    conv_flops = 2.0 * batch * 128 * 32 * 32 * 128 * 9
    conv = _rate(lambda: F.conv2d(x, w, padding=1), conv_flops, device, min_seconds, calls)
    return {"matmul_gflops": matmul / 1e9, "conv_gflops": conv / 1e9, "peak_gflops": max(matmul, conv) / 1e9,
            "peak_dtype": str(dtype).removeprefix("torch.")}


def higher_peak(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Two measurements of :func:`measured_peak` (before and after a run) as one: the higher
    figure of each kernel."""
    return {k: max(v, b[k]) if isinstance(v, float) else v for k, v in a.items()}


def training_flops(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """FLOPs of one forward and backward pass of ``model`` on the batch ``(x, y)``."""
    counter = FlopCounterMode(display=False)
    with counter:
        F.cross_entropy(model(x), y).backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())
