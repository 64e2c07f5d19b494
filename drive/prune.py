"""The iterative pruning loop and its density schedules.

A method pruned in T iterations reaches density d_t after iteration t: ``d^(t/T)``
(exponential, as in SynFlow) or ``1 - (1 - d) t / T`` (linear). Scores are recomputed on the
masked network at every iteration, and only still-unpruned weights compete, so a weight pruned
at iteration t stays pruned.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from drive.errors import ScoreError
from drive.masks import Masks
from drive.method import Method, get_method
from drive.scores import ScoreContext, Scores


def density_schedule(density: float, iterations: int, schedule: str = "exponential") -> list[float]:
    """Densities d_1..d_T after each of T iterations; d_T is exactly ``density``."""
    if iterations < 1:
        raise ValueError("prune_iterations: must be at least 1")
    if not 0 < density <= 1:
        raise ValueError("sparsity: must be in [0, 1)")
    steps = range(1, iterations + 1)
    if schedule == "exponential":
        out = [density ** (t / iterations) for t in steps]
    elif schedule == "linear":
        out = [1 - (1 - density) * t / iterations for t in steps]
    else:
        raise ValueError(f"prune.schedule: must be exponential or linear, got {schedule!r}")
    out[-1] = density
    return out


@dataclass
class PruneReport:
    """What an iterative pruning run did."""

    densities: list[float]
    samples: int


def prune_iteratively(method: str | Method, masks: Masks, ctx: ScoreContext, density: float,
                      iterations: int, schedule: str = "exponential",
                      scope: str = "global") -> PruneReport:
    """Prune ``masks`` to ``density`` in ``iterations`` steps, rescoring with ``method`` each time.

    A pruned weight stays pruned, except for a method whose entry ``revives`` (FORCE): there
    every weight competes again at each iteration, with its value from before pruning.
    """
    spec = get_method(method) if isinstance(method, str) else method
    method = spec.name
    if ctx.args is None:
        ctx.args = spec.args()
    spec.check_scope(scope)
    if spec.revives:  # every weight competes at every iteration, with its value before pruning
        ctx.dense = {n: w.detach().clone() for n, w in masks.weights.items()}
    groups = _groups(ctx.batches, iterations) if spec.fresh_batches else None
    reached = []
    for t, d_t in enumerate(density_schedule(density, iterations, schedule), start=1):
        ctx.iteration, ctx.density, ctx.keep = t, d_t, masks.keep
        if groups:
            ctx.batches = groups[t - 1]
        scores = spec.score(ctx)
        if spec.revives:
            masks.restore(ctx.dense)
        check_finite(method, scores, masks.keep)
        masks.prune_to(scores, d_t, scope)
        reached.append(masks.density())
    return PruneReport(densities=reached, samples=ctx.samples)


def _groups(batches, iterations: int) -> list | None:
    """``batches`` split into one equal group per iteration (a method with ``fresh_batches``),
    or None (the same batches at every iteration) when they cannot be split so."""
    size = len(batches) // iterations
    if size == 0 or size * iterations != len(batches):
        return None
    return [batches[i * size:(i + 1) * size] for i in range(iterations)]


def check_finite(method: str, scores: Scores, keep: dict[str, torch.Tensor]) -> None:
    """Raise :class:`ScoreError` when an unpruned weight's score is NaN or infinite.

    Such a score would be ranked by position, silently keeping the earliest layers.
    """
    for name, mask in keep.items():
        values = scores[name].detach()[mask]
        bad = int((~torch.isfinite(values)).sum())
        if bad:
            raise ScoreError(f"{method}: {bad} of {values.numel()} scores of layer {name or '<model>'!r} "
                             "are NaN or infinite; they cannot be ranked")
