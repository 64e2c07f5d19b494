"""The further baselines against their papers' definitions, on tiny networks."""

import copy
import math

import pytest
import torch
from torch import nn

from drive.budgets import layer_budgets
from drive.config import build_config
from drive.errors import ConfigError
from drive.experiment import Experiment, run
from drive.masks import Masks, keep_count, select_top_k
from drive.methods.erk import erk_densities
from drive.methods.force import score as force
from drive.methods.prospr import ProsprArgs
from drive.methods.prospr import score as prospr
from drive.methods.snip import score as snip
from drive.prune import prune_iteratively
from drive.scores import ScoreContext

FAST = {"device": "cpu", "train": {"epochs": 2, "batch_size": 128}, "model_args": {"width": 0.5}}
X = torch.randn(24, 5, generator=torch.Generator().manual_seed(0))
Y = torch.arange(24) % 3


def test_erk_densities_follow_the_erdos_renyi_kernel_rule():
    shapes = {"conv": (16, 3, 3, 3), "big": (64, 16, 3, 3), "fc": (10, 64)}
    d = erk_densities(shapes, 0.3)
    sizes = {n: math.prod(s) for n, s in shapes.items()}
    assert sum(d[n] * sizes[n] for n in sizes) == pytest.approx(0.3 * sum(sizes.values()))
    raw = {n: sum(s) / sizes[n] for n, s in shapes.items()}  # (n_in + n_out + k_h + k_w) / prod
    capped = [n for n in d if d[n] == 1.0]
    free = [n for n in d if n not in capped]
    ratios = [d[n] / raw[n] for n in free]
    assert max(ratios) == pytest.approx(min(ratios))  # one scale for the uncapped layers
    low = erk_densities(shapes, 0.1)  # nothing capped: density proportional to the ratio
    assert low["conv"] / low["big"] == pytest.approx(raw["conv"] / raw["big"])
    assert capped == ["conv", "fc"]  # small layers would pass density 1: they stay dense
    assert d["big"] == pytest.approx((0.3 * 10288 - 432 - 640) / 9216)
    budgets = layer_budgets(d, sizes, keep_count(0.3, sum(sizes.values())))
    assert sum(budgets.values()) == keep_count(0.3, sum(sizes.values()))
    assert all(abs(budgets[n] - d[n] * sizes[n]) < 1 for n in sizes)


def rigl_erk(shapes: dict[str, tuple[int, ...]], density: float) -> dict[str, float]:
    """ERK as RigL's sparse_utils computes it, written independently: per pass, the layers with
    the largest raw ratio are made dense while the scaled ratio of any layer passes 1."""
    dense: set[str] = set()
    while True:
        rhs = sum(density * math.prod(s) if n not in dense else -(1 - density) * math.prod(s)
                  for n, s in shapes.items())
        raw = {n: sum(s) / math.prod(s) for n, s in shapes.items() if n not in dense}
        eps = rhs / sum(raw[n] * math.prod(shapes[n]) for n in raw)
        if max(raw.values()) * eps <= 1:
            return {n: 1.0 if n in dense else eps * raw[n] for n in shapes}
        dense |= {n for n, r in raw.items() if r == max(raw.values())}


@pytest.mark.parametrize("density", [0.9, 0.5, 0.2, 0.05, 0.01])
def test_erk_densities_equal_rigls_one_dense_layer_at_a_time_loop(density):
    shapes = {"c1": (16, 3, 3, 3), "c2": (32, 16, 3, 3), "c3": (64, 32, 3, 3), "c4": (64, 64, 3, 3),
              "short": (64, 64, 1, 1), "fc": (10, 64)}
    got, want = erk_densities(shapes, density), rigl_erk(shapes, density)
    assert got == pytest.approx(want, rel=1e-12)
    assert all(0 < v <= 1 for v in got.values())


def test_erk_refuses_a_layerwise_ranking_that_would_make_it_uniform():
    with pytest.raises(ConfigError, match="prune.scope: must be global for erk"):
        build_config({"method": "erk", "sparsity": 0.9, "prune": {"scope": "layerwise"}})
    build_config({"method": "random_uniform", "sparsity": 0.9, "prune": {"scope": "layerwise"}})
    net = nn.Sequential(nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 3))
    masks = Masks.for_model(net)
    with pytest.raises(ValueError, match="prune.scope: must be global for erk"):
        prune_iteratively("erk", masks, ScoreContext(net, masks.weights, masks.keep), 0.1, 1,
                          scope="layerwise")


@pytest.mark.parametrize("method", ["erk", "random_uniform"])
def test_random_with_layer_densities_keeps_each_layers_share(method):
    exp = Experiment(build_config({**FAST, "method": method, "sparsity": 0.9}))
    m = exp.run()
    assert m["params_remaining"] == keep_count(0.1, m["params_prunable"])
    shapes = {n: tuple(w.shape) for n, w in exp.masks.weights.items()}
    want = erk_densities(shapes, 0.1) if method == "erk" else {n: 0.1 for n in shapes}
    for n, keep in exp.masks.keep.items():
        assert abs(int(keep.sum()) - want[n] * keep.numel()) <= 1, n
    again = Experiment(build_config({**FAST, "method": method, "sparsity": 0.9, "train": {"epochs": 1}}))
    again.run()
    assert all(torch.equal(again.masks.keep[n], exp.masks.keep[n]) for n in exp.masks.keep)  # seeded


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 12), nn.ReLU(), nn.Linear(12, 3))


def test_force_scores_dense_weights_by_the_gradient_of_the_pruned_network():
    net = mlp()
    masks = Masks.for_model(net)
    dense = {n: w.detach().clone() for n, w in masks.weights.items()}
    keep = {n: torch.rand(w.shape, generator=torch.Generator().manual_seed(1)) > 0.5
            for n, w in dense.items()}
    masks.keep = keep
    masks.apply()
    loss = nn.functional.cross_entropy(net(X), Y)  # the pruned network
    grads = torch.autograd.grad(loss, list(masks.weights.values()))
    got = force(ScoreContext(net, masks.weights, keep, batches=[(X, Y)], dense=dense))
    for (n, d), g in zip(dense.items(), grads):
        torch.testing.assert_close(got[n], (d * g).abs())
        assert (got[n][~keep[n]] > 0).any()  # pruned weights are scored: they can come back


def test_force_at_one_iteration_is_snip_and_later_iterations_resurrect():
    net = mlp()
    masks = Masks.for_model(net)
    ctx = ScoreContext(net, masks.weights, masks.keep, batches=[(X, Y)])
    k = keep_count(0.2, masks.total)
    by_force, by_snip = select_top_k(force(ctx), masks.keep, k), select_top_k(snip(ctx), masks.keep, k)
    assert all(torch.equal(by_force[n], by_snip[n]) for n in by_snip)
    from dataclasses import replace

    from drive.method import get_method

    seen = []

    def spy(c):
        seen.append({n: m.clone() for n, m in c.keep.items()})
        return force(c)

    prune_iteratively(replace(get_method("force"), name="force_spy", score=spy), masks, ctx, 0.05, 12)
    assert masks.kept == keep_count(0.05, masks.total)
    revived = sum(int((later[n] & ~earlier[n]).sum()) for earlier, later in zip(seen, seen[1:])
                  for n in earlier)
    assert revived > 0
    kept_values = torch.cat([w[masks.keep[n]] for n, w in masks.weights.items()])
    dense = torch.cat([w[masks.keep[n]] for n, w in ctx.dense.items()])
    assert torch.equal(kept_values, dense)  # revived weights come back with their initial values
    assert all((w[~masks.keep[n]] == 0).all() for n, w in masks.weights.items())


def unrolled_loss(w0: torch.Tensor, c: torch.Tensor, lr: float, batches) -> float:
    """Loss after one SGD step from w0*c of softmax regression z = W x, with the closed-form
    gradient (no autograd): the quantity whose derivative in c is ProsPr's score."""
    def grad(w, x, y):
        p = torch.softmax(x @ w.T, dim=1)
        return (p - torch.eye(3, dtype=w.dtype)[y]).T @ x / len(x)

    (x1, y1), (x2, y2) = batches
    w1 = w0 * c - lr * grad(w0 * c, x1, y1)
    return float(nn.functional.cross_entropy(x2 @ w1.T, y2))


def test_prospr_is_the_meta_gradient_of_the_loss_after_sgd_steps_wrt_the_mask():
    torch.manual_seed(0)
    net = nn.Linear(5, 3, bias=False).double()
    masks = Masks.for_model(net)
    batches = [(X[:12].double(), Y[:12]), (X[12:].double(), Y[12:])]
    got = prospr(ScoreContext(net, masks.weights, masks.keep, batches=batches, args=ProsprArgs(steps=1, lr=0.5)))[""]
    w0, eps = net.weight.detach().clone(), 1e-6
    fd = torch.zeros_like(w0)
    for i in range(w0.shape[0]):
        for j in range(w0.shape[1]):
            c_plus, c_minus = torch.ones_like(w0), torch.ones_like(w0)
            c_plus[i, j] += eps
            c_minus[i, j] -= eps
            fd[i, j] = (unrolled_loss(w0, c_plus, 0.5, batches) - unrolled_loss(w0, c_minus, 0.5, batches)) / (2 * eps)
    torch.testing.assert_close(got, fd.abs(), rtol=1e-5, atol=1e-9)
    assert torch.equal(net.weight, w0)  # the model itself is untouched


def test_prospr_leaves_the_random_stream_and_the_model_alone():
    """Its inner steps run in train mode (dropout draws random numbers): the caller's generator
    and the model's weights, BN buffers and mode are as before."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3))
    net.eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    masks = Masks.for_model(net)
    batches = [(X[:8], Y[:8]), (X[8:16], Y[8:16]), (X[16:], Y[16:])]
    rng = torch.get_rng_state()
    first = prospr(ScoreContext(net, masks.weights, masks.keep, batches=batches, args=ProsprArgs(steps=2)))
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert not net.training
    again = prospr(ScoreContext(net, masks.weights, masks.keep, batches=batches, args=ProsprArgs(steps=2)))
    assert all(torch.equal(first[n], again[n]) for n in first)  # same stream: same dropout


def test_prospr_leaves_bn_statistics_alone_and_runs_in_an_experiment():
    exp = Experiment(build_config({**FAST, "method": "prospr", "sparsity": 0.9, "model": "digits_cnn"}))
    assert len(exp.parts.score_batches(exp.cfg)) == 4  # steps + 1 batches
    before = {k: v.clone() for k, v in exp.model.state_dict().items() if "running" in k}
    exp._prune(exp.plan[0])
    after = {k: v for k, v in exp.model.state_dict().items() if "running" in k}
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert exp.masks.kept == keep_count(0.1, exp.masks.total)


def test_magnitude_after_training_prunes_the_trained_network_then_fine_tunes():
    cfg = build_config({**FAST, "method": "magnitude_after", "sparsity": 0.8, "train": {"epochs": 4},
                        "finetune": {"epochs": 2, "lr": 0.003}})
    exp = Experiment(cfg)
    trained = {}

    def spy(p):
        if p.metrics["phase"] == "pretrain" and p.boundary:
            trained.update({n: w.detach().clone() for n, w in exp.masks.weights.items()})

    m = exp.run(spy)
    phases = [h["phase"] for h in m["history"]]
    assert phases == ["pretrain"] * 4 + ["prune"] + ["train"] * 2
    assert [h["lr"] for h in m["history"] if h["phase"] == "train"] == [0.003, 0.003]
    want = select_top_k({n: w.abs() for n, w in trained.items()},
                        {n: torch.ones_like(w, dtype=torch.bool) for n, w in trained.items()},
                        keep_count(0.2, exp.masks.total))
    assert all(torch.equal(want[n], exp.masks.keep[n]) for n in want)
    assert m["prune_samples"] == 4 * exp.data.num_train  # the dense training is its pruning cost


def test_imp_learning_rate_rewinding_keeps_the_trained_weights():
    cfg = build_config({**FAST, "method": "imp", "sparsity": 0.2, "imp": {"rewind": "lr", "rewind_epoch": 1}})
    exp = Experiment(cfg)
    around = {}

    def spy(p):
        if p.metrics["phase"] in ("prune", "rewind"):
            around[p.metrics["phase"]] = {n: w.detach().clone() for n, w in exp.masks.weights.items()}

    m = exp.run(spy)
    assert all(torch.equal(around["prune"][n], around["rewind"][n]) for n in around["prune"])
    lrs = [h["lr"] for h in m["history"] if "lr" in h]
    assert lrs[2] == lrs[1]  # the branch restarts the schedule at epoch 1
    assert exp.imp.rewind_weights is None
    assert run(build_config({**FAST, "method": "imp", "sparsity": 0.2}))["test_acc"] is not None


def test_force_scores_fresh_batches_at_every_iteration():
    """As the reference implementation, each of FORCE's T iterations sees new training batches."""
    exp = Experiment(build_config({**FAST, "method": "force", "sparsity": 0.9, "prune_iterations": 4,
                                   "prune": {"score_batches": 2}}))
    batches = exp.parts.score_batches(exp.cfg)
    assert len(batches) == 8
    firsts = [b[1] for b in batches[::2]]
    assert all(not torch.equal(a, b) for i, a in enumerate(firsts) for b in firsts[i + 1:])
    m = exp.run()
    assert m["prune_samples"] == sum(len(y) for _, y in batches)


# ---- cross-checks against the reference implementations' loops, written independently

@pytest.mark.parametrize("method", ["force", "snip"])
def test_force_and_iter_snip_equal_naver_forces_loop(method, bn_resnet, image_batches):
    """naver/force's iterative_pruning: at each of T steps of the exponential schedule, a copy of
    the dense network with the current mask applied (weights zeroed), the gradient averaged over
    the step's batches, and the top d_t kept. FORCE (prune_method 3): saliency |w0 * g| over all
    weights, new batches at each step. Iter SNIP (prune_method 1): |w * g| of the pruned network,
    pruned weights never picked again; here on the same batches at every step (the reference
    draws new ones). Either way the network ends as w0 * mask. (BN in eval mode, as here.)"""
    steps, density, per_step = 4, 0.1, 2
    force_ = method == "force"
    batches = image_batches(steps * per_step if force_ else per_step, seed=3)
    net = bn_resnet(7)
    masks = Masks.for_model(net)
    prune_iteratively(method, masks, ScoreContext(net, masks.weights, masks.keep, batches=batches),
                      density, steps)
    dense = bn_resnet(7).eval()
    names = list(masks.weights)
    w0 = {n: dense.get_submodule(n).weight.detach().clone() for n in names}
    total, mask = sum(w.numel() for w in w0.values()), None
    for i in range(steps):
        d = math.exp(-(i + 1) * -math.log(density) / steps)
        ref = copy.deepcopy(dense)
        if mask is not None:
            with torch.no_grad():
                for n in names:
                    ref.get_submodule(n).weight.mul_(mask[n])
        grads = {n: 0 for n in names}
        for x, y in batches[i * per_step:(i + 1) * per_step] if force_ else batches:
            ref.zero_grad()
            nn.functional.cross_entropy(ref(x), y).backward()
            grads = {n: grads[n] + ref.get_submodule(n).weight.grad / per_step for n in names}
        scored = w0 if force_ else {n: ref.get_submodule(n).weight.detach() for n in names}
        saliency = {n: (scored[n] * grads[n]).abs() for n in names}
        if not force_ and mask is not None:  # Iter SNIP: a pruned weight is never picked again
            saliency = {n: torch.where(mask[n], saliency[n], -math.inf) for n in names}
        saliency = torch.cat([saliency[n].reshape(-1) for n in names])
        top = torch.zeros_like(saliency, dtype=torch.bool)
        top[torch.topk(saliency, keep_count(d, total)).indices] = True
        parts = top.split([w0[n].numel() for n in names])
        mask = {n: part.view_as(w0[n]) for n, part in zip(names, parts)}
    assert all(torch.equal(masks.keep[n], mask[n]) for n in names)
    assert all(torch.equal(masks.weights[n], w0[n] * mask[n]) for n in names)


def test_prospr_equals_mil_ads_masks_as_parameters_through_train_mode_steps(bn_resnet, image_batches):
    """mil-ad/prospr's prune (full meta-gradients, momentum 0, a new batch per inner step): fast
    weights w * c for the prunable layers, clones for the rest (BN affines train too), M SGD steps
    in train mode, the loss after them on the next batch, score |dL/dc|."""
    from torch.func import functional_call

    net, batches = bn_resnet(2), image_batches(4, seed=9)
    masks = Masks.for_model(net)
    got = prospr(ScoreContext(net, masks.weights, masks.keep, batches=batches, args=ProsprArgs(steps=3, lr=0.1)))
    ref = copy.deepcopy(net).train()
    c = {f"{n}.weight": torch.ones_like(w, requires_grad=True) for n, w in masks.weights.items()}
    fast = {k: p * c[k] if k in c else p.clone() for k, p in ref.named_parameters()}
    for x, y in batches[:3]:
        grads = torch.autograd.grad(nn.functional.cross_entropy(functional_call(ref, fast, (x,)), y),
                                    list(fast.values()), create_graph=True)
        fast = {k: v - 0.1 * g for (k, v), g in zip(fast.items(), grads)}
    x, y = batches[3]
    meta = torch.autograd.grad(nn.functional.cross_entropy(functional_call(ref, fast, (x,)), y),
                               list(c.values()))
    for n, m in zip(masks.weights, meta):
        torch.testing.assert_close(got[n], m.abs(), rtol=1e-9, atol=1e-15)
