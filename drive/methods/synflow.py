"""SynFlow (Tanaka et al. 2020): data-free ``|w * dR/dw|``, R the output sum of the network with
every parameter replaced by its absolute value, fed one all-ones sample; 100 iterations by
default. Exact at any depth (:mod:`drive.synflow`)."""

from __future__ import annotations

import torch
from pydantic import Field

from drive.method import Method, MethodArgs
from drive.scores import ScoreContext, Scores
from drive.synflow import synflow_scores


class SynflowArgs(MethodArgs):
    float64: bool = Field(True, description="compute the scores in float64 (float32 rounding "
                          "decides near-ties); scores are exact at any depth either way")


def score(ctx: ScoreContext) -> Scores:
    """Scored on a copy of the model whose parameters and buffers are replaced by their absolute
    values, BN in eval mode, fed one all-ones sample of ``input_shape``; the model itself is left
    untouched. ``results["synflow_log_r"]`` is log R of the last scoring."""
    if not ctx.input_shape:
        raise ValueError("synflow needs the input shape")
    dtype = torch.float64 if ctx.arguments(SynflowArgs).float64 else torch.float32
    scores, ctx.results["synflow_log_r"] = synflow_scores(ctx.model, list(ctx.weights),
                                                          ctx.input_shape, dtype)
    ctx.samples += 1
    return scores


METHOD = Method("synflow", score, args=SynflowArgs, iterations=100, label="SynFlow",
                color="#E69F00", marker="D", linestyle=":", reference="Tanaka et al. 2020", order=50)
