"""Scores against values computed by hand (closed-form gradients, no autograd) on tiny networks."""

import pytest
import torch
from torch import nn

from drive.masks import Masks, keep_count, select_top_k
from drive.methods.drive import DriveArgs
from drive.methods.drive import score as drive
from drive.methods.grasp import GraspArgs
from drive.methods.grasp import score as grasp
from drive.methods.magnitude import score as magnitude
from drive.methods.random import score as random
from drive.methods.snip import score as snip
from drive.methods.synflow import SynflowArgs
from drive.methods.synflow import score as synflow_score
from drive.scores import ScoreContext, loss_gradients

W = torch.tensor([[1.0, -2.0, 0.5], [0.0, 1.5, -1.0]])
X = torch.tensor([[1.0, 0.0, 2.0], [0.5, -1.0, 1.0], [-1.0, 2.0, 0.0]])
Y = torch.tensor([0, 1, 1])


def linear_model() -> nn.Module:
    net = nn.Linear(3, 2, bias=False)
    with torch.no_grad():
        net.weight.copy_(W)
    return net


def context(net: nn.Module, **kw) -> ScoreContext:
    masks = Masks.for_model(net)
    return ScoreContext(net, masks.weights, masks.keep, batches=[(X, Y)], input_shape=(3,), **kw)


def synflow(ctx: ScoreContext):
    """SynFlow's score, in float32 unless ``ctx.args`` says otherwise (as these tests were
    written: the context's default then)."""
    if ctx.args is None:
        ctx.args = SynflowArgs(float64=False)
    return synflow_score(ctx)


def ce_gradient(w: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """dL/dW of the mean cross-entropy of z = W x / T: mean_i (p_i - y_i) x_i^T / T."""
    p = torch.softmax(X @ w.T / temperature, dim=1)
    onehot = torch.eye(2)[Y]
    return (p - onehot).T @ X / len(X) / temperature


def ce_hessian_vector(w: torch.Tensor, v: torch.Tensor, temperature: float) -> torch.Tensor:
    """H v = mean_i (diag(p_i) - p_i p_i^T) (V x_i) x_i^T / T^2 for the same loss."""
    out = torch.zeros_like(w)
    for x in X:
        p = torch.softmax(w @ x / temperature, dim=0)
        jac = torch.diag(p) - torch.outer(p, p)
        out += torch.outer(jac @ (v @ x), x)
    return out / len(X) / temperature**2


def test_magnitude_is_abs_weight():
    assert torch.equal(magnitude(context(linear_model()))[""], W.abs())


def test_random_is_seeded_and_depends_on_iteration():
    net = linear_model()
    a = random(context(net, seed=3))[""]
    assert torch.equal(a, random(context(net, seed=3))[""])
    assert not torch.equal(a, random(context(net, seed=4))[""])
    assert not torch.equal(a, random(context(net, seed=3, iteration=2))[""])


def test_snip_is_abs_w_times_gradient():
    ctx = context(linear_model())
    expected = (W * ce_gradient(W)).abs()
    torch.testing.assert_close(snip(ctx)[""], expected)
    assert ctx.samples == 3


def test_snip_averages_gradients_over_batches():
    net = linear_model()
    masks = Masks.for_model(net)
    half = ScoreContext(net, masks.weights, masks.keep, batches=[(X[:1], Y[:1]), (X[1:], Y[1:])])
    p = torch.softmax(X @ W.T, dim=1) - torch.eye(2)[Y]
    g = 0.5 * (torch.outer(p[0], X[0]) + (p[1:].T @ X[1:]) / 2)
    torch.testing.assert_close(snip(half)[""], (W * g).abs())


@pytest.mark.parametrize("temperature", [1.0, 200.0])
def test_grasp_keeps_the_highest_w_times_hessian_gradient(temperature):
    """Wang et al. remove the top of S(-w) = -w*Hg, i.e. keep the highest w*Hg."""
    ctx = context(linear_model(), args=GraspArgs(temperature=temperature))
    g = ce_gradient(W, temperature)
    expected = W * ce_hessian_vector(W, g, temperature)
    torch.testing.assert_close(grasp(ctx)[""], expected, rtol=1e-4, atol=1e-12)
    assert ctx.samples == 6


def test_grasp_masks_the_gradient_of_pruned_weights():
    """At T > 1 the score is that of the masked network: Hg = H_kk g_k over the kept weights."""
    net = linear_model()
    masks = Masks.for_model(net)
    keep = torch.tensor([[True, False, True], [True, True, False]])
    masks.keep = {"": keep}
    masks.apply()
    w = net.weight.detach().clone()
    ctx = ScoreContext(net, masks.weights, masks.keep, batches=[(X, Y)], args=GraspArgs(temperature=1.0))
    g = ce_gradient(w) * keep
    expected = w * ce_hessian_vector(w, g, 1.0) * keep
    torch.testing.assert_close(grasp(ctx)[""], expected, rtol=1e-4, atol=1e-12)
    unmasked = w * ce_hessian_vector(w, ce_gradient(w), 1.0)
    assert not torch.allclose(expected[keep], unmasked[keep], rtol=1e-3)  # the mask matters here


def test_gradient_scores_use_the_training_loss_with_label_smoothing():
    ctx = context(linear_model(), label_smoothing=0.2)
    p = torch.softmax(X @ W.T, dim=1)
    target = torch.eye(2)[Y] * 0.8 + 0.1
    g = (p - target).T @ X / len(X)
    torch.testing.assert_close(snip(ctx)[""], (W * g).abs())


def test_drive_terms_normalised_by_mean_and_summed():
    ctx = context(linear_model())
    g = ce_gradient(W)
    terms = [W.abs(), (W * g).abs(), g.abs()]
    expected = sum(t / t.mean() for t in terms)
    torch.testing.assert_close(drive(ctx)[""], expected)


def test_drive_weights_product_and_no_normalisation():
    g = ce_gradient(W)
    l1, conn, conv = W.abs(), (W * g).abs(), g.abs()
    cfg = DriveArgs(weights=[2.0, 0.5, 1.0], normalize="none", combine="sum")
    torch.testing.assert_close(drive(context(linear_model(), args=cfg))[""], 2 * l1 + 0.5 * conn + conv)
    cfg = DriveArgs(weights=[1.0, 1.0, 2.0], normalize="none", combine="product")
    torch.testing.assert_close(drive(context(linear_model(), args=cfg))[""], l1 * conn * conv**2)
    cfg = DriveArgs(weights=[0.0, 0.0, 1.0])
    got = drive(context(linear_model(), args=cfg))[""]
    torch.testing.assert_close(got, conv / conv.mean())


def test_drive_normalises_over_unpruned_weights_only():
    net = linear_model()
    masks = Masks.for_model(net)
    keep = torch.tensor([[True, True, False], [False, True, True]])
    masks.keep = {"": keep}
    with torch.no_grad():
        net.weight.mul_(keep)
    w = net.weight.detach().clone()
    ctx = ScoreContext(net, masks.weights, masks.keep, batches=[(X, Y)])
    g = ce_gradient(w)
    terms = [w.abs(), (w * g).abs(), g.abs()]
    expected = sum(t / t[keep].mean() for t in terms)
    torch.testing.assert_close(drive(ctx)[""], expected)


def two_layer(w1: torch.Tensor, w2: torch.Tensor) -> nn.Module:
    net = nn.Sequential(nn.Linear(3, 2, bias=False), nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(w1)
        net[1].weight.copy_(w2)
    return net


W1 = torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]])
W2 = torch.tensor([[-1.0, 2.0], [0.5, -0.25]])


def test_synflow_scores_by_hand():
    """R = 1^T |W2| |W1| 1, so dR/dW1[j,k] = colsum|W2|[j] and dR/dW2[o,j] = rowsum|W1|[j]."""
    ctx = context(two_layer(W1, W2))
    got = synflow(ctx)
    torch.testing.assert_close(got["0"], W1.abs() * W2.abs().sum(0)[:, None])
    torch.testing.assert_close(got["1"], W2.abs() * W1.abs().sum(1)[None, :])
    assert ctx.samples == 1


def test_synflow_is_data_free_and_leaves_signs_untouched():
    net = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(12, 2))
    net.train()
    with torch.no_grad():
        net[1].running_mean.uniform_(-1, 1)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    masks = Masks.for_model(net)
    xa, xb = torch.randn(4, 2, 4, 4), torch.randn(4, 2, 4, 4) * 10
    a = synflow(ScoreContext(net, masks.weights, masks.keep, batches=[(xa, torch.zeros(4).long())],
                             input_shape=(2, 4, 4)))
    b = synflow(ScoreContext(net, masks.weights, masks.keep, batches=[(xb, torch.ones(4).long())],
                             input_shape=(2, 4, 4)))
    for n in a:
        assert torch.equal(a[n], b[n])
        assert (a[n] >= 0).all()
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert net.training  # the mode is untouched too
    f64 = synflow(ScoreContext(net, masks.weights, masks.keep, input_shape=(2, 4, 4), args=SynflowArgs(float64=True)))
    for n in a:
        assert f64[n].dtype == torch.float64  # ranked at that precision, never rounded to float32
        torch.testing.assert_close(f64[n].float(), a[n], rtol=1e-5, atol=1e-6)


def test_gradient_scores_leave_no_grad_and_keep_mode():
    net = two_layer(W1, W2)
    net.train()
    ctx = context(net)
    snip(ctx)
    drive(ctx)
    grasp(ctx)
    assert all(p.grad is None for p in net.parameters())
    assert net.training


def test_gradient_scores_need_batches():
    net = linear_model()
    masks = Masks.for_model(net)
    with pytest.raises(ValueError, match="score_batches"):
        snip(ScoreContext(net, masks.weights, masks.keep))


# ---- first principles: what each score claims to measure, checked by brute force ---------------

def tanh_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 4))


XS, YS = torch.randn(32, 6, generator=torch.Generator().manual_seed(1)), torch.arange(32) % 4


def each_weight_zeroed(masks: Masks, measure):
    """``measure()`` with each prunable weight zeroed in turn, flattened in ranking order."""
    out = []
    for w in masks.weights.values():
        flat = w.data.view(-1)
        for i in range(flat.numel()):
            old = flat[i].item()
            flat[i] = 0.0
            out.append(measure())
            flat[i] = old
    return torch.tensor(out)


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    ranks = torch.stack([a.argsort().argsort(), b.argsort().argsort()]).double()
    return float(torch.corrcoef(ranks)[0, 1])


def flat(tensors: dict) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors.values()])


def gradient_norm(net: nn.Module, masks: Masks, temperature: float = 1.0) -> float:
    loss = nn.functional.cross_entropy(net(XS) / temperature, YS)
    return float(sum((g ** 2).sum() for g in torch.autograd.grad(loss, list(masks.weights.values()))))


def test_grasp_prunes_the_weights_whose_removal_preserves_gradient_flow():
    """GraSP keeps the weights whose removal would shrink ||g||^2 most: removing its pruned set
    leaves a larger gradient norm than removing its kept set, recomputed after zeroing."""
    net = tanh_net()
    masks = Masks.for_model(net)
    scores = grasp(ScoreContext(net, masks.weights, masks.keep, batches=[(XS, YS)], args=GraspArgs(temperature=1.0)))
    base = gradient_norm(net, masks)
    change = each_weight_zeroed(masks, lambda: gradient_norm(net, masks) - base)
    # first order: zeroing w changes ||g||^2 by -2 w (Hg)
    assert spearman(change, -2 * flat(scores)) > 0.85
    kept = flat(select_top_k(scores, masks.keep, keep_count(0.5, masks.total)))
    assert change[~kept].mean() > change[kept].mean()
    norms = {}
    for name, removed in (("pruned", ~kept), ("kept", kept)):
        trial = tanh_net()
        trial_masks = Masks.for_model(trial)
        with torch.no_grad():
            for w, r in zip(trial_masks.weights.values(), removed.split([w.numel() for w in trial_masks.weights.values()])):
                w.view(-1)[r] = 0.0
        norms[name] = gradient_norm(trial, trial_masks)
    assert norms["pruned"] > base > norms["kept"]


def test_snip_ranks_weights_as_the_loss_change_of_zeroing_each():
    """|w g| is the first-order |L(w without w_q) - L(w)|: it matches the loss change of moving
    each weight a small step towards zero (finite differences, float64), and ranks weights like
    the loss change of actually zeroing them."""
    net = tanh_net().double()
    masks = Masks.for_model(net)
    x = XS.double()
    scores = snip(ScoreContext(net, masks.weights, masks.keep, batches=[(x, YS)]))
    def loss() -> float:
        with torch.no_grad():
            return float(nn.functional.cross_entropy(net(x), YS))

    base, eps = loss(), 1e-6
    with torch.no_grad():
        zeroed = each_weight_zeroed(masks, lambda: abs(loss() - base))
        shrunk = []  # each weight moved towards zero by eps * w: dL = -eps * w * g
        for w in masks.weights.values():
            flat_w = w.view(-1)
            for i in range(flat_w.numel()):
                old = flat_w[i].item()
                flat_w[i] = old * (1 - eps)
                shrunk.append(abs(loss() - base) / eps)
                flat_w[i] = old
    torch.testing.assert_close(torch.tensor(shrunk, dtype=torch.float64), flat(scores), rtol=1e-3, atol=1e-8)
    assert spearman(zeroed, flat(scores)) > 0.8
    k = keep_count(0.25, masks.total)
    overlap = set(zeroed.topk(k).indices.tolist()) & set(flat(scores).topk(k).indices.tolist())
    assert len(overlap) >= 0.75 * k


@pytest.mark.parametrize("combine", ["sum", "product"])
def test_drive_terms_are_what_they_claim(combine):
    """weights [1,0,0] keep the magnitude set, [0,1,0] the SNIP set, [0,0,1] the |g| set."""
    net = tanh_net()
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    for _ in range(5):  # a short warm-up, so that the weights are not at init
        opt.zero_grad()
        nn.functional.cross_entropy(net(XS), YS).backward()
        opt.step()
    masks = Masks.for_model(net)
    k = keep_count(0.3, masks.total)

    def kept(fn, **kw):
        ctx = ScoreContext(net, masks.weights, masks.keep, batches=[(XS, YS)], **kw)
        return flat(select_top_k(fn(ctx), masks.keep, k))

    g = flat(loss_gradients(ScoreContext(net, masks.weights, masks.keep, batches=[(XS, YS)])))
    grad_set = flat(select_top_k({"all": g.abs()}, {"all": torch.ones_like(g, dtype=torch.bool)}, k))
    for weights, want in (([1, 0, 0], kept(magnitude)), ([0, 1, 0], kept(snip)), ([0, 0, 1], grad_set)):
        cfg = DriveArgs(weights=weights, combine=combine)
        assert torch.equal(kept(drive, args=cfg), want), weights


# ---- cross-checks against the reference implementations' formulations, written independently,
# on a CIFAR ResNet with non-trivial BN statistics (fixtures in conftest.py)
