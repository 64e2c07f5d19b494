"""Optimisers: the default SGD unchanged, AdamW, no-decay parameter groups, masks exact under AdamW."""

import pytest
import torch
from torch import nn

from drive.config import TrainConfig
from drive.masks import Masks
from drive.optim import make_optimizer, new_optimizer, no_decay_parameters
from drive.train import train_step

CPU = torch.device("cpu")


def tiny() -> nn.Sequential:
    """conv (weight, bias), BN (weight, bias), linear (weight, bias): six parameters."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(),
                         nn.Linear(2 * 4 * 4, 3))


def batches(n: int = 6) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(1)
    return [(torch.randn(16, 1, 6, 6, generator=gen), torch.randint(0, 3, (16,), generator=gen))
            for _ in range(n)]


def test_the_default_is_the_sgd_of_before_one_group_of_every_parameter_in_model_order():
    """Same construction as before train.optimizer existed: one group, model order, fused;
    the weights after a few steps are bit for bit those of that construction."""
    cfg = TrainConfig(nesterov=True)
    ours, theirs = tiny(), tiny()
    opt = make_optimizer(ours, cfg)
    before = torch.optim.SGD(list(theirs.parameters()), fused=True, lr=cfg.lr, momentum=cfg.momentum,
                             nesterov=True, weight_decay=cfg.weight_decay)
    assert type(opt) is torch.optim.SGD and len(opt.param_groups) == 1
    assert opt.param_groups[0]["params"] == list(ours.parameters())
    assert opt.state_dict()["param_groups"] == before.state_dict()["param_groups"]
    for x, y in batches():
        for model, o in ((ours, opt), (theirs, before)):
            train_step(model, x, y, o, None, cfg, CPU)
    for a, b in zip(ours.state_dict().values(), theirs.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
@pytest.mark.parametrize("groups,exempt", [
    (["bn"], ["1.weight", "1.bias"]),
    (["bias"], ["0.bias", "1.bias", "4.bias"]),
    (["bn", "bias"], ["0.bias", "1.weight", "1.bias", "4.bias"]),
])
def test_no_decay_groups_hold_exactly_the_bn_and_bias_parameters(optimizer, groups, exempt):
    model = tiny()
    names = {id(p): n for n, p in model.named_parameters()}
    opt = make_optimizer(model, TrainConfig(optimizer=optimizer, no_decay=groups, weight_decay=0.1))
    decay, free = opt.param_groups
    assert [names[id(p)] for p in free["params"]] == exempt and free["weight_decay"] == 0.0
    assert [names[id(p)] for p in decay["params"]] == [n for n in names.values() if n not in exempt]
    assert decay["weight_decay"] == 0.1


def test_a_group_with_no_parameter_is_left_out():
    mlp = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    assert no_decay_parameters(mlp, ["bn"]) == set()
    opt = make_optimizer(mlp, TrainConfig(no_decay=["bn"]))
    assert len(opt.param_groups) == 1 and opt.param_groups[0]["params"] == list(mlp.parameters())


def test_adamw_takes_its_fields_and_is_fused():
    cfg = TrainConfig(optimizer="adamw", lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)
    opt = make_optimizer(tiny(), cfg)
    assert type(opt) is torch.optim.AdamW and opt.defaults["fused"]
    assert (opt.defaults["betas"], opt.defaults["eps"], opt.defaults["weight_decay"]) == ((0.8, 0.99), 1e-6, 0.1)


def test_pruned_weights_and_their_adam_moments_stay_exactly_zero_under_adamw_with_weight_decay():
    """Dense AdamW steps build moments for every weight; pruning then zeroes the pruned weights'
    moments at the next step, and steps with decoupled weight decay leave them exactly 0."""
    model = tiny()
    masks = Masks.for_model(model)
    cfg = TrainConfig(optimizer="adamw", lr=1e-2, weight_decay=0.1, no_decay=["bias"])
    opt, _ = new_optimizer(model, cfg)
    data = batches(8)
    for x, y in data[:3]:
        train_step(model, x, y, opt, masks, cfg, CPU)
    assert all((opt.state[w]["exp_avg_sq"] != 0).all() for w in masks.weights.values())
    masks.prune_to({n: w.detach().abs() for n, w in masks.weights.items()}, 0.3)
    kept_before = {n: w[masks.keep[n]].clone() for n, w in masks.weights.items()}
    for x, y in data[3:]:
        train_step(model, x, y, opt, masks, cfg, CPU)
    for n, w in masks.weights.items():
        pruned = ~masks.keep[n]
        assert (w[pruned] == 0).all(), n
        for key in ("exp_avg", "exp_avg_sq"):
            assert (opt.state[w][key][pruned] == 0).all(), (n, key)
        assert not torch.equal(w[masks.keep[n]], kept_before[n])  # the kept weights still train
