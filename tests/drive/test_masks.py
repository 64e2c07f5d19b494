import math

import pytest
import torch
from torch import nn

from drive.bits import pack_bits
from drive.errors import ConfigError
from drive.masks import Masks, keep_count, prunable_layers, select_top_k


def small_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(4, 3),
    )


def test_prunable_layers_are_conv_and_linear_weights_in_order():
    net = small_net()
    layers = prunable_layers(net)
    assert list(layers) == ["0", "3", "7"]
    assert layers["0"] is net[0].weight and layers["7"] is net[7].weight
    assert list(prunable_layers(net, exclude_first=True)) == ["3", "7"]
    assert list(prunable_layers(net, exclude_last=True)) == ["0", "3"]
    assert list(prunable_layers(net, exclude_first=True, exclude_last=True)) == ["3"]


def test_no_prunable_layer_is_a_config_error():
    with pytest.raises(ConfigError, match="model"):
        prunable_layers(nn.Sequential(nn.ReLU()))
    with pytest.raises(ConfigError, match="exclude"):
        prunable_layers(nn.Sequential(nn.Linear(2, 2)), exclude_first=True)


@pytest.mark.parametrize("density,n,k", [(0.1, 1000, 100), (0.5, 3, 2), (0.25, 2, 1), (0.0, 10, 0),
                                         (1.0, 7, 7), (0.02, 25, 1), (0.3, 10, 3)])
def test_keep_count_rounds_half_up(density, n, k):
    assert keep_count(density, n) == k


def test_top_k_keeps_exactly_k_with_ties_broken_by_position():
    keep = {"a": torch.ones(2, 3, dtype=torch.bool), "b": torch.ones(4, dtype=torch.bool)}
    scores = {"a": torch.ones(2, 3), "b": torch.ones(4)}  # all tied
    out = select_top_k(scores, keep, 4)
    assert int(out["a"].sum() + out["b"].sum()) == 4
    assert out["a"].flatten().tolist() == [True] * 4 + [False] * 2
    assert not out["b"].any()
    # deterministic: same answer again, also for ties inside the threshold
    scores = {"a": torch.tensor([[3., 1., 2.], [2., 2., 0.]]), "b": torch.tensor([2., 5., 2., 1.])}
    out = select_top_k(scores, keep, 4)
    assert out["a"].flatten().tolist() == [True, False, True, True, False, False]
    assert out["b"].tolist() == [False, True, False, False]


def test_pruned_weights_are_never_revived_and_non_finite_scores_are_refused():
    keep = {"a": torch.tensor([True, False, True, True, True])}
    scores = {"a": torch.tensor([1.0, float("nan"), 4.0, 3.0, 2.0])}  # NaN of a pruned weight
    out = select_top_k(scores, keep, 3)
    assert out["a"].tolist() == [False, False, True, True, True]
    with pytest.raises(ValueError):
        select_top_k(scores, keep, 5)
    for bad in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(ValueError, match="NaN or infinite"):
            select_top_k({"a": torch.tensor([1.0, 0.0, bad, 3.0, 2.0])}, keep, 3)


def test_scores_are_ranked_in_float64():
    """Two float64 scores that float32 would round to the same value keep their order."""
    keep = {"a": torch.ones(2, dtype=torch.bool)}
    scores = {"a": torch.tensor([1.0, 1.0 + 1e-12], dtype=torch.float64)}
    assert select_top_k(scores, keep, 1)["a"].tolist() == [False, True]


@pytest.mark.parametrize("density", [0.5, 0.1, 0.02, 0.013])
def test_global_and_layerwise_counts_are_exact(density):
    torch.manual_seed(0)
    net = small_net()
    masks = Masks.for_model(net)
    masks.prune_to({n: w.detach().abs() for n, w in masks.weights.items()}, density)
    assert masks.kept == round(density * masks.total + 1e-9) == keep_count(density, masks.total)
    assert math.isclose(masks.density(), masks.kept / masks.total)
    for n, w in masks.weights.items():
        assert torch.equal(w == 0, ~masks.keep[n]) or bool((w[~masks.keep[n]] == 0).all())

    masks = Masks.for_model(small_net())
    masks.prune_to({n: torch.rand(w.shape) for n, w in masks.weights.items()}, density, "layerwise")
    for n, m in masks.keep.items():
        assert int(m.sum()) == keep_count(density, m.numel())


def test_collapsed_layer_is_flagged():
    net = small_net()
    masks = Masks.for_model(net)
    scores = {n: torch.ones_like(w) for n, w in masks.weights.items()}
    scores["7"] = torch.zeros_like(masks.weights["7"])  # the classifier scores lowest
    masks.prune_to(scores, 0.5)
    assert masks.collapsed_layers() == ["7"]
    assert masks.summary()["layer_density"]["7"] == 0.0


def _train_steps(net, masks, steps=20, use_masks=True):
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)
    x, y = torch.randn(16, 1, 6, 6), torch.randint(0, 3, (16,))
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        masks.step(opt) if use_masks else opt.step()
    return opt


def test_masked_weights_stay_zero_through_momentum_and_weight_decay():
    torch.manual_seed(0)
    net = small_net()
    masks = Masks.for_model(net)
    opt = _train_steps(net, masks, steps=5)  # dense phase fills momentum buffers
    masks.prune_to({n: w.detach().abs() for n, w in masks.weights.items()}, 0.2)
    masks.mask_optimizer_state(opt)
    for n, w in masks.weights.items():
        assert (opt.state[w]["momentum_buffer"][~masks.keep[n]] == 0).all()
    pruned = {n: ~m for n, m in masks.keep.items()}
    x = torch.randn(16, 1, 6, 6)
    y = torch.randint(0, 3, (16,))
    for _ in range(20):
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        masks.step(opt)
    for n, w in masks.weights.items():
        assert (w[pruned[n]] == 0).all()
        assert (w[~pruned[n]] != 0).any()  # the kept weights did train


def test_without_enforcement_momentum_would_revive_pruned_weights():
    """The control for the test above: plain SGD steps do move zeroed weights."""
    torch.manual_seed(0)
    net = small_net()
    masks = Masks.for_model(net)
    masks.prune_to({n: w.detach().abs() for n, w in masks.weights.items()}, 0.2)
    _train_steps(net, masks, steps=3, use_masks=False)
    assert any((w[~masks.keep[n]] != 0).any() for n, w in masks.weights.items())


def test_state_dict_round_trip_reapplies_mask():
    torch.manual_seed(0)
    a, b = small_net(), small_net()
    ma, mb = Masks.for_model(a), Masks.for_model(b)
    ma.prune_to({n: torch.rand(w.shape) for n, w in ma.weights.items()}, 0.3)
    mb.load_state_dict(ma.state_dict())
    for n in ma.keep:
        assert torch.equal(ma.keep[n], mb.keep[n])
        assert (mb.weights[n][~mb.keep[n]] == 0).all()
    with pytest.raises(ValueError, match="checkpoint"):
        mb.load_state_dict({"0": ma.keep["0"]})


def test_channels_last_model_gets_the_same_masks_laid_out_like_its_weights():
    torch.manual_seed(0)
    plain = small_net()
    cl = small_net().to(memory_format=torch.channels_last)
    cl.load_state_dict(plain.state_dict())
    mp, mc = Masks.for_model(plain), Masks.for_model(cl)
    scores = {n: w.detach().abs() for n, w in mp.weights.items()}
    mp.prune_to(scores, 0.3)
    mc.prune_to({n: s.contiguous(memory_format=torch.channels_last) if s.dim() == 4 else s
                 for n, s in scores.items()}, 0.3)
    for n, w in mc.weights.items():
        assert torch.equal(mp.keep[n], mc.keep[n])  # the same weights, whatever the layout
        assert torch.equal(w, mp.weights[n])
    for m, w in zip(mc._mults(), mc.weights.values()):
        assert m.stride() == w.stride()
    assert mc.weights["0"].is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("momentum,nesterov,weight_decay", [(0.9, False, 5e-4), (0.9, True, 5e-4),
                                                            (0.0, False, 1e-3), (0.9, True, 0.0)])
@pytest.mark.parametrize("impl", ["fused", "foreach", "loop"])
def test_masked_gradients_alone_keep_pruned_weights_exactly_zero(momentum, nesterov, weight_decay, impl):
    """No re-apply after the step: masked gradients and momentum keep every pruned weight at 0.0,
    whichever SGD implementation; the masks change mid-training without the caller masking the
    optimiser's momentum, and the first step under the new masks does it."""
    torch.manual_seed(0)
    net = small_net()
    masks = Masks.for_model(net)
    kwargs = {"fused": True} if impl == "fused" else {"foreach": impl == "foreach"}
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=momentum, nesterov=nesterov,
                          weight_decay=weight_decay, **kwargs)
    x, y = torch.randn(16, 1, 6, 6), torch.randint(0, 3, (16,))

    def steps(n):
        for _ in range(n):
            opt.zero_grad()
            nn.functional.cross_entropy(net(x), y).backward()
            masks.step(opt)

    steps(3)  # dense: the momentum buffers fill
    for density in (0.5, 0.2):
        masks.prune_to({n: w.detach().abs() for n, w in masks.weights.items()}, density)
        before = {n: w.detach().clone() for n, w in masks.weights.items()}
        steps(10)
        for n, w in masks.weights.items():
            assert (w[~masks.keep[n]] == 0).all()
            assert not torch.equal(w[masks.keep[n]], before[n][masks.keep[n]])  # the kept ones train
            if momentum:
                assert (opt.state[w]["momentum_buffer"][~masks.keep[n]] == 0).all()


def test_dense_masks_do_no_work_and_sparse_steps_mask_only_the_gradients(monkeypatch):
    """Dense phases cost nothing; under sparse masks a step is one multi-tensor multiply (the
    gradients), plus, once per mask change, the weights and the momentum."""
    torch.manual_seed(0)
    net = small_net()
    masks = Masks.for_model(net)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    calls = []
    real = torch._foreach_mul_
    monkeypatch.setattr(torch, "_foreach_mul_", lambda a, b: (calls.append(len(a)), real(a, b)))
    x, y = torch.randn(8, 1, 6, 6), torch.randint(0, 3, (8,))

    def step():
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        masks.step(opt)

    for _ in range(3):
        step()
    masks.apply()
    masks.mask_gradients()
    assert calls == [] and masks.is_dense and masks.density() == 1.0
    masks.prune_to({n: w.detach().abs() for n, w in masks.weights.items()}, 0.3)
    assert calls == [3]  # the weights, once
    calls.clear()
    step()
    assert calls == [3, 3, 3]  # first step under new masks: weights, momentum, gradients
    calls.clear()
    for _ in range(4):
        step()
    assert calls == [3] * 4  # then the gradients only


def test_density_and_summary_are_read_once_per_mask_change(monkeypatch):
    torch.manual_seed(0)
    masks = Masks.for_model(small_net())
    reads = []
    real = torch.Tensor.tolist
    monkeypatch.setattr(torch.Tensor, "tolist", lambda t: (reads.append(1), real(t))[1])
    masks.prune_to({n: torch.rand(w.shape) for n, w in masks.weights.items()}, 0.25)
    first = masks.summary()
    for _ in range(5):
        assert masks.summary() == first and masks.density() == first["density"]
    assert len(reads) == 1
    assert first["params_remaining"] == keep_count(0.25, masks.total)
    assert first["layer_density"] == {n: int(m.sum()) / m.numel() for n, m in masks.keep.items()}
    masks.keep = {n: torch.zeros_like(m) if n == "0" else m for n, m in masks.keep.items()}
    assert masks.collapsed_layers() == ["0"] and len(reads) == 2


def test_masks_are_saved_as_bits_and_load_back():
    torch.manual_seed(0)
    a, b = small_net().to(memory_format=torch.channels_last), small_net()
    ma, mb = Masks.for_model(a), Masks.for_model(b)
    ma.prune_to({n: torch.rand(w.shape) for n, w in ma.weights.items()}, 0.3)
    state = ma.state_dict()
    assert all(torch.equal(state[n], pack_bits(m)) for n, m in ma.keep.items())
    mb.load_state_dict(state)
    assert all(torch.equal(ma.keep[n], mb.keep[n]) for n in ma.keep)
    mb.load_state_dict({n: m.clone() for n, m in ma.keep.items()})  # bool masks of older checkpoints
    assert all(torch.equal(ma.keep[n], mb.keep[n]) for n in ma.keep)
    with pytest.raises(ValueError, match="layer '0' does not fit"):
        mb.load_state_dict({**state, "0": state["0"][:1]})


def test_a_sparsity_whose_exact_count_keeps_no_weight_is_refused():
    from drive.errors import ConfigError
    from drive.masks import check_keeps_a_weight

    check_keeps_a_weight(0.999994, 93728, "m")  # round(0.000006 * 93728) = 1
    check_keeps_a_weight(0.0, 1, "m")
    with pytest.raises(ConfigError, match=r"^sparsity: 0.999995 keeps none of m's 93728 prunable "
                                          r"weights .* at most 0.999994 keeps one$"):
        check_keeps_a_weight(0.999995, 93728, "m")
