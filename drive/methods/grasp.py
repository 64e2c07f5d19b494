"""GraSP (Wang et al. 2020): keep the weights whose removal would reduce the gradient flow most.

The paper scores ``S(-w) = -w * Hg`` and *removes* the weights with the highest ``S(-w)``
(Algorithm 1; both reference implementations do the same), which is keeping the highest
``w * Hg``, with H g by double backprop and the logits divided by a temperature.
"""

from __future__ import annotations

import torch
from pydantic import Field

from drive.method import Method, MethodArgs
from drive.scores import ScoreContext, Scores, scoring_mode


class GraspArgs(MethodArgs):
    temperature: float = Field(200.0, gt=0, description="softmax temperature (Wang et al. use 200)")


def score(ctx: ScoreContext) -> Scores:
    """``w * (H g)``, keep the highest. ``g`` and ``H`` are those of the masked network: the
    gradient of pruned weights is masked, so at T > 1 ``Hg`` is ``H_kk g_k`` over the kept
    weights k, as in masked layers."""
    if not ctx.batches:
        raise ValueError("prune.score_batches: GraSP needs at least one training batch")
    model, names = ctx.model, list(ctx.weights)
    params = [ctx.weights[n] for n in names]
    keep = [ctx.keep[n].to(p.dtype) for n, p in zip(names, params)]
    temp, nb = ctx.arguments(GraspArgs).temperature, len(ctx.batches)

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


METHOD = Method("grasp", score, args=GraspArgs, data=True, label="GraSP", color="#CC79A7",
                marker="v", linestyle="-.", reference="Wang et al. 2020", order=40)
