"""SynFlow's synaptic saliency (Tanaka et al. 2020), exact at any depth.

SynFlow scores a weight by ``|w * dR/dw|`` where ``R`` is the output sum of the network with every
parameter and buffer replaced by its absolute value, in eval mode, fed one all-ones sample. ``R``
grows exponentially with depth (ResNet-50 at 224 px: ~4e72, past float32's 3e38; a few hundred
layers pass float64's 1.8e308), so computed as written the scores overflow and the ranking breaks.

Why rescaling at cuts, not per-layer weight rescaling or log-space path sums: dividing one
layer's weights by a constant scales every score by the same constant only in a chain. In a
residual network it changes the weight of that branch against its skip path, and the ranking
changes. Log-space path sums are exact but need a log-domain version of every layer (a
logsumexp convolution per conv), far too slow and memory hungry for a ResNet-50. A *cut*, a
tensor that every path from the input to the output passes through (a block's output in a
ResNet, every layer's output in an MLP), has neither problem: a positively homogeneous network
(conv, linear, ReLU, pooling, BN in eval mode, residual sums) scales ``R`` and every score by
exactly ``1/s`` when the activation at a cut is divided by ``s``, provided the additive offsets
after it (biases, BN shifts and running means) are divided by ``s`` as well. So the activation at
every cut is divided by its own maximum, the offsets downstream follow, and all scores share one
common factor, which changes no ranking. Cuts are found on the ``torch.fx`` graph of the model:
a node is a cut when no edge of the graph jumps over it in topological order.

A model that ``torch.fx`` cannot trace, or that holds a module whose output is not homogeneous in
its input (Tanh, Sigmoid, GELU, ..., or BN without running statistics, which normalises by the
batch's even in eval mode), or that reads a parameter or buffer in its forward (an offset outside
any module's bias), is scored as written, without rescaling; a score that is then
not finite is reported as an error by the pruning loop (never ranked).
"""

from __future__ import annotations

import copy
import math
import operator
from collections.abc import Iterable

import torch
from torch import fx, nn

#: Modules between whose cuts the network stays positively homogeneous (with offsets rescaled).
HOMOGENEOUS = (nn.Linear, nn.modules.conv._ConvNd, nn.modules.batchnorm._BatchNorm, nn.ReLU,
               nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
               nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
               nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.Flatten, nn.Identity, nn.Dropout,
               nn.Dropout1d, nn.Dropout2d)
#: Functions and tensor methods that keep it homogeneous (reshaping, sums of paths, ReLU, pooling).
HOMOGENEOUS_FUNCTIONS = {operator.add, operator.iadd, operator.getitem, torch.add, torch.cat,
                         torch.flatten, torch.relu, torch.mean, torch.nn.functional.relu,
                         torch.nn.functional.adaptive_avg_pool1d,
                         torch.nn.functional.adaptive_avg_pool2d, torch.nn.functional.avg_pool1d,
                         torch.nn.functional.avg_pool2d, torch.nn.functional.max_pool1d,
                         torch.nn.functional.max_pool2d, getattr}
HOMOGENEOUS_METHODS = {"view", "reshape", "flatten", "size", "dim", "relu", "relu_", "mean", "add",
                       "add_", "permute", "transpose", "contiguous", "squeeze", "unsqueeze"}


class _Scale:
    """The running product of the divisors applied at the cuts passed so far, as a logarithm."""

    def __init__(self) -> None:
        self.log = 0.0

    def divide(self, x: torch.Tensor) -> torch.Tensor:
        if not (torch.is_tensor(x) and x.is_floating_point()):
            return x
        peak = float(x.detach().abs().amax()) if x.numel() else 0.0
        if not math.isfinite(peak) or peak <= 0:
            return x
        self.log += math.log(peak)
        return x / peak


def _cuts(graph: fx.Graph) -> list[fx.Node]:
    """Nodes every input-to-output path passes through, in topological order.

    Only nodes on some path from the input to the output count; a node is a cut when no edge
    between such nodes jumps over it (then every path must step on it).
    """
    nodes = list(graph.nodes)
    inputs = [n for n in nodes if n.op == "placeholder"]
    output = next(n for n in nodes if n.op == "output")
    forward = _reach(inputs, lambda n: n.users)
    backward = _reach([output], lambda n: n.all_input_nodes)
    live = [n for n in nodes if n in forward and n in backward]
    position = {n: i for i, n in enumerate(live)}
    jumped = [0] * (len(live) + 1)  # difference array of the positions jumped over
    for n in live:
        for user in n.users:
            if user in position and position[user] > position[n] + 1:
                jumped[position[n] + 1] += 1
                jumped[position[user]] -= 1
    cuts, depth = [], 0
    for i, n in enumerate(live):
        depth += jumped[i]
        if depth == 0 and n.op not in ("placeholder", "output"):
            cuts.append(n)
    return cuts


def _reach(start: Iterable[fx.Node], step) -> set[fx.Node]:
    seen, todo = set(), list(start)
    while todo:
        n = todo.pop()
        if n not in seen:
            seen.add(n)
            todo.extend(step(n))
    return seen


def _rescaled(model: nn.Module, scale: _Scale) -> nn.Module | None:
    """``model`` with every cut divided by its peak (offsets downstream follow), or None when
    that would not be exact: the model cannot be traced, or holds an operation that is not
    positively homogeneous."""
    if not all(_homogeneous_module(m) for m in model.modules() if not list(m.children())):
        return None
    try:
        traced = fx.symbolic_trace(model)
    except Exception:  # noqa: BLE001 - any tracing failure means: score as written
        return None
    if not all(_homogeneous_node(n) for n in traced.graph.nodes):
        return None
    for node in _cuts(traced.graph):
        with traced.graph.inserting_after(node):
            divided = traced.graph.call_function(scale.divide, (node,))
        node.replace_all_uses_with(divided, delete_user_cb=lambda user: user is not divided)
    traced.recompile()
    for module in traced.modules():
        if _offsets(module):
            module.register_forward_pre_hook(_follow_scale(module, scale))
    return traced


def _homogeneous_module(module: nn.Module) -> bool:
    """A module of :data:`HOMOGENEOUS`; a BN layer only with running statistics (without, it
    normalises by the batch's statistics even in eval mode: scale-invariant, not homogeneous)."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.running_mean is None:
        return False
    return isinstance(module, HOMOGENEOUS)


def _homogeneous_node(node: fx.Node) -> bool:
    if node.op == "call_function":
        return node.target in HOMOGENEOUS_FUNCTIONS
    if node.op == "call_method":
        return node.target in HOMOGENEOUS_METHODS
    # a parameter or buffer read in forward (``x + self.shift``) is an offset no hook rescales
    return node.op != "get_attr"  # placeholders, outputs and modules (checked by type)


def _offsets(module: nn.Module) -> list[str]:
    """The additive offsets of a module: a bias, and a BN layer's running mean."""
    names = [n for n in ("bias", "running_mean") if getattr(module, n, None) is not None]
    return names if isinstance(module, (nn.Linear, nn.modules.conv._ConvNd,
                                        nn.modules.batchnorm._BatchNorm)) else []


def _follow_scale(module: nn.Module, scale: _Scale):
    """A pre-hook dividing the module's offsets by the scale of the activations it receives."""
    originals = {n: getattr(module, n).detach().clone() for n in _offsets(module)}

    def hook(mod: nn.Module, _inputs) -> None:
        factor = math.exp(-scale.log)  # underflows to 0 when the offsets are negligible
        with torch.no_grad():
            for name, value in originals.items():
                getattr(mod, name).copy_(value * factor)

    return hook


def synflow_scores(model: nn.Module, layer_names: Iterable[str], input_shape: tuple[int, ...],
                   dtype: torch.dtype = torch.float32) -> tuple[dict[str, torch.Tensor], float]:
    """SynFlow scores ``{layer: |w * dR/dw|}`` of ``model``'s layers and ``log R``.

    The scores are the raw ones where ``dtype`` can represent them, and otherwise the raw ones
    times one common positive factor, so rankings are exact either way; ``model`` itself is left
    untouched (a copy is scored).
    """
    net = copy.deepcopy(model).to(dtype).eval()
    with torch.no_grad():
        for t in net.state_dict().values():
            if t.is_floating_point():
                t.abs_()
    modules = dict(net.named_modules())
    weights = [modules[n].weight for n in layer_names]
    scale = _Scale()
    scored = _rescaled(net, scale) or net
    device = weights[0].device
    r = scored(torch.ones((1, *input_shape), dtype=dtype, device=device)).sum()
    grads = torch.autograd.grad(r, weights)
    value = float(r.detach())
    log_r = math.log(value) + scale.log if value > 0 else -math.inf
    scores = {n: (w.detach() * g).abs() for n, w, g in zip(layer_names, weights, grads)}
    return _unscaled(scores, scale.log, dtype), log_r


def _unscaled(scores: dict[str, torch.Tensor], log_factor: float,
              dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The raw scores (the common factor multiplied back) where ``dtype`` can hold them, else
    the rescaled ones: either way the ranking is the same."""
    peak = max(float(s.max()) for s in scores.values())
    if peak <= 0 or not math.isfinite(peak):
        return scores
    if log_factor + math.log(peak) >= math.log(torch.finfo(dtype).max) - 1:
        return scores
    factor = math.exp(log_factor)
    return {n: s * factor for n, s in scores.items()}
