import math

import pytest
import torch
from torch import nn

from drive.imp import imp_densities, imp_rounds, prune_by_magnitude, rewind, snapshot
from drive.masks import Masks, keep_count


@pytest.mark.parametrize("sparsity,rate", [(0.5, 0.2), (0.9, 0.2), (0.95, 0.2), (0.98, 0.2),
                                           (0.99, 0.5), (0.3, 0.2), (0.2, 0.2), (0.64, 0.2)])
def test_imp_needs_ceil_log_rounds(sparsity, rate):
    expected = math.ceil(round(math.log(1 - sparsity) / math.log(1 - rate), 9))
    assert imp_rounds(sparsity, rate) == expected
    levels = imp_densities(sparsity, rate)
    assert len(levels) == expected
    assert levels[-1] == pytest.approx(1 - sparsity)
    for a, b in zip(levels, levels[1:-1]):
        assert b == pytest.approx(a * (1 - rate))


def test_imp_lands_exactly_on_every_stop():
    levels = imp_densities(0.9, 0.2, stops=[0.5, 0.8])
    for stop in (0.5, 0.2, 0.1):
        assert any(abs(d - stop) < 1e-12 for d in levels)
    assert levels == sorted(levels, reverse=True)
    assert all(b >= a * 0.8 - 1e-12 for a, b in zip(levels, levels[1:]))
    assert imp_densities(0.0, 0.2) == []


def test_rewind_restores_unpruned_weights_to_saved_values():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    masks = Masks.for_model(net)
    saved = snapshot(net)
    opt = torch.optim.SGD(net.parameters(), lr=0.5, momentum=0.9)
    for _ in range(5):  # train so the weights move away from the snapshot
        opt.zero_grad()
        nn.functional.cross_entropy(net(torch.randn(16, 4)), torch.randint(0, 2, (16,))).backward()
        opt.step()
    prune_by_magnitude(masks, 0.3)
    assert masks.kept == keep_count(0.3, masks.total)
    trained = {n: w.detach().clone() for n, w in masks.weights.items()}
    rewind(net, saved, masks)
    for n, w in masks.weights.items():
        keep = masks.keep[n]
        assert torch.equal(w[keep], saved[f"{n}.weight"][keep])
        assert (w[~keep] == 0).all()
    assert torch.equal(net[1].running_mean, saved["1.running_mean"])
    # global magnitude pruning kept the largest trained weights of all layers
    kept = torch.cat([trained[n][masks.keep[n]].abs() for n in trained])
    dropped = torch.cat([trained[n][~masks.keep[n]].abs() for n in trained])
    assert kept.min() >= dropped.max()
