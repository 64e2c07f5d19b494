"""DRIVE (Saikumar & Varghese 2024): train dense for ``warmup_epochs``, then prune iteratively by
a combination of the L1 norm |w|, the connection sensitivity |w * g| and the convergence
sensitivity |g| (a large gradient: the weight has not converged and may matter later).

The paper's exact equation is not available, so the combination is configurable and recorded
with every result (DESIGN.md, "Scores"): ``drive.weights`` [a, b, c], ``drive.normalize`` and
``drive.combine``.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, field_validator

from drive.method import Method, MethodArgs
from drive.scores import ScoreContext, Scores, abs_weights, loss_gradients


class DriveArgs(MethodArgs):
    """DRIVE's score: a combination of |w|, |w*g| and |g|."""

    weights: list[float] = Field(default_factory=lambda: [1.0, 1.0, 1.0], title="w",
                                 description="[a, b, c] for |w|, |w*g|, |g|")
    normalize: Literal["mean", "none"] = Field("mean", title="norm", description="divide each "
                                               "term by its mean over the unpruned weights, or not")
    combine: Literal["sum", "product"] = Field("sum", title="comb", description="a*T1 + b*T2 + "
                                               "c*T3, or T1^a * T2^b * T3^c")

    @field_validator("weights")
    @classmethod
    def _three_nonnegative(cls, v: list[float]) -> list[float]:
        if len(v) != 3 or any(w < 0 for w in v) or not any(w > 0 for w in v):
            raise ValueError("must be three non-negative numbers, at least one positive")
        return v


def terms(ctx: ScoreContext) -> tuple[Scores, Scores, Scores]:
    """DRIVE's three terms: L1 norm |w|, connection sensitivity |w*g|, convergence sensitivity |g|."""
    grads = loss_gradients(ctx)
    l1 = abs_weights(ctx)
    connection = {n: (ctx.weights[n].detach() * grads[n]).abs() for n in grads}
    convergence = {n: g.abs() for n, g in grads.items()}
    return l1, connection, convergence


def _mean_over_unpruned(term: Scores, keep: dict[str, torch.Tensor]) -> torch.Tensor:
    total = sum(t[keep[n]].double().sum() for n, t in term.items())
    count = sum(int(keep[n].sum()) for n in term)
    return total / max(count, 1)


def score(ctx: ScoreContext) -> Scores:
    """``normalize="mean"`` divides each term by its mean over the unpruned prunable weights (a
    term whose mean is zero is left as is). ``combine="sum"`` gives a*T1 + b*T2 + c*T3;
    ``"product"`` gives T1^a * T2^b * T3^c."""
    args = ctx.arguments(DriveArgs)
    parts = list(terms(ctx))
    if args.normalize == "mean":
        for i, term in enumerate(parts):
            mean = float(_mean_over_unpruned(term, ctx.keep))
            if mean > 0:
                parts[i] = {n: t / mean for n, t in term.items()}
    out = {}
    for n in ctx.weights:
        layer = [t[n] for t in parts]
        if args.combine == "sum":
            out[n] = sum(a * p for a, p in zip(args.weights, layer))
        else:
            out[n] = torch.prod(torch.stack([p.pow(a) for a, p in zip(args.weights, layer)]), dim=0)
    return out


METHOD = Method("drive", score, args=DriveArgs, plan="after_warmup", iterations=10, data=True,
                varies=("prune_iterations",), label="DRIVE", color="#D55E00", marker="o",
                reference="Saikumar & Varghese 2024", order=20)
