"""What every scoring function works with: the :class:`ScoreContext`, the model's mode while it
scores, and the loss gradient that the gradient-based scores share. Higher score = keep.

A method's score (``drive/methods/<name>.py``) takes a :class:`ScoreContext` and returns
``{layer name: score tensor}`` shaped like the layer's weight. Scores are computed on the masked
network (pruned weights are zero), and ``ctx.samples`` counts the forward+backward sample passes
spent, a hardware-independent cost.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch
from torch import nn
from torch.nn import functional as F

from drive.method import MethodArgs

Batch = tuple[torch.Tensor, torch.Tensor]
Scores = dict[str, torch.Tensor]
A = TypeVar("A", bound=MethodArgs)


@dataclass
class ScoreContext:
    """What a scoring function may use.

    ``weights`` are the prunable weights ``{layer name: parameter}`` of ``model`` and ``keep``
    their current keep-masks. ``batches`` are training batches (used by data-driven scores),
    scored with the training loss (``label_smoothing`` included); ``input_shape`` is the shape
    of one sample, (C, H, W) or (C, L), for data-free scores (SynFlow's all-ones input).
    ``args`` are the method's arguments (its :class:`~drive.method.MethodArgs` model); ``lr`` is
    the training's learning rate. A score may put extra results of its own into ``results``
    (recorded with the experiment's metrics as ``method_metrics``).
    """

    model: nn.Module
    weights: dict[str, nn.Parameter]
    keep: dict[str, torch.Tensor]
    batches: Sequence[Batch] = ()
    input_shape: tuple[int, ...] = ()
    seed: int = 0
    iteration: int = 1
    args: MethodArgs | None = None
    label_smoothing: float = 0.0
    bn: str = "eval"  # "train": BN on batch statistics (and dropout on), as the reference codes
    lr: float = 0.1  # the training's learning rate
    density: float = 1.0  # the density this iteration prunes to
    dense: dict[str, torch.Tensor] | None = None  # the weights before pruning began (FORCE)
    samples: int = 0
    results: dict[str, Any] = field(default_factory=dict)

    def arguments(self, model: type[A]) -> A:
        """``args`` as the method's model ``model`` (its defaults when none were given)."""
        if self.args is None:
            return model()
        if not isinstance(self.args, model):
            raise TypeError(f"the score takes {model.__name__} arguments, got {type(self.args).__name__}")
        return self.args

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The training loss (mean cross-entropy with the training's label smoothing)."""
        return F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)


@contextmanager
def scoring_mode(ctx: ScoreContext, bn: str | None = None) -> Iterator[None]:
    """The model in the mode a gradient score is taken in (``bn``, by default ``prune.bn``),
    then as it was.

    ``eval``: BN normalises with its running statistics, so a weight's score does not depend on
    the other samples of the batch. ``train``: as the reference implementations of GraSP and
    FORCE do, BN normalises with the batch's statistics (and dropout is on); the running
    statistics these forwards update and the random numbers they draw are put back, so scoring
    leaves the network and the training's random stream as they were.
    """
    model, was_training = ctx.model, ctx.model.training
    if (bn or ctx.bn) == "eval":
        model.eval()
        try:
            yield
        finally:
            model.train(was_training)
        return
    saved = {k: b.detach().clone() for k, b in model.named_buffers()}
    device = next(model.parameters()).device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        model.train()
        try:
            yield
        finally:
            model.train(was_training)
            with torch.no_grad():
                for k, b in model.named_buffers():
                    b.copy_(saved[k])


def abs_weights(ctx: ScoreContext) -> Scores:
    """|w| of every prunable weight."""
    return {n: w.detach().abs() for n, w in ctx.weights.items()}


def loss_gradients(ctx: ScoreContext) -> Scores:
    """g = dL/dw of the training loss averaged over ``ctx.batches``, in :func:`scoring_mode`."""
    if not ctx.batches:
        raise ValueError("prune.score_batches: a gradient score needs at least one training batch")
    model, names = ctx.model, list(ctx.weights)
    grads = {n: torch.zeros_like(w) for n, w in ctx.weights.items()}
    with scoring_mode(ctx):
        for x, y in ctx.batches:
            loss = ctx.loss(model(x), y) / len(ctx.batches)
            for n, g in zip(names, torch.autograd.grad(loss, [ctx.weights[n] for n in names])):
                grads[n] += g
            ctx.samples += len(y)
    return grads


def seeded_uniform(ctx: ScoreContext) -> Scores:
    """Uniform random scores in [0, 1) from a generator seeded by (seed, iteration)."""
    gen = torch.Generator().manual_seed(ctx.seed * 100_003 + ctx.iteration)
    return {n: torch.rand(w.shape, generator=gen).to(w.device) for n, w in ctx.weights.items()}
