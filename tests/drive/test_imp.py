import math

import pytest
import torch
from torch import nn

from drive.imp import branches, imp_rounds, prune_by_magnitude, rewind, snapshot, trunk_density
from drive.masks import Masks, keep_count


@pytest.mark.parametrize("sparsity,rate", [(0.5, 0.2), (0.9, 0.2), (0.95, 0.2), (0.98, 0.2),
                                           (0.99, 0.5), (0.3, 0.2), (0.2, 0.2), (0.64, 0.2)])
def test_imp_needs_ceil_log_rounds(sparsity, rate):
    expected = math.ceil(round(math.log(1 - sparsity) / math.log(1 - rate), 9))
    assert imp_rounds(sparsity, rate) == expected
    # the trunk level a branch leaves from is the last one above the target density
    (branch,) = branches([sparsity], rate)
    assert branch.level == expected
    assert trunk_density(branch.parent, rate) > 1 - sparsity + 1e-12
    assert trunk_density(branch.parent + 1, rate) <= 1 - sparsity + 1e-12


def test_branches_are_sorted_and_skip_dense():
    got = branches([0.9, 0.5, 0.0, 0.8, 0.5], 0.2)
    assert [(b.sparsity, b.parent, b.level) for b in got] == [(0.5, 3, 4), (0.8, 7, 8), (0.9, 10, 11)]
    assert imp_rounds(0.0, 0.2) == 0 and branches([0.0], 0.2) == []
    with pytest.raises(ValueError, match="imp.rate"):
        imp_rounds(0.5, 1.0)


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


def test_each_trunk_level_prunes_the_smallest_trained_weights_globally_then_rewinds():
    """open_lth's sparse_global, written independently: of the trained network's still-unpruned
    weights (all layers in one ranking) the smallest |w| go, here down to round((1-rate)^k N);
    then the kept weights (and every other tensor) are rewound to init."""
    from drive.config import build_config
    from drive.experiment import Experiment

    exp = Experiment(build_config({"device": "cpu", "method": "imp", "sparsity": 0.75, "model": "digits_mlp",
                                   "imp": {"rate": 0.5}, "train": {"epochs": 1, "batch_size": 256}}))
    init = snapshot(exp.model)
    trained, seen = {}, []

    def spy(p):
        if p.metrics["phase"] == "imp" and p.boundary and "train_loss" in p.metrics:
            trained.update({n: w.detach().clone() for n, w in exp.masks.weights.items()})
            trained["keep"] = {n: m.clone() for n, m in exp.masks.keep.items()}
        if p.metrics["phase"] == "prune":
            seen.append(({n: m.clone() for n, m in exp.masks.keep.items()}, dict(trained)))
        if p.metrics["phase"] == "rewind":
            state = exp.model.state_dict()
            for k, v in init.items():
                layer = k.removesuffix(".weight")
                want = v * exp.masks.keep[layer] if layer in exp.masks.keep and k.endswith(".weight") else v
                assert torch.equal(state[k], want), k

    exp.run(spy)
    assert len(seen) == 2  # trunk level 1 (density 0.5), then the branch to 0.25
    total = exp.masks.total
    for (keep, before), density in zip(seen, (0.5, 0.25)):
        names = list(keep)
        alive = torch.cat([before["keep"][n].reshape(-1) for n in names])
        mags = torch.cat([before[n].abs().reshape(-1) for n in names])[alive]
        threshold = torch.sort(mags).values[int(alive.sum()) - keep_count(density, total)]
        kept = torch.cat([keep[n].reshape(-1) for n in names])
        flat = torch.cat([before[n].abs().reshape(-1) for n in names])
        assert int(kept.sum()) == keep_count(density, total)
        assert kept[alive & (flat > threshold)].all() and not kept[~alive | (flat < threshold)].any()
