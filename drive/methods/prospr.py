"""ProsPr (Alizadeh et al. 2022): prune by the meta-gradient of the loss after a few SGD steps
with respect to the mask."""

from __future__ import annotations

import torch
from pydantic import Field
from torch.func import functional_call

from drive.method import Method, MethodArgs
from drive.scores import ScoreContext, Scores, scoring_mode


class ProsprArgs(MethodArgs):
    steps: int = Field(3, ge=1, le=100, description="inner SGD steps of the meta-gradient (Alizadeh et al. use 3)")
    lr: float | None = Field(None, gt=0, description="inner learning rate; None = train.lr")


def score(ctx: ScoreContext) -> Scores:
    """``|dL(w_M)/dc|``, the meta-gradient of the loss after M SGD steps from ``w0 * c`` with
    respect to the mask ``c`` (all ones), through the steps.

    The M inner steps (``steps``, learning rate ``lr``, default the training's) train the network
    in train mode (batch statistics; the model's BN buffers and the global random generators are
    left untouched: dropout draws from a fork) on ``ctx.batches`` in turn, and the loss after
    them is taken on the next batch. Pruned weights stay zero through the inner steps (their
    updates are masked).
    """
    if not ctx.batches:
        raise ValueError("prune.score_batches: ProsPr needs training batches")
    args = ctx.arguments(ProsprArgs)
    steps, lr = args.steps, args.lr or ctx.lr
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
        for step in range(steps):
            x, y = ctx.batches[step % len(ctx.batches)]
            loss = ctx.loss(functional_call(model, (params, buffers), (x,)), y)
            grads = torch.autograd.grad(loss, list(params.values()), create_graph=True)
            params = {k: v - lr * g * keep.get(k, 1.0) for (k, v), g in zip(params.items(), grads)}
            ctx.samples += len(y)
        x, y = ctx.batches[steps % len(ctx.batches)]
        loss = ctx.loss(functional_call(model, (params, buffers), (x,)), y)
        meta = torch.autograd.grad(loss, [masks[n] for n in names])
        # the meta-gradient runs back through every step: about one more pass per sample
        ctx.samples += len(y) + sum(len(ctx.batches[s % len(ctx.batches)][1])
                                    for s in range(steps + 1))
    return {n: g.abs() for n, g in zip(names, meta)}


METHOD = Method("prospr", score, args=ProsprArgs, data=True,
                batches=lambda cfg: cfg.args.steps + 1, label="ProsPr", color="#117733",
                marker="p", reference="Alizadeh et al. 2022", order=110)
