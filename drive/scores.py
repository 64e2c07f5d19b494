"""One scoring function per pruning method. Higher score = keep the weight.

Every function takes a :class:`ScoreContext` and returns ``{layer name: score tensor}`` shaped
like the layer's weight. Scores are computed on the masked network (pruned weights are zero),
and ``ctx.samples`` counts the forward+backward sample passes spent, a hardware-independent cost.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from drive.config import DriveConfig
from drive.synflow import synflow_scores

Batch = tuple[torch.Tensor, torch.Tensor]
Scores = dict[str, torch.Tensor]


@dataclass
class ScoreContext:
    """What a scoring function may use.

    ``weights`` are the prunable weights ``{layer name: parameter}`` of ``model`` and ``keep``
    their current keep-masks. ``batches`` are training batches (used by data-driven scores),
    scored with the training loss (``label_smoothing`` included); ``input_shape`` is the shape
    of one sample, (C, H, W) or (C, L), for SynFlow's all-ones input.
    """

    model: nn.Module
    weights: dict[str, nn.Parameter]
    keep: dict[str, torch.Tensor]
    batches: Sequence[Batch] = ()
    input_shape: tuple[int, ...] = ()
    seed: int = 0
    iteration: int = 1
    drive: DriveConfig = field(default_factory=DriveConfig)
    grasp_temperature: float = 200.0
    synflow_float64: bool = False
    label_smoothing: float = 0.0
    bn: str = "eval"  # "train": BN on batch statistics (and dropout on), as the reference codes
    density: float = 1.0  # the density this iteration prunes to
    dense: dict[str, torch.Tensor] | None = None  # the weights before pruning began (FORCE)
    prospr_steps: int = 3
    prospr_lr: float = 0.1
    samples: int = 0
    synflow_log_r: float | None = None  # log of SynFlow's R at the last scoring, for the record

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


def _abs_weights(ctx: ScoreContext) -> Scores:
    return {n: w.detach().abs() for n, w in ctx.weights.items()}


def magnitude(ctx: ScoreContext) -> Scores:
    """|w|."""
    return _abs_weights(ctx)


def random(ctx: ScoreContext) -> Scores:
    """Uniform random scores from a generator seeded by (seed, iteration)."""
    gen = torch.Generator().manual_seed(ctx.seed * 100_003 + ctx.iteration)
    return {n: torch.rand(w.shape, generator=gen).to(w.device) for n, w in ctx.weights.items()}


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


def snip(ctx: ScoreContext) -> Scores:
    """Connection sensitivity |w * g| (Lee et al. 2019)."""
    grads = loss_gradients(ctx)
    return {n: (w.detach() * grads[n]).abs() for n, w in ctx.weights.items()}


def grasp(ctx: ScoreContext) -> Scores:
    """GraSP (Wang et al. 2020): ``w * (H g)``, with H g by double backprop; keep the highest.

    The paper scores ``S(-w) = -w * Hg`` and *removes* the weights with the highest ``S(-w)``
    (Algorithm 1; both reference implementations do the same), which is keeping the highest
    ``w * Hg``. Logits are divided by ``grasp_temperature`` (200 in the paper). ``g`` and ``H``
    are those of the masked network: the gradient of pruned weights is masked, so at T > 1
    ``Hg`` is ``H_kk g_k`` over the kept weights k, as in masked layers.
    """
    if not ctx.batches:
        raise ValueError("prune.score_batches: GraSP needs at least one training batch")
    model, names = ctx.model, list(ctx.weights)
    params = [ctx.weights[n] for n in names]
    keep = [ctx.keep[n].to(p.dtype) for n, p in zip(names, params)]
    temp, nb = ctx.grasp_temperature, len(ctx.batches)

    with scoring_mode(ctx):
        g = [torch.zeros_like(p) for p in params]
        for x, y in ctx.batches:
            loss = ctx.loss(model(x) / temp, y) / nb
            for acc, gi in zip(g, torch.autograd.grad(loss, params)):
                acc += gi
        g = [gi * k for gi, k in zip(g, keep)]
        hg = [torch.zeros_like(p) for p in params]
        for x, y in ctx.batches:
            loss = ctx.loss(model(x) / temp, y) / nb
            grads = torch.autograd.grad(loss, params, create_graph=True)
            z = sum((gi * g0).sum() for gi, g0 in zip(grads, g))
            for acc, h in zip(hg, torch.autograd.grad(z, params)):
                acc += h
            ctx.samples += 2 * len(y)  # a plain pass for g plus the double-backprop pass
    return {n: p.detach() * h * k for n, p, h, k in zip(names, params, hg, keep)}


def synflow(ctx: ScoreContext) -> Scores:
    """SynFlow (Tanaka et al. 2020): data-free ``|w * dR/dw|``, R the output sum of |network|.

    Scored on a copy of the model whose parameters and buffers are replaced by their absolute
    values, BN in eval mode, fed one all-ones sample of ``input_shape``; exact at any depth
    (see :mod:`drive.synflow`). The model itself is left untouched.
    """
    if not ctx.input_shape:
        raise ValueError("synflow needs the input shape")
    dtype = torch.float64 if ctx.synflow_float64 else torch.float32
    scores, ctx.synflow_log_r = synflow_scores(ctx.model, list(ctx.weights), ctx.input_shape, dtype)
    ctx.samples += 1
    return scores


def drive_terms(ctx: ScoreContext) -> tuple[Scores, Scores, Scores]:
    """DRIVE's three terms: L1 norm |w|, connection sensitivity |w*g|, convergence sensitivity |g|."""
    grads = loss_gradients(ctx)
    l1 = _abs_weights(ctx)
    connection = {n: (ctx.weights[n].detach() * grads[n]).abs() for n in grads}
    convergence = {n: g.abs() for n, g in grads.items()}
    return l1, connection, convergence


def _mean_over_unpruned(term: Scores, keep: dict[str, torch.Tensor]) -> torch.Tensor:
    total = sum(t[keep[n]].double().sum() for n, t in term.items())
    count = sum(int(keep[n].sum()) for n in term)
    return total / max(count, 1)


def drive(ctx: ScoreContext) -> Scores:
    """DRIVE's score: a configurable combination of |w|, |w*g| and |g| (``ctx.drive``).

    ``normalize="mean"`` divides each term by its mean over the unpruned prunable weights (a
    term whose mean is zero is left as is). ``combine="sum"`` gives a*T1 + b*T2 + c*T3;
    ``"product"`` gives T1^a * T2^b * T3^c.
    """
    cfg = ctx.drive
    terms = list(drive_terms(ctx))
    if cfg.normalize == "mean":
        for i, term in enumerate(terms):
            mean = float(_mean_over_unpruned(term, ctx.keep))
            if mean > 0:
                terms[i] = {n: t / mean for n, t in term.items()}
    out = {}
    for n in ctx.weights:
        parts = [t[n] for t in terms]
        if cfg.combine == "sum":
            out[n] = sum(a * p for a, p in zip(cfg.weights, parts))
        else:
            out[n] = torch.prod(torch.stack([p.pow(a) for a, p in zip(cfg.weights, parts)]), dim=0)
    return out

