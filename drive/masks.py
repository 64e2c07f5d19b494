"""Which weights are prunable, the keep-masks over them, exact top-k selection and enforcement.

Prunable tensors are the weights of convolution and linear layers (never biases or
normalisation layers), in module registration order. A :class:`Masks` object holds one boolean
keep-mask per prunable layer and keeps pruned weights at exactly zero.

How exactness is kept with the least work per step: whenever the masks change (pruning,
rewinding, loading) the pruned weights are zeroed, and before the first step of an optimiser
under new masks its per-weight state is zeroed too (SGD's momentum, AdamW's ``exp_avg`` and
``exp_avg_sq``). From then on only the gradients are masked before each step: a pruned weight
w = 0 with gradient 0 and momentum 0 gets the SGD update ``lr * (g + wd * w + momentum * buf) = 0``
(Nesterov alike); under AdamW its moments stay 0, its decoupled decay is ``w * (1 - lr * wd) = 0``
and its update ``lr * m / (sqrt(v) + eps) = 0``. So it stays exactly 0 without a re-apply after
the step. While every mask is full (dense training: the dense baseline, DRIVE's
warm-up, IMP's level 0) no masking work is done at all. Densities and per-layer counts are
computed once per mask change, not at every read.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from drive.bits import pack_bits, unpack_bits
from drive.errors import ConfigError

PRUNABLE_TYPES = (nn.Linear, nn.modules.conv._ConvNd)


def prunable_layers(model: nn.Module, exclude_first: bool = False,
                    exclude_last: bool = False) -> dict[str, nn.Parameter]:
    """Weights of the model's conv and linear layers, ``{layer name: weight}``, in order.

    ``exclude_first``/``exclude_last`` leave the first/last such layer dense (the input stem and
    the classifier in the usual architectures).
    """
    layers = [(name, m.weight) for name, m in model.named_modules()
              if isinstance(m, PRUNABLE_TYPES) and m.weight is not None]
    if not layers:
        raise ConfigError(["model: has no conv or linear layer to prune"])
    lo, hi = int(exclude_first), len(layers) - int(exclude_last)
    if lo >= hi:
        raise ConfigError(["prune.exclude_first: with prune.exclude_last leaves no layer to prune"])
    return dict(layers[lo:hi])


def keep_count(density: float, n: int) -> int:
    """k = round(density * n), halves rounded up (so the count is never platform dependent)."""
    return min(n, int(math.floor(density * n + 0.5)))


def check_keeps_a_weight(sparsity: float, total: int, model: str) -> None:
    """Refuse a target sparsity whose exact count keeps no weight at all (every layer empty:
    every method the same network at chance, a result that is no result)."""
    if sparsity > 0 and keep_count(1.0 - sparsity, total) == 0:
        raise ConfigError([f"sparsity: {sparsity:g} keeps none of {model}'s {total} prunable "
                           f"weights (round({1 - sparsity:.3g} x {total}) = 0); at most "
                           f"{math.floor((1 - 0.5 / total) * 1e6) / 1e6:g} keeps one"])


def select_top_k(scores: dict[str, torch.Tensor], keep: dict[str, torch.Tensor],
                 k: int) -> dict[str, torch.Tensor]:
    """New keep-masks holding exactly the ``k`` highest-scoring weights among those still kept.

    Only currently kept weights are candidates, so a pruned weight is never revived whatever
    its score. Ties are broken by position (earlier layer, then lower flat index wins), which
    makes the choice deterministic. Scores are ranked in float64 (never rounded to a coarser
    type); the caller makes sure they are finite (:func:`drive.prune.check_finite`).
    """
    names = list(keep)
    flat_keep = torch.cat([keep[n].reshape(-1) for n in names])
    candidates = flat_keep.nonzero().squeeze(1)
    if k > candidates.numel():
        raise ValueError(f"cannot keep {k} weights: only {candidates.numel()} are still unpruned")
    flat_scores = torch.cat([scores[n].detach().reshape(-1).double() for n in names])
    cand_scores = flat_scores[candidates]
    if not bool(torch.isfinite(cand_scores).all()):
        raise ValueError("scores: NaN or infinite scores of unpruned weights cannot be ranked")
    order = torch.sort(cand_scores, descending=True, stable=True).indices
    new_flat = torch.zeros_like(flat_keep)
    new_flat[candidates[order[:k]]] = True
    out, start = {}, 0
    for n in names:
        size = keep[n].numel()
        out[n] = new_flat[start:start + size].view_as(keep[n])
        start += size
    return out


class Masks:
    """Boolean keep-masks over a model's prunable weights, and their enforcement."""

    def __init__(self, weights: dict[str, nn.Parameter]):
        self.weights = weights
        self.keep = {n: torch.ones_like(w, dtype=torch.bool) for n, w in weights.items()}

    @property
    def keep(self) -> dict[str, torch.Tensor]:
        """``{layer: bool tensor}``, True = kept. Assign a new dict to change the masks."""
        return self._keep

    @keep.setter
    def keep(self, keep: dict[str, torch.Tensor]) -> None:
        self._keep = keep
        self._multipliers: list[torch.Tensor] | None = None
        self._counts: dict[str, int] | None = None
        self._synced: object = None  # the optimiser whose buffers were masked for these masks

    @classmethod
    def for_model(cls, model: nn.Module, exclude_first: bool = False,
                  exclude_last: bool = False) -> Masks:
        return cls(prunable_layers(model, exclude_first, exclude_last))

    # ---- counting ------------------------------------------------------------------------
    @property
    def total(self) -> int:
        """Number of prunable weights N."""
        return sum(m.numel() for m in self.keep.values())

    def layer_counts(self) -> dict[str, int]:
        """Kept weights per layer; read from the device once per mask change (one sync)."""
        if self._counts is None:
            counts = torch.stack([m.sum() for m in self.keep.values()]).tolist()
            self._counts = dict(zip(self.keep, (int(c) for c in counts)))
        return self._counts

    @property
    def kept(self) -> int:
        return sum(self.layer_counts().values())

    @property
    def is_dense(self) -> bool:
        """Every mask is full: nothing to enforce."""
        return self.kept == self.total

    def density(self) -> float:
        """Achieved density: kept / prunable weights."""
        return self.kept / self.total

    def layer_density(self) -> dict[str, float]:
        return {n: c / self.keep[n].numel() for n, c in self.layer_counts().items()}

    def collapsed_layers(self) -> list[str]:
        """Layers with no weight left: they disconnect the network."""
        return [n for n, c in self.layer_counts().items() if c == 0]

    # ---- pruning ---------------------------------------------------------------------------
    def prune_to(self, scores: dict[str, torch.Tensor], density: float,
                 scope: str = "global") -> None:
        """Keep the highest-scoring weights so that exactly round(density * N) remain.

        ``scope="layerwise"`` applies the same density to every layer separately.
        """
        if scope == "global":
            self.keep = select_top_k(scores, self.keep, keep_count(density, self.total))
        elif scope == "layerwise":
            for n in self.keep:
                chosen = select_top_k({n: scores[n]}, {n: self.keep[n]},
                                      keep_count(density, self.keep[n].numel()))
                self.keep[n] = chosen[n]
        else:
            raise ValueError(f"prune.scope: must be global or layerwise, got {scope!r}")
        self.keep = dict(self.keep)  # a mask change: drop what was derived from the old masks
        self.apply()

    @torch.no_grad()
    def restore(self, weights: dict[str, torch.Tensor]) -> None:
        """Unprune everything: the weights get ``weights``' values and every mask is full."""
        for n, w in self.weights.items():
            w.copy_(weights[n])
        self.keep = {n: torch.ones_like(m) for n, m in self.keep.items()}

    # ---- enforcement -----------------------------------------------------------------------
    def _mults(self) -> list[torch.Tensor]:
        if self._multipliers is None:
            # laid out like the weight (channels_last too): a multiply across memory formats is
            # several times slower than one within a format
            self._multipliers = [torch.empty_like(w, requires_grad=False).copy_(m)
                                 for m, w in zip(self.keep.values(), self.weights.values())]
        return self._multipliers

    @torch.no_grad()
    def apply(self) -> None:
        """Zero the pruned weights."""
        if not self.is_dense:
            torch._foreach_mul_(list(self.weights.values()), self._mults())

    @torch.no_grad()
    def mask_gradients(self) -> None:
        """Zero the gradients of pruned weights (before the optimiser step)."""
        if self.is_dense:
            return
        pairs = [(w.grad, m) for w, m in zip(self.weights.values(), self._mults()) if w.grad is not None]
        if pairs:
            grads, mults = zip(*pairs)
            torch._foreach_mul_(list(grads), list(mults))

    @torch.no_grad()
    def mask_optimizer_state(self, optimizer: torch.optim.Optimizer) -> None:
        """Zero the optimiser's per-weight state of pruned weights (every tensor of the weight's
        shape: SGD's momentum, AdamW's moments)."""
        self._synced = optimizer
        if self.is_dense:
            return
        bufs, mults = [], []
        for w, m in zip(self.weights.values(), self._mults()):
            for buf in optimizer.state.get(w, {}).values():
                if torch.is_tensor(buf) and buf.shape == w.shape:
                    bufs.append(buf)
                    mults.append(m)
        if bufs:
            torch._foreach_mul_(bufs, mults)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """An optimiser step that cannot revive pruned weights.

        Only the gradients are masked (see the module's docstring). The first step of an
        optimiser under new masks also zeroes its buffers and the pruned weights once, so the
        invariant holds whoever changed the masks or the weights' optimiser.
        """
        if self.is_dense:
            optimizer.step()
            return
        if self._synced is not optimizer:
            self.apply()
            self.mask_optimizer_state(optimizer)
        self.mask_gradients()
        optimizer.step()

    # ---- persistence -----------------------------------------------------------------------
    def state_dict(self) -> dict[str, torch.Tensor]:
        """The masks packed 8 per byte (uint8, on the CPU): 1/8 of a bool tensor's size."""
        return {n: pack_bits(m).cpu() for n, m in self.keep.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Masks from :meth:`state_dict` (or, from older checkpoints, bool tensors)."""
        if set(state) != set(self.keep):
            raise ValueError("checkpoint: masks do not match the model's prunable layers")
        keep = {}
        for n, old in self.keep.items():
            saved = state[n].to(old.device)
            if saved.dtype == torch.uint8 and saved.numel() == -(-old.numel() // 8):
                keep[n] = unpack_bits(saved, old.numel()).view_as(old)
            elif saved.dtype == torch.bool and saved.numel() == old.numel():
                keep[n] = saved.view_as(old).clone()
            else:
                raise ValueError(f"checkpoint: the mask of layer {n!r} does not fit its weight")
        self.keep = keep
        self.apply()

    def summary(self) -> dict:
        """Achieved density, per-layer densities and collapsed layers, for the metrics (from the
        counts cached at the last mask change: no device sync)."""
        return {
            "density": self.density(),
            "layer_density": self.layer_density(),
            "params_remaining": self.kept,
            "params_prunable": self.total,
            "collapsed_layers": self.collapsed_layers(),
        }
