"""Scores of the further baselines: FORCE, ProsPr, and random pruning with ERK or uniform layer
densities. Higher = keep, as in :mod:`drive.scores`.
"""

from __future__ import annotations

import math

import torch
from torch.func import functional_call

from drive.masks import keep_count
from drive.scores import ScoreContext, Scores, loss_gradients, random, scoring_mode


def force(ctx: ScoreContext) -> Scores:
    """FORCE (de Jorge et al. 2021): ``|w0 * dL/dw|`` with the gradient of the *pruned* network.

    ``w0`` are the weights before pruning began (``ctx.dense``), so a weight pruned at an earlier
    iteration is scored too and can come back (FORCE's resurrection; the registry entry says
    ``revives``). One iteration is SNIP; SNIP with T > 1 is Iter SNIP (no resurrection).
    """
    grads = loss_gradients(ctx)  # the model's pruned weights are zero: the pruned network
    dense = ctx.dense or {n: w.detach() for n, w in ctx.weights.items()}
    return {n: (dense[n] * grads[n]).abs() for n in ctx.weights}


def prospr(ctx: ScoreContext) -> Scores:
    """ProsPr (Alizadeh et al. 2022): ``|dL(w_M)/dc|``, the meta-gradient of the loss after M
    SGD steps from ``w0 * c`` with respect to the mask ``c`` (all ones), through the steps.

    The M inner steps (``ctx.prospr_steps``, learning rate ``ctx.prospr_lr``) train the network
    in train mode (batch statistics; the model's BN buffers and the global random generators
    are left untouched: dropout draws from a fork) on
    ``ctx.batches`` in turn, and the loss after them is taken on the next batch. Pruned weights
    stay zero through the inner steps (their updates are masked).
    """
    if not ctx.batches:
        raise ValueError("prune.score_batches: ProsPr needs training batches")
    model, names = ctx.model, list(ctx.weights)
    key = {n: f"{n}.weight" if n else "weight" for n in names}  # prunable tensors are weights
    masks = {n: torch.ones_like(ctx.weights[n], requires_grad=True) for n in names}
    keep = {key[n]: ctx.keep[n].to(ctx.weights[n].dtype) for n in names}
    params = {k: p.detach().requires_grad_(True) for k, p in model.named_parameters()}
    buffers = dict(model.named_buffers())  # updated by the inner steps, put back after them
    for n in names:
        params[key[n]] = params[key[n]] * masks[n]
    # train mode as the reference; scoring_mode also forks the random generators (dropout in the
    # inner steps leaves the training's random stream as it was) and restores the BN buffers
    with scoring_mode(ctx, bn="train"):
        for step in range(ctx.prospr_steps):
            x, y = ctx.batches[step % len(ctx.batches)]
            loss = ctx.loss(functional_call(model, (params, buffers), (x,)), y)
            grads = torch.autograd.grad(loss, list(params.values()), create_graph=True)
            params = {k: v - ctx.prospr_lr * g * keep.get(k, 1.0)
                      for (k, v), g in zip(params.items(), grads)}
            ctx.samples += len(y)
        x, y = ctx.batches[ctx.prospr_steps % len(ctx.batches)]
        loss = ctx.loss(functional_call(model, (params, buffers), (x,)), y)
        meta = torch.autograd.grad(loss, [masks[n] for n in names])
        # the meta-gradient runs back through every step: about one more pass per sample
        ctx.samples += len(y) + sum(len(ctx.batches[s % len(ctx.batches)][1])
                                    for s in range(ctx.prospr_steps + 1))
    return {n: g.abs() for n, g in zip(names, meta)}


def erk_densities(shapes: dict[str, tuple[int, ...]], density: float) -> dict[str, float]:
    """Layer densities of the Erdős–Rényi-Kernel rule (Evci et al. 2020, RigL).

    A layer's density is proportional to ``sum(shape) / prod(shape)`` ((n_in + n_out + k_h +
    k_w) / (n_in n_out k_h k_w) for a conv, (n_in + n_out) / (n_in n_out) for a linear layer),
    scaled so that the whole network has ``density``; a layer whose density would pass 1 is left
    dense and the scale is found again for the others.
    """
    sizes = {n: math.prod(s) for n, s in shapes.items()}
    raw = {n: sum(s) / sizes[n] for n, s in shapes.items()}
    dense: set[str] = set()
    while True:
        budget = density * sum(sizes.values()) - sum(sizes[n] for n in dense)
        scale = budget / sum(raw[n] * sizes[n] for n in sizes if n not in dense)
        over = {n for n in sizes if n not in dense and scale * raw[n] > 1}
        if not over:
            return {n: 1.0 if n in dense else scale * raw[n] for n in sizes}
        dense |= over


def layer_budgets(densities: dict[str, float], sizes: dict[str, int], total: int) -> dict[str, int]:
    """Weights to keep per layer: ``density * size`` rounded so that they sum to ``total``
    (largest remainders first, ties by layer order)."""
    exact = {n: densities[n] * sizes[n] for n in sizes}
    budgets = {n: min(sizes[n], math.floor(v)) for n, v in exact.items()}
    order = sorted(sizes, key=lambda n: -(exact[n] - math.floor(exact[n])))
    for n in order:
        if sum(budgets.values()) >= total:
            break
        if budgets[n] < sizes[n]:
            budgets[n] += 1
    return budgets


def _budget_scores(ctx: ScoreContext, densities: dict[str, float]) -> Scores:
    """Scores that make the global ranking keep, in each layer, its budget of the still-kept
    weights with the highest seeded random scores: the chosen ones are lifted above every
    other score (random scores lie in [0, 1))."""
    within = random(ctx)
    sizes = {n: int(ctx.keep[n].sum()) for n in ctx.weights}
    total = keep_count(ctx.density, sum(k.numel() for k in ctx.keep.values()))
    budgets = layer_budgets({n: min(1.0, densities[n] * ctx.keep[n].numel() / max(sizes[n], 1))
                             for n in sizes}, sizes, total)
    out = {}
    for n, w in ctx.weights.items():
        flat = torch.where(ctx.keep[n], within[n], torch.full_like(within[n], -1.0)).contiguous().view(-1)
        if budgets[n]:
            flat[torch.topk(flat, budgets[n]).indices] += 2.0
        out[n] = flat.view(w.shape)
    return out


def erk(ctx: ScoreContext) -> Scores:
    """Random pruning with ERK layer densities: a seeded random set of each layer's share."""
    shapes = {n: tuple(w.shape) for n, w in ctx.weights.items()}
    return _budget_scores(ctx, erk_densities(shapes, ctx.density))


def random_uniform(ctx: ScoreContext) -> Scores:
    """Random pruning with the same density in every layer."""
    return _budget_scores(ctx, {n: ctx.density for n in ctx.weights})
