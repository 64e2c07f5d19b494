from dataclasses import replace

import pytest
import torch
from torch import nn

from drive.masks import Masks, keep_count
from drive.method import get_method
from drive.methods.synflow import SynflowArgs
from drive.prune import density_schedule, prune_iteratively
from drive.scores import ScoreContext


def test_exponential_schedule_is_d_to_the_t_over_T():
    sched = density_schedule(0.01, 4)
    assert sched == pytest.approx([0.01 ** 0.25, 0.01 ** 0.5, 0.01 ** 0.75, 0.01])
    assert sched[-1] == 0.01


def test_linear_schedule_and_single_iteration():
    assert density_schedule(0.2, 4, "linear") == pytest.approx([0.8, 0.6, 0.4, 0.2])
    assert density_schedule(0.3, 1) == [0.3]
    with pytest.raises(ValueError, match="schedule"):
        density_schedule(0.3, 2, "cubic")
    with pytest.raises(ValueError, match="prune_iterations"):
        density_schedule(0.3, 0)


def net() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(8, 4))


class Recorder:
    """Wraps a score function to capture the mask before every iteration."""

    def __init__(self, method):
        self.score, self.before = get_method(method).score, []

    def __call__(self, ctx):
        self.before.append({n: m.clone() for n, m in ctx.keep.items()})
        return self.score(ctx)


@pytest.mark.parametrize("method", ["magnitude", "random", "snip", "grasp", "synflow", "drive"])
def test_iterative_pruning_is_exact_and_monotone(method):
    model = net()
    masks = Masks.for_model(model)
    batches = [(torch.randn(8, 1, 6, 6), torch.randint(0, 4, (8,)))]
    ctx = ScoreContext(model, masks.weights, masks.keep, batches=batches, input_shape=(1, 6, 6),
                       args=SynflowArgs(float64=False) if method == "synflow" else None)
    rec = Recorder(method)
    report = prune_iteratively(replace(get_method(method), score=rec), masks, ctx, 0.05, 5)
    expected = [keep_count(d, masks.total) / masks.total for d in density_schedule(0.05, 5)]
    assert report.densities == pytest.approx(expected)
    assert masks.kept == keep_count(0.05, masks.total)
    # a weight pruned at iteration t is pruned at t+1 and after, and is zero
    snapshots = rec.before + [masks.keep]
    for earlier, later in zip(snapshots, snapshots[1:]):
        for n in earlier:
            assert not (later[n] & ~earlier[n]).any()
    for n, w in masks.weights.items():
        assert (w[~masks.keep[n]] == 0).all()


def test_scores_are_recomputed_on_the_masked_network():
    model = net()
    masks = Masks.for_model(model)
    ctx = ScoreContext(model, masks.weights, masks.keep, input_shape=(1, 6, 6),
                       args=SynflowArgs(float64=False))
    seen = []

    def spy(c):
        seen.append(sum(int((w == 0).sum()) for w in c.weights.values()))
        return get_method("synflow").score(c)

    prune_iteratively(replace(get_method("synflow"), name="spy", score=spy), masks, ctx, 0.1, 3)
    assert seen[0] < seen[1] < seen[2]  # each iteration sees the previous iterations' zeros


def test_samples_are_counted():
    model = net()
    masks = Masks.for_model(model)
    batches = [(torch.randn(8, 1, 6, 6), torch.randint(0, 4, (8,)))] * 2
    ctx = ScoreContext(model, masks.weights, masks.keep, batches=batches)
    assert prune_iteratively("snip", masks, ctx, 0.5, 3).samples == 3 * 16
