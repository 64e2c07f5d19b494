"""Scores against values computed by hand (closed-form gradients, no autograd) on tiny networks."""

import pytest
import torch
from torch import nn

from drive.config import DriveConfig
from drive.masks import Masks
from drive.scores import ScoreContext, drive, grasp, magnitude, random, snip, synflow

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
def test_grasp_is_minus_w_times_hessian_gradient(temperature):
    ctx = context(linear_model(), grasp_temperature=temperature)
    g = ce_gradient(W, temperature)
    expected = -W * ce_hessian_vector(W, g, temperature)
    torch.testing.assert_close(grasp(ctx)[""], expected, rtol=1e-4, atol=1e-12)
    assert ctx.samples == 6


def test_drive_terms_normalised_by_mean_and_summed():
    ctx = context(linear_model())
    g = ce_gradient(W)
    terms = [W.abs(), (W * g).abs(), g.abs()]
    expected = sum(t / t.mean() for t in terms)
    torch.testing.assert_close(drive(ctx)[""], expected)


def test_drive_weights_product_and_no_normalisation():
    g = ce_gradient(W)
    l1, conn, conv = W.abs(), (W * g).abs(), g.abs()
    cfg = DriveConfig(weights=[2.0, 0.5, 1.0], normalize="none", combine="sum")
    torch.testing.assert_close(drive(context(linear_model(), drive=cfg))[""], 2 * l1 + 0.5 * conn + conv)
    cfg = DriveConfig(weights=[1.0, 1.0, 2.0], normalize="none", combine="product")
    torch.testing.assert_close(drive(context(linear_model(), drive=cfg))[""], l1 * conn * conv**2)
    cfg = DriveConfig(weights=[0.0, 0.0, 1.0])
    got = drive(context(linear_model(), drive=cfg))[""]
    torch.testing.assert_close(got, conv / conv.mean())


def test_drive_normalises_over_unpruned_weights_only():
    net = linear_model()
    masks = Masks.for_model(net)
    keep = torch.tensor([[True, True, False], [False, True, True]])
    masks.keep[""] = keep
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
    f64 = synflow(ScoreContext(net, masks.weights, masks.keep, input_shape=(2, 4, 4), synflow_float64=True))
    for n in a:
        torch.testing.assert_close(f64[n], a[n], rtol=1e-5, atol=1e-6)


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
