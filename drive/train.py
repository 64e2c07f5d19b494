"""The mask-aware training loop: one step, one epoch of training, evaluation.

The optimisers and LR schedules are :mod:`drive.optim`'s (re-exported here).

On CUDA it trains under bf16 autocast (configurable); on CPU it runs in float32. The experiment
keeps models and batches channels_last on both (oneDNN's CPU convolutions prefer it too).
Losses are accumulated on the device and read once per epoch, so the loop does not synchronise
with the GPU every step. ``train.compile`` compiles the training forward and backward with
``torch.compile`` (on CUDA by default, with CUDA graphs); evaluation and pruning stay eager.
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
from drive.errors import Diverged
from drive.masks import Masks
from drive.optim import make_optimizer, make_scheduler, new_optimizer

__all__ = ["EpochStats", "autocast", "compile_enabled", "evaluate", "input_dtype", "make_optimizer",
           "make_scheduler", "new_optimizer", "train_epoch", "train_step", "training_model"]


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA when enabled; a no-op elsewhere."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def compile_enabled(cfg: TrainConfig, device: torch.device) -> bool:
    """``train.compile`` resolved for ``device`` (``auto``: CUDA only)."""
    return device.type == "cuda" if cfg.compile == "auto" else bool(cfg.compile)


def training_model(model: nn.Module, cfg: TrainConfig, device: torch.device) -> nn.Module:
    """The module the training steps call: ``model`` itself, or a compiled wrapper sharing its
    parameters and buffers (so masks, checkpoints and evaluation keep using ``model``).

    On CUDA with ``train.cuda_graphs`` the compiled forward and backward are replayed as CUDA
    graphs (``mode="reduce-overhead"``): a step's shapes are static (one graph more for the
    smaller last batch of an epoch), and pruning changes weight values, never their tensors.
    """
    if not compile_enabled(cfg, device):
        return model
    mode = "reduce-overhead" if device.type == "cuda" and cfg.cuda_graphs else None
    return torch.compile(model, mode=mode)


def input_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype:
    """The dtype batches are delivered in: bf16 where training runs under bf16 autocast (its
    first layer would cast float32 input to bf16 anyway), else float32."""
    return torch.bfloat16 if cfg.bf16 and device.type == "cuda" else torch.float32


@dataclass
class EpochStats:
    loss: float
    accuracy: float
    samples: int
    seconds: float


class _Tally:
    """Loss and correct predictions summed on the device, read (one sync) at the end."""

    def __init__(self, device: torch.device):
        self.start = time.perf_counter()
        self.loss = torch.zeros((), device=device)
        self.correct = torch.zeros((), device=device, dtype=torch.long)
        self.seen = 0

    def add(self, loss_sum: torch.Tensor, out: torch.Tensor, y: torch.Tensor) -> None:
        self.loss += loss_sum
        self.correct += (out.argmax(1) == y).sum()
        self.seen += len(y)

    def stats(self) -> EpochStats:
        n = max(self.seen, 1)
        loss, correct = float(self.loss) / n, int(self.correct) / n
        return EpochStats(loss, correct, self.seen, time.perf_counter() - self.start)


def train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, optimizer: torch.optim.Optimizer,
               masks: Masks | None, cfg: TrainConfig, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step on ``(x, y)``; with ``masks`` the pruned weights are still zero afterwards.

    ``model`` may be the compiled wrapper of :func:`training_model`. Returns the (detached)
    mean loss and the logits.
    """
    if device.type == "cuda" and compile_enabled(cfg, device) and cfg.cuda_graphs:
        torch.compiler.cudagraph_mark_step_begin()  # the last step's graph outputs are consumed
    with autocast(device, cfg.bf16):
        out = model(x)
        loss = F.cross_entropy(out, y, label_smoothing=cfg.label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if masks is None:
        optimizer.step()
    else:
        masks.step(optimizer)
    return loss.detach(), out


def train_epoch(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                optimizer: torch.optim.Optimizer, masks: Masks | None, cfg: TrainConfig,
                device: torch.device) -> EpochStats:
    """One pass over ``batches``; pruned weights stay zero after every step.

    Raises :class:`Diverged` when the epoch's loss is not finite.
    """
    model.train()
    tally = _Tally(device)
    for x, y in batches:
        loss, out = train_step(model, x, y, optimizer, masks, cfg, device)
        tally.add(loss * len(y), out, y)
    stats = tally.stats()
    if not math.isfinite(stats.loss):
        raise Diverged(f"training loss became {stats.loss}")
    return stats


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
             cfg: TrainConfig, device: torch.device) -> EpochStats:
    """Top-1 accuracy and mean loss over ``batches``, model in eval mode."""
    model.eval()
    tally = _Tally(device)
    for x, y in batches:
        with autocast(device, cfg.bf16):
            out = model(x)
        tally.add(F.cross_entropy(out.float(), y, reduction="sum"), out, y)
    return tally.stats()
