"""The mask-aware training loop: SGD, LR schedules, one epoch of training, evaluation.

On CUDA it trains under bf16 autocast with channels_last tensors (both configurable); on CPU it
runs in float32. Losses are accumulated on the device and read once per epoch, so the loop does
not synchronise with the GPU every step.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from drive.config import TrainConfig
from drive.masks import Masks


class Diverged(RuntimeError):
    """The training loss became NaN or infinite."""


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.SGD:
    """SGD with momentum (Nesterov optional) and weight decay on every parameter."""
    return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                           nesterov=cfg.nesterov and cfg.momentum > 0, weight_decay=cfg.weight_decay)


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig,
                   epochs: int) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-epoch LR schedule over ``epochs``: step (x gamma at the milestone fractions), cosine, constant."""
    if cfg.schedule == "step":
        milestones = sorted({max(1, round(f * epochs)) for f in cfg.milestones})
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma=cfg.gamma)
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA when enabled; a no-op elsewhere."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@dataclass
class EpochStats:
    loss: float
    accuracy: float
    samples: int
    seconds: float


def train_epoch(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                optimizer: torch.optim.Optimizer, masks: Masks | None, cfg: TrainConfig,
                device: torch.device) -> EpochStats:
    """One pass over ``batches``; pruned weights stay zero after every step.

    Raises :class:`Diverged` when the epoch's loss is not finite.
    """
    model.train()
    start = time.perf_counter()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    for x, y in batches:
        with autocast(device, cfg.bf16):
            out = model(x)
            loss = F.cross_entropy(out, y, label_smoothing=cfg.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if masks is None:
            optimizer.step()
        else:
            masks.step(optimizer)
        loss_sum += loss.detach() * len(y)
        correct += (out.argmax(1) == y).sum()
        seen += len(y)
    mean_loss = float(loss_sum) / max(seen, 1)
    if not math.isfinite(mean_loss):
        raise Diverged(f"training loss became {mean_loss}")
    return EpochStats(mean_loss, int(correct) / max(seen, 1), seen, time.perf_counter() - start)


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
             cfg: TrainConfig, device: torch.device) -> EpochStats:
    """Top-1 accuracy and mean loss over ``batches``, model in eval mode."""
    model.eval()
    start = time.perf_counter()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    for x, y in batches:
        with autocast(device, cfg.bf16):
            out = model(x)
        loss_sum += F.cross_entropy(out.float(), y, reduction="sum")
        correct += (out.argmax(1) == y).sum()
        seen += len(y)
    return EpochStats(float(loss_sum) / max(seen, 1), int(correct) / max(seen, 1), seen,
                      time.perf_counter() - start)
