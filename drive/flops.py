"""What sparsity buys in theory: the FLOPs and the parameter bytes of a (masked) network.

:func:`count_costs` runs one forward pass of a single sample under
:class:`torch.utils.flop_counter.FlopCounterMode` (which counts the matrix products and
convolutions by their shapes) and scales each masked conv or linear layer by the share of its
weights that is kept. That is exact for unstructured weight sparsity: every weight of a
convolution takes part in the same number of multiply-accumulates per sample (one per output
position; with groups, dilation and strides alike) and every weight of a linear layer in one per
input row (times any leading dimensions), so a layer keeping k of its n weights does k/n of its
dense work. Biases, normalisation, activations and pooling are not multiply-accumulates of a
weight and are not counted (FlopCounterMode's convention); layers without a mask (an excluded
stem or classifier) count dense.

Units. ``flops`` counts a multiply-accumulate as two floating-point operations, a multiply and
an add, as ``torch.utils.flop_counter`` does. Many pruning papers' "FLOPs" are multiply-
accumulates; those are given as ``macs`` (= ``flops / 2``). Both are per sample (batch 1).

Bytes. ``bytes_dense`` is the storage of all parameters at their dtypes (buffers such as batch
norm statistics are not parameters and are not counted). ``bytes_csr`` and ``bytes_bitmap``
store each masked weight sparsely and every other parameter densely:

- CSR over the weight viewed as a matrix (output channels, -1): the kept values, an int32
  column index per kept value and ``rows + 1`` int32 row pointers;
- bitmap: the kept values and one bit per weight, rounded up to whole bytes per layer.

"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from drive.masks import PRUNABLE_TYPES

#: Index type of the CSR layout counted by :func:`csr_bytes` (int32, 4 bytes).
INDEX_BYTES = 4

#: Name of the row for multiply-accumulates outside every conv and linear module (attention,
#: functional matmuls), counted dense.
OTHER = "(other)"


class _Flops:
    """FLOPs of something that counts ``macs_dense`` and ``macs`` (2 per multiply-accumulate)."""

    macs_dense: int
    macs: int

    @property
    def flops_dense(self) -> int:
        """FLOPs without the masks."""
        return 2 * self.macs_dense

    @property
    def flops(self) -> int:
        """FLOPs that remain under the masks."""
        return 2 * self.macs


@dataclass(frozen=True)
class LayerCost(_Flops):
    """One conv or linear layer's share of a forward pass and of the weight storage.

    ``macs_dense``/``macs`` cover every call of the layer in one forward pass of one sample;
    ``share`` is ``macs_dense`` over the whole model's dense MACs. The byte counts are those of
    the layer's weight (its bias is counted with the other parameters).
    """

    name: str
    kind: str
    masked: bool
    calls: int
    weights: int
    kept: int
    macs_dense: int
    macs: int
    share: float
    bytes_dense: int
    bytes_csr: int
    bytes_bitmap: int

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "masked": self.masked, "calls": self.calls,
                "weights": self.weights, "kept": self.kept, "macs_dense": self.macs_dense,
                "macs": self.macs, "flops_dense": self.flops_dense, "flops": self.flops,
                "share": self.share, "bytes_dense": self.bytes_dense, "bytes_csr": self.bytes_csr,
                "bytes_bitmap": self.bytes_bitmap}


@dataclass(frozen=True)
class Costs(_Flops):
    """Theoretical cost of one forward pass of one sample and the model's parameter storage.

    ``macs``/``macs_dense``: multiply-accumulates with and without the masks (``flops`` and
    ``flops_dense`` are twice these; see the module's docstring). ``macs_other``: the part of
    both outside every conv and linear module (counted dense). ``layers``: every conv and linear
    layer in ``named_modules()`` order, then an ``(other)`` row where ``macs_other`` > 0.
    """

    sample_shape: tuple[int, ...]
    macs_dense: int
    macs: int
    macs_other: int
    bytes_dense: int
    bytes_csr: int
    bytes_bitmap: int
    layers: list[LayerCost] = field(default_factory=list)

    @property
    def flops_fraction(self) -> float:
        """Remaining / dense FLOPs (the same for MACs); 1.0 for a model without any."""
        return self.macs / self.macs_dense if self.macs_dense else 1.0

    @property
    def layer_flops(self) -> dict[str, int]:
        """``{layer: remaining FLOPs}`` of the conv and linear layers."""
        return {r.name: r.flops for r in self.layers if r.name != OTHER}

    @property
    def layer_flops_dense(self) -> dict[str, int]:
        """``{layer: dense FLOPs}`` of the conv and linear layers."""
        return {r.name: r.flops_dense for r in self.layers if r.name != OTHER}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready totals and per-layer FLOPs, for a result record (see :meth:`rows` for the
        full per-layer table)."""
        return {"sample_shape": list(self.sample_shape),
                "flops_dense": self.flops_dense, "flops": self.flops,
                "flops_fraction": self.flops_fraction,
                "macs_dense": self.macs_dense, "macs": self.macs,
                "flops_other": 2 * self.macs_other,
                "bytes_dense": self.bytes_dense, "bytes_csr": self.bytes_csr,
                "bytes_bitmap": self.bytes_bitmap,
                "layer_flops": self.layer_flops, "layer_flops_dense": self.layer_flops_dense}

    def rows(self) -> list[dict[str, Any]]:
        """One JSON-ready dict per layer (see :class:`LayerCost`)."""
        return [r.to_dict() for r in self.layers]


def csr_bytes(keep: torch.Tensor, element_size: int) -> int:
    """Bytes of a weight with keep-mask ``keep`` in CSR over ``(keep.shape[0], -1)``: the kept
    values, an int32 column index each and ``rows + 1`` int32 row pointers."""
    rows = keep.shape[0] if keep.dim() else 1
    nnz = int(keep.sum())
    return nnz * (element_size + INDEX_BYTES) + (rows + 1) * INDEX_BYTES


def bitmap_bytes(keep: torch.Tensor, element_size: int) -> int:
    """Bytes of a weight with keep-mask ``keep`` as its kept values plus one bit per weight."""
    return int(keep.sum()) * element_size + -(-keep.numel() // 8)


def count_costs(model: nn.Module, sample_shape: Sequence[int],
                keep: Mapping[str, torch.Tensor] | None = None) -> Costs:
    """FLOPs (per sample) and parameter bytes of ``model`` under the keep-masks ``keep``.

    Args:
        model: any module; it is run once, in eval mode and under ``torch.no_grad``, on an
            all-ones batch of one sample on the device and in the dtype of its parameters
            (its training flags are restored afterwards; nothing else changes).
        sample_shape: the shape of one input sample without the batch dimension, ``(C, H, W)``
            images or ``(C, L)`` signals.
        keep: ``{layer name: bool tensor shaped like the layer's weight}`` (True = kept), e.g.
            :attr:`drive.masks.Masks.keep`; names are those of ``model.named_modules()``. Layers
            not in it count dense; ``None`` counts the whole model dense.

    Every call of a layer counts (a layer used twice in the forward pass costs twice). A layer
    is attributed the work done while its own ``forward`` runs; a weight used outside its
    module's forward (e.g. ``F.conv2d(x, self.conv.weight)``) counts dense, as ``(other)``.

    Raises:
        ValueError: a ``keep`` name that is not a conv or linear layer of the model, or a mask
            whose shape differs from its weight's.
    """
    shape = tuple(sample_shape)
    if not shape or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
        raise ValueError(f"sample_shape: must be positive integers, got {sample_shape!r}")
    layers = {name: m for name, m in model.named_modules()
              if isinstance(m, PRUNABLE_TYPES) and m.weight is not None}
    keep = dict(keep or {})
    for name, mask in keep.items():
        if name not in layers:
            raise ValueError(f"keep: {name!r} is not a conv or linear layer of the model")
        if tuple(mask.shape) != tuple(layers[name].weight.shape):
            raise ValueError(f"keep: the mask of {name!r} has shape {tuple(mask.shape)}, "
                             f"its weight {tuple(layers[name].weight.shape)}")
    total, per_layer, calls = _count_dense(model, shape, layers)
    macs_dense = total // 2
    rows: list[LayerCost] = []
    for name, module in layers.items():
        weight = module.weight
        n, size = weight.numel(), weight.element_size()
        dense_macs = per_layer[name] // 2
        if name in keep:
            mask = keep[name].detach().bool()
            kept = int(mask.sum())
            macs = _scaled(dense_macs, kept, n)
            stored = (n * size, csr_bytes(mask, size), bitmap_bytes(mask, size))
        else:
            kept, macs, stored = n, dense_macs, (n * size,) * 3
        rows.append(LayerCost(name, type(module).__name__, name in keep, calls[name], n, kept,
                              dense_macs, macs, dense_macs / macs_dense if macs_dense else 0.0,
                              *stored))
    macs_other = macs_dense - sum(r.macs_dense for r in rows)
    if macs_other:
        rows.append(LayerCost(OTHER, "other", False, 0, 0, 0, macs_other, macs_other,
                              macs_other / macs_dense, 0, 0, 0))
    weight_ids = {id(layers[n].weight) for n in keep}
    other_bytes = sum(p.numel() * p.element_size() for p in model.parameters()
                      if id(p) not in weight_ids)
    masked_rows = [r for r in rows if r.masked]
    return Costs(sample_shape=shape, macs_dense=macs_dense, macs=sum(r.macs for r in rows),
                 macs_other=macs_other,
                 bytes_dense=other_bytes + sum(r.bytes_dense for r in masked_rows),
                 bytes_csr=other_bytes + sum(r.bytes_csr for r in masked_rows),
                 bytes_bitmap=other_bytes + sum(r.bytes_bitmap for r in masked_rows),
                 layers=rows)


def _scaled(dense_macs: int, kept: int, weights: int) -> int:
    """``dense_macs * kept / weights``: an integer, as every weight does the same work."""
    macs, rest = divmod(dense_macs * kept, weights)
    return macs if rest == 0 else round(dense_macs * kept / weights)


def _count_dense(model: nn.Module, shape: tuple[int, ...],
                 layers: dict[str, nn.Module]) -> tuple[int, dict[str, int], dict[str, int]]:
    """Dense FLOPs of one forward pass of one sample: the total, and per conv/linear layer
    with the number of its calls.

    The per-layer figures are the growth of FlopCounterMode's total while each layer's forward
    runs (forward hooks on the layer objects), which counts every call and does not depend on
    the names FlopCounterMode's module tracker gives (class-name prefixed, one per object). A
    weight layer nested inside another is subtracted from the outer one.
    """
    per_layer = dict.fromkeys(layers, 0)
    calls = dict.fromkeys(layers, 0)
    counter = FlopCounterMode(display=False)
    stack: list[list[int]] = []  # [total at entry, FLOPs of nested weight layers]

    def enter(module: nn.Module, args: Any) -> None:
        stack.append([counter.get_total_flops(), 0])

    def leave(name: str) -> Any:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            start, nested = stack.pop()
            inside = counter.get_total_flops() - start
            per_layer[name] += inside - nested
            calls[name] += 1
            if stack:
                stack[-1][1] += inside
        return hook

    handles = []
    for name, module in layers.items():
        handles.append(module.register_forward_pre_hook(enter))
        handles.append(module.register_forward_hook(leave(name)))
    modes = {m: m.training for m in model.modules()}
    param = next((p for p in model.parameters() if p.is_floating_point()), None)
    x = torch.ones((1, *shape), dtype=param.dtype if param is not None else torch.float32,
                   device=param.device if param is not None else None)
    try:
        model.eval()
        with torch.no_grad(), counter:
            model(x)
    finally:
        for h in handles:
            h.remove()
        for m, training in modes.items():
            m.training = training
    return counter.get_total_flops(), per_layer, calls
