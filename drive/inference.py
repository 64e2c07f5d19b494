"""What sparsity buys in practice: a masked network run with sparse kernels, and its timing.

A pruned network normally runs as the dense model with zeros in its weights ("dense-masked"):
every zero is still multiplied. :func:`sparse_execution` builds a copy that skips them:

- ``nn.Linear`` -> :class:`SparseLinear`: the kept weights as a torch sparse CSR matrix,
  ``y = b + W_csr @ x^T`` (``torch.addmm``: MKL on the CPU, cuSPARSE on CUDA);
- convolutions (1-, 2- and 3-D, any stride, padding, dilation, groups) -> :class:`SparseConv`:
  im2col restricted to the (channel, kernel position) columns that still hold a weight,
  gathered into one reused buffer, then the same CSR product. The gather writes one value per
  kept column and output position, memory traffic that at moderate sparsity far exceeds the
  dense convolution's (which oneDNN runs compute-bound); whether it ever beats the dense
  kernel is what ``benchmarks/bench_inference.py`` measures;
- on CUDA with compute capability >= 8.0, a linear layer whose mask is 2:4 (at most 2 of every 4
  consecutive input weights kept), whose dtype and shape the semi-structured kernels take (fp16
  or bf16 with cuSPARSELt), runs as :class:`SemiStructuredLinear`
  (``torch.sparse.to_sparse_semi_structured``). Other layers fall back to CSR.

The copy is for inference only (eval mode, no gradients). :func:`time_inference` times the
dense-masked and the sparse model side by side, in alternating rounds.
"""

from __future__ import annotations

import copy
import math
import statistics
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

#: ``timer(cases, repeat, device) -> {case: [seconds per round]}``: runs every case once per
#: round, ``repeat`` rounds (see :func:`alternate`)
Timer = Callable[[dict[str, Callable[[], Any]], int, "torch.device | None"], dict[str, list[float]]]


def _csr(matrix: torch.Tensor) -> torch.Tensor:
    """``matrix``'s nonzeros as a sparse CSR tensor with int32 indices (MKL's; int64 ones are
    converted at every product), without torch's "beta" warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]parse CSR tensor support is in beta.*")
        csr = matrix.to_sparse_csr()
        return torch.sparse_csr_tensor(csr.crow_indices().int(), csr.col_indices().int(),
                                       csr.values(), csr.shape, check_invariants=True)


def _bias_column(layer: nn.Module, out: int) -> torch.Tensor:
    """The layer's bias as an (out, 1) column (zeros without one): ``torch.addmm``'s input,
    which is faster on the CPU than ``torch.sparse.mm`` (no zero fill and copy of the result)."""
    weight = layer.weight.detach()
    bias = layer.bias
    if bias is None:
        return weight.new_zeros(out, 1)
    return bias.detach().reshape(out, 1).clone()


def _masked(layer: nn.Module, keep: torch.Tensor) -> torch.Tensor:
    weight = layer.weight.detach()
    if tuple(keep.shape) != tuple(weight.shape):
        raise ValueError(f"keep: a mask of shape {tuple(keep.shape)} for a weight of shape "
                         f"{tuple(weight.shape)}")
    return weight * keep.to(device=weight.device, dtype=torch.bool)


class SparseLinear(nn.Module):
    """A linear layer whose kept weights are a CSR matrix: ``y = (W_csr @ x^T)^T + b``."""

    def __init__(self, linear: nn.Linear, keep: torch.Tensor):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.matrix = _csr(_masked(linear, keep))
        self.bias = _bias_column(linear, self.out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features)
        y = torch.addmm(self.bias, self.matrix, rows.t())  # (out, rows)
        return y.t().reshape(*x.shape[:-1], self.out_features)


class Workspace:
    """One growing scratch buffer shared by the :class:`SparseConv` layers of a model.

    The layers run one after the other and each consumes its gathered patches before the next
    starts, so one buffer serves them all. Reusing it matters on the CPU: a fresh allocation of
    tens of MB is a new memory mapping whose first touch costs page faults, more than the gather
    itself. (Not for models run from several threads at once.)
    """

    def __init__(self) -> None:
        self.buffers: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}

    def get(self, numel: int, like: torch.Tensor) -> torch.Tensor:
        """A flat tensor of ``numel`` elements of ``like``'s dtype on its device."""
        key = (like.device, like.dtype)
        buf = self.buffers.get(key)
        if buf is None or buf.numel() < numel:
            self.buffers[key] = buf = like.new_empty(numel)
        return buf[:numel]


class SparseConv(nn.Module):
    """A convolution as a CSR matrix product over the input patches its kept weights read.

    The weight becomes a matrix (out channels, in channels x kernel positions), block-diagonal
    over the groups; only the columns with a kept weight are gathered from the input (for each
    kernel position, the kept channels of the strided view of the padded input that position
    reads), so the patch matrix has ``kept columns x (batch x output positions)`` entries.
    ``workspace``: where the patches are gathered (a private one when None). Build it on the
    device and in the dtype it runs in (``.to()`` does not move it).
    """

    def __init__(self, conv: nn.modules.conv._ConvNd, keep: torch.Tensor,
                 workspace: Workspace | None = None):
        super().__init__()
        if conv.transposed:
            raise ValueError("SparseConv: transposed convolutions are not supported")
        weight = _masked(conv, keep)
        out, per_group = weight.shape[:2]
        kernel = tuple(weight.shape[2:])
        groups, taps = conv.groups, math.prod(kernel)
        rows = out // groups
        # columns ordered (kernel position, channel), so each position's channels are adjacent
        full = weight.new_zeros(out, taps, per_group * groups)
        for g in range(groups):  # group g reads in channels g*per_group...: a diagonal block
            block = weight[g * rows:(g + 1) * rows].flatten(2).transpose(1, 2)
            full[g * rows:(g + 1) * rows, :, g * per_group:(g + 1) * per_group] = block
        used = full.ne(0).any(0)  # (kernel position, channel) with a kept weight
        self.taps: list[tuple[tuple[int, ...], torch.Tensor]] = []
        for t in used.any(1).nonzero().squeeze(1).tolist():
            position = torch.unravel_index(torch.tensor(t), kernel)
            start = tuple(int(p) * d for p, d in zip(position, conv.dilation))
            self.taps.append((start, used[t].nonzero().squeeze(1)))
        self.matrix = _csr(full.flatten(1)[:, used.flatten()])
        self.columns = int(used.sum())
        self.out_channels, self.dims = out, len(kernel)
        self.windows = tuple(d * (k - 1) + 1 for d, k in zip(conv.dilation, kernel))
        self.stride = tuple(conv.stride)
        self.pad = _padding(conv, kernel)
        self.pad_mode = "constant" if conv.padding_mode == "zeros" else conv.padding_mode
        self.bias = _bias_column(conv, out)
        self.workspace = workspace or Workspace()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batched = x.dim() == self.dims + 2
        if not batched:
            x = x.unsqueeze(0)
        if any(self.pad):
            x = F.pad(x, self.pad, mode=self.pad_mode)
        n = x.shape[0]
        spatial = [(size - w) // s + 1 for size, w, s in zip(x.shape[2:], self.windows, self.stride)]
        if self.columns:
            channels_first = x.transpose(0, 1)  # (C, N, *spatial): a view
            patches = self.workspace.get(self.columns * n * math.prod(spatial), x)
            patches = patches.view(self.columns, n, *spatial)
            k = 0
            for start, channels in self.taps:  # the strided view that kernel position reads
                view = channels_first[(slice(None), slice(None), *(
                    slice(b, b + (o - 1) * s + 1, s) for b, o, s in zip(start, spatial, self.stride)))]
                torch.index_select(view, 0, channels, out=patches[k:k + channels.numel()])
                k += channels.numel()
            y = torch.addmm(self.bias, self.matrix, patches.view(self.columns, -1))
        else:  # a collapsed layer: no weight left, the bias only
            y = self.bias.expand(self.out_channels, n * math.prod(spatial)).contiguous()
        # contiguous (N, C, ...): what the layers after it (batch norm) run fastest on
        y = y.view(self.out_channels, n, *spatial).transpose(0, 1).contiguous()
        return y if batched else y.squeeze(0)


def _padding(conv: nn.modules.conv._ConvNd, kernel: tuple[int, ...]) -> tuple[int, ...]:
    """``F.pad``'s argument (last dimension first) for the conv's padding."""
    pairs = []
    for i, k in enumerate(kernel):
        if conv.padding == "same":
            total = conv.dilation[i] * (k - 1)
            pairs.append((total // 2, total - total // 2))  # as torch pads 'same'
        elif conv.padding == "valid":
            pairs.append((0, 0))
        else:
            pairs.append((conv.padding[i], conv.padding[i]))
    return tuple(p for pair in reversed(pairs) for p in pair)


# ---- 2:4 semi-structured sparsity (CUDA, compute capability >= 8.0) ----------------------------

def is_two_four(keep: torch.Tensor) -> bool:
    """Whether a 2-D mask keeps at most 2 of every 4 consecutive weights along its rows."""
    return keep.dim() == 2 and keep.shape[1] % 4 == 0 and bool(keep.reshape(-1, 4).sum(1).le(2).all())


def two_four_keep(weight: torch.Tensor) -> torch.Tensor:
    """A 2:4 mask of a 2-D weight: the 2 largest magnitudes of every 4 consecutive weights."""
    if weight.dim() != 2 or weight.shape[1] % 4:
        raise ValueError(f"two_four_keep: needs a 2-D weight with a multiple of 4 columns, got "
                         f"{tuple(weight.shape)}")
    groups = weight.detach().abs().reshape(-1, 4)
    keep = torch.zeros_like(groups, dtype=torch.bool)
    keep.scatter_(1, groups.topk(2, dim=1).indices, True)
    return keep.view_as(weight)


def semi_structured_unsupported(linear: nn.Linear, keep: torch.Tensor) -> str | None:
    """Why ``linear`` under ``keep`` cannot run 2:4 semi-structured (None: it can)."""
    weight = linear.weight
    if not weight.is_cuda:
        return "2:4 needs CUDA"
    if torch.cuda.get_device_capability(weight.device) < (8, 0):
        return "2:4 needs compute capability >= 8.0"
    from torch.sparse import SparseSemiStructuredTensor as Semi
    from torch.sparse import SparseSemiStructuredTensorCUSPARSELT, SparseSemiStructuredTensorCUTLASS

    if Semi._FORCE_CUTLASS:
        backend = SparseSemiStructuredTensorCUTLASS
    elif torch.backends.cusparselt.is_available():
        backend = SparseSemiStructuredTensorCUSPARSELT
    else:
        return "2:4: cuSPARSELt is not available"
    constraint = getattr(backend, "_DTYPE_SHAPE_CONSTRAINTS", {}).get(weight.dtype)
    if constraint is None:
        return f"2:4 ({backend.BACKEND}) does not take {weight.dtype}"
    rows, cols = weight.shape
    if rows % constraint.sparse_min_rows or cols % constraint.sparse_min_cols:
        return (f"2:4 ({backend.BACKEND}) needs a weight shape multiple of "
                f"({constraint.sparse_min_rows}, {constraint.sparse_min_cols}), got {(rows, cols)}")
    if not is_two_four(keep):
        return "mask is not 2:4"
    return None


class SemiStructuredLinear(nn.Module):
    """A linear layer with a 2:4-sparse weight on the GPU's sparse tensor cores."""

    def __init__(self, linear: nn.Linear, keep: torch.Tensor):
        super().__init__()
        from torch.sparse import to_sparse_semi_structured

        reason = semi_structured_unsupported(linear, keep)
        if reason:
            raise ValueError(f"SemiStructuredLinear: {reason}")
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight = to_sparse_semi_structured(_masked(linear, keep).contiguous())
        self.bias = None if linear.bias is None else linear.bias.detach().clone()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


# ---- the sparse-execution copy -----------------------------------------------------------------

def sparse_execution(model: nn.Module, keep: Mapping[str, torch.Tensor],
                     semi_structured: bool = True) -> nn.Module:
    """A copy of ``model`` (eval mode, for inference) whose masked layers skip their zeros.

    Args:
        model: the network; it is not changed.
        keep: ``{layer name: bool mask like its weight}``, e.g. :attr:`drive.masks.Masks.keep`.
            Each named linear layer becomes a :class:`SparseLinear` (or a
            :class:`SemiStructuredLinear`, see below), each convolution a :class:`SparseConv`;
            the weights' values are those of ``model`` times the mask. Layers not named (and
            transposed convolutions) stay dense.
        semi_structured: use 2:4 kernels for the linear layers that allow them (CUDA, compute
            capability >= 8.0, a 2:4 mask, a dtype and shape they take); False: CSR only.

    The copy's ``sparse_formats`` is ``{layer: format}`` (``"csr"``, ``"csr-im2col"``, ``"2:4"``
    or ``"dense (reason)"``) and says, for the linear layers that are not 2:4, why. Every
    reference to a replaced layer is replaced, so a layer the forward pass calls twice (or that
    is registered under two names) stays one layer.
    """
    clone = copy.deepcopy(model).eval()
    modules = dict(clone.named_modules())
    replacements: dict[int, nn.Module] = {}
    formats: dict[str, str] = {}
    workspace = Workspace()  # one scratch buffer for all the convolutions
    for name, mask in keep.items():
        layer = modules.get(name)
        if layer is None:
            raise ValueError(f"keep: {name!r} is not a layer of the model")
        new, formats[name] = _sparse_layer(layer, mask, semi_structured, workspace)
        if new is not None:
            replacements[id(layer)] = new
    if id(clone) in replacements:  # the model is itself one layer
        result = replacements[id(clone)]
    else:
        result = clone
        for module in clone.modules():
            for child_name, child in list(module._modules.items()):
                if child is not None and id(child) in replacements:
                    module._modules[child_name] = replacements[id(child)]
    result.sparse_formats = formats
    return result.eval()


def _sparse_layer(layer: nn.Module, mask: torch.Tensor, semi_structured: bool,
                  workspace: Workspace) -> tuple[nn.Module | None, str]:
    """The replacement of one masked layer and its format (None: the layer stays dense)."""
    if isinstance(layer, nn.Linear):
        reason = semi_structured_unsupported(layer, mask) if semi_structured else "2:4 off"
        if reason is None:
            try:
                return SemiStructuredLinear(layer, mask), "2:4"
            except RuntimeError as e:  # a kernel this build or GPU lacks: CSR instead
                reason = f"2:4 failed: {e}".splitlines()[0]
        return SparseLinear(layer, mask), "csr" if not layer.weight.is_cuda else f"csr ({reason})"
    if isinstance(layer, nn.modules.conv._ConvNd):
        if layer.transposed:
            return None, "dense (transposed conv)"
        return SparseConv(layer, mask, workspace), "csr-im2col"
    raise ValueError(f"keep: {type(layer).__name__} is not a conv or linear layer")


# ---- timing ------------------------------------------------------------------------------------

def _sync(device: torch.device | str | None) -> None:
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def alternate(cases: dict[str, Callable[[], Any]], repeat: int,
              device: torch.device | str | None = None) -> dict[str, list[float]]:
    """Seconds of each case per round, ``repeat`` rounds; the cases alternate within a round
    and their order flips every round, so drift on a shared machine affects all alike. CUDA
    work is synchronised around every timed call (the same scheme as
    ``benchmarks.common.side_by_side``, without its warm-up, which the caller does)."""
    items = list(cases.items())
    times: dict[str, list[float]] = {name: [] for name in cases}
    for r in range(repeat):
        for name, run in (items if r % 2 == 0 else items[::-1]):
            _sync(device)
            start = time.perf_counter()
            run()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return times


def time_inference(dense: nn.Module, sparse: nn.Module, sample_shape: Sequence[int],
                   batch_sizes: Sequence[int] = (1, 256), *, repeat: int = 5,
                   round_seconds: float = 0.1, timer: Timer = alternate,
                   device: torch.device | str | None = None, seed: int = 0,
                   memory_format: torch.memory_format = torch.contiguous_format) -> list[dict[str, Any]]:
    """Forward-pass time of the dense-masked model against its sparse-execution copy.

    Per batch size: one random batch (seeded) on ``device`` (default: where ``dense``'s
    parameters are), both models run once untimed (warm-up, and the outputs compared), then
    ``repeat`` alternating rounds of ``calls`` forward passes each, ``calls`` chosen so that a
    round of the slower model takes about ``round_seconds``. Runs in eval mode under
    ``torch.inference_mode`` (the models' training flags are restored afterwards). The dense
    model's input is in ``memory_format`` (give ``torch.channels_last`` for a dense model
    converted to it, the faster layout of CPU convolutions); the sparse model's is contiguous.

    Returns one plain dict per batch size: ``batch``, ``calls``, ``rounds``, ``dense_s`` and
    ``sparse_s`` (median seconds per forward pass), ``dense_best_s`` and ``sparse_best_s``
    (fastest round), ``ratio`` (median over rounds of sparse / dense: < 1 means sparse
    execution is faster), ``ratio_best`` (best / best), ``max_abs_diff`` (largest difference of
    the two outputs) with ``max_abs_output``, and ``seconds`` (every round, per forward pass).
    """
    if device is None:
        device = next((p.device for p in dense.parameters()), torch.device("cpu"))
    modes = {m: m.training for m in (*dense.modules(), *sparse.modules())}
    dense.eval()
    sparse.eval()
    rows = []
    try:
        with torch.inference_mode():
            for batch in batch_sizes:
                gen = torch.Generator().manual_seed(seed)
                x = torch.randn((batch, *sample_shape), generator=gen).to(device)
                x_dense = x.contiguous(memory_format=memory_format) if x.dim() == 4 else x
                rows.append(_time_batch(dense, sparse, x_dense, x, repeat, round_seconds, timer,
                                        device))
    finally:
        for m, training in modes.items():
            m.training = training
    return rows


def _time_batch(dense: nn.Module, sparse: nn.Module, x_dense: torch.Tensor, x: torch.Tensor,
                repeat: int, round_seconds: float, timer: Timer,
                device: torch.device | str) -> dict[str, Any]:
    reference, output = dense(x_dense), sparse(x)  # warm-up (allocator, kernels) and the check
    diff = float((output - reference).abs().max())
    probe = timer({"dense": lambda: dense(x_dense), "sparse": lambda: sparse(x)}, 1, device)
    slowest = max(probe["dense"][0], probe["sparse"][0], 1e-9)
    calls = max(1, math.ceil(round_seconds / slowest))

    def repeated(model: nn.Module, inputs: torch.Tensor) -> Callable[[], None]:
        def run() -> None:
            for _ in range(calls):
                model(inputs)
        return run

    times = timer({"dense": repeated(dense, x_dense), "sparse": repeated(sparse, x)}, repeat, device)
    d = [t / calls for t in times["dense"]]
    s = [t / calls for t in times["sparse"]]
    return {"batch": x.shape[0], "calls": calls, "rounds": repeat,
            "dense_s": statistics.median(d), "sparse_s": statistics.median(s),
            "dense_best_s": min(d), "sparse_best_s": min(s),
            "ratio": statistics.median(b / a for a, b in zip(d, s)),
            "ratio_best": min(s) / min(d),
            "max_abs_diff": diff, "max_abs_output": float(reference.abs().max()),
            "seconds": {"dense": d, "sparse": s}}
