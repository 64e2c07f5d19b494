"""Scores on a BN ResNet against the reference implementations' formulations (Synaptic-Flow's
SNIP, alecwangcq/GraSP's removal rule, DRIVE's definition over T iterations), written
independently, in both BN modes of ``prune.bn``; and scoring leaves the network as it was."""

import copy
import math

import pytest
import torch
from torch import nn

from drive.masks import Masks, keep_count
from drive.methods.drive import DriveArgs
from drive.methods.drive import score as drive
from drive.methods.force import score as force
from drive.methods.grasp import score as grasp
from drive.methods.magnitude import score as magnitude
from drive.methods.random import score as random
from drive.methods.snip import score as snip
from drive.methods.synflow import SynflowArgs
from drive.methods.synflow import score as synflow_score
from drive.scores import ScoreContext


def synflow(ctx: ScoreContext):
    """SynFlow's score, in float32 unless ``ctx.args`` says otherwise (as these tests were
    written: the context's default then)."""
    if ctx.args is None:
        ctx.args = SynflowArgs(float64=False)
    return synflow_score(ctx)


@pytest.mark.parametrize("bn", ["eval", "train"])
def test_snip_is_the_gradient_with_respect_to_a_mask_of_ones(bn, bn_resnet, image_batches):
    """Lee et al. (and Synaptic-Flow's SNIP): |dL/dc| at c = 1, the forward using w * c, BN in
    the mode of ``prune.bn``; the loss summed over batches there, averaged here (one common
    factor)."""
    from torch.func import functional_call

    net, batches = bn_resnet(), image_batches(2)
    masks = Masks.for_model(net)
    got = snip(ScoreContext(net, masks.weights, masks.keep, batches=batches, bn=bn))
    ref = copy.deepcopy(net).train(bn == "train")
    params = dict(ref.named_parameters())
    c = {n: torch.ones_like(w, requires_grad=True) for n, w in masks.weights.items()}
    total = sum(nn.functional.cross_entropy(functional_call(
        ref, {**params, **{f"{n}.weight": params[f"{n}.weight"].detach() * c[n] for n in c}}, (x,)), y)
        for x, y in batches)
    want = dict(zip(c, torch.autograd.grad(total, list(c.values()))))
    for n in c:
        torch.testing.assert_close(got[n] * len(batches), want[n].abs(), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("density,bn", [(0.5, "eval"), (0.1, "eval"), (0.1, "train")])
def test_grasp_keeps_what_the_reference_removal_rule_keeps(density, bn, bn_resnet, image_batches):
    """alecwangcq/GraSP's rule on the same network: grad_w summed over the batches, Hg from
    z = sum(grad_w * grad_f) by backward into weight.grad, and the top (1 - d) of -w * Hg removed;
    BN in eval mode, or in train mode as the reference code runs it (``prune.bn: train``)."""
    net, batches = bn_resnet(1), image_batches(2, seed=2)
    masks = Masks.for_model(net)
    got = grasp(ScoreContext(net, masks.weights, masks.keep, batches=batches, bn=bn))
    ref = copy.deepcopy(net).train(bn == "train")
    modules = dict(ref.named_modules())
    weights = [modules[n].weight for n in masks.weights]
    grad_w = [torch.zeros_like(w) for w in weights]
    for x, y in batches:
        for acc, g in zip(grad_w, torch.autograd.grad(nn.functional.cross_entropy(ref(x) / 200, y), weights)):
            acc += g
    for x, y in batches:
        grad_f = torch.autograd.grad(nn.functional.cross_entropy(ref(x) / 200, y), weights, create_graph=True)
        sum((a * f).sum() for a, f in zip(grad_w, grad_f)).backward()
    removal = torch.cat([(-w.detach() * w.grad).reshape(-1) for w in weights])
    n_remove = removal.numel() - keep_count(density, removal.numel())
    threshold = torch.topk(removal, n_remove).values[-1]
    masks.prune_to(got, density)
    kept = torch.cat([masks.keep[n].reshape(-1) for n in masks.keep])
    assert kept[removal < threshold].all() and not kept[removal > threshold].any()
    assert int(kept.sum()) == keep_count(density, removal.numel())  # exact, ties by position


@pytest.mark.parametrize("bn,training", [("eval", True), ("train", True), ("train", False)])
def test_scores_leave_weights_bn_statistics_random_stream_and_mode_alone(bn, training, bn_resnet,
                                                                         image_batches):

    net = bn_resnet()
    net.train(training)
    masks = Masks.for_model(net)
    masks.prune_to(magnitude(ScoreContext(net, masks.weights, masks.keep)), 0.5)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    rng = torch.get_rng_state()
    for score in (snip, grasp, drive, synflow, force, random):
        score(ScoreContext(net, masks.weights, masks.keep, batches=image_batches(1), input_shape=(3, 8, 8),
                           bn=bn))
        assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items()), score.__name__
        assert torch.equal(torch.get_rng_state(), rng) and net.training == training, score.__name__
        assert all(p.grad is None for p in net.parameters()), score.__name__


@pytest.mark.parametrize("combine", ["sum", "product"])
def test_iterative_drive_equals_its_definition_recomputed_by_hand(combine, bn_resnet, image_batches):
    """DRIVE over T = 3 exponential iterations on the masked network (DESIGN.md): g the gradient of
    the mean training loss over the scoring batches (BN in eval mode), terms |w|, |w g|, |g| each
    divided by its mean over the unpruned weights, combined with weights [a, b, c]."""
    from drive.prune import prune_iteratively

    weights, steps, density = [1.0, 0.5, 2.0], 3, 0.1
    batches = image_batches(2, seed=5)
    net = bn_resnet(3)
    masks = Masks.for_model(net)
    prune_iteratively("drive", masks, ScoreContext(
        net, masks.weights, masks.keep, batches=batches,
        args=DriveArgs(weights=weights, combine=combine)), density, steps)
    ref = bn_resnet(3).eval()
    names = list(masks.weights)
    layers = [ref.get_submodule(n).weight for n in names]
    keep = torch.ones(sum(w.numel() for w in layers), dtype=torch.bool)
    for t in range(1, steps + 1):
        with torch.no_grad():
            for w, k in zip(layers, keep.split([w.numel() for w in layers])):
                w.mul_(k.view_as(w))
        loss = sum(nn.functional.cross_entropy(ref(x), y) for x, y in batches) / len(batches)
        g = torch.cat([gi.reshape(-1) for gi in torch.autograd.grad(loss, layers)])
        w = torch.cat([wi.detach().reshape(-1) for wi in layers])
        terms = [w.abs(), (w * g).abs(), g.abs()]
        terms = [term / term[keep].mean() for term in terms]
        if combine == "sum":
            score = sum(a * term for a, term in zip(weights, terms))
        else:
            score = terms[0] ** weights[0] * terms[1] ** weights[1] * terms[2] ** weights[2]
        score[~keep] = -math.inf
        order = torch.sort(score, descending=True, stable=True).indices
        keep = torch.zeros_like(keep)
        keep[order[:keep_count(density ** (t / steps), keep.numel())]] = True
    got = torch.cat([masks.keep[n].reshape(-1) for n in names])
    assert torch.equal(got, keep)
