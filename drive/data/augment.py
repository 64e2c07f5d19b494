"""Batch operations run on the training device: normalisation, random crop and flip, seeds.

All of them work on whole batches with tensor ops (no Python loop over images), on CPU and
CUDA alike, so the augmentation of the small image sets never waits for CPU workers. The
in-memory loader applies them to a whole epoch (or large chunks of it) at once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch

PAD_MODES = ("reflect", "zeros")


def derive_seed(*parts: int) -> int:
    """A non-negative 63-bit seed that is a pure function of ``parts`` (any ints, also negative).

    Uses a hash rather than arithmetic so that nearby (seed, epoch) pairs give unrelated
    streams, and rather than ``hash()`` so that it is the same in every process.
    """
    digest = hashlib.blake2b(repr(tuple(int(p) for p in parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


class Normalizer:
    """Turns a batch into ``(x - mean) / std`` on the device, ``(N, C, ...)`` any rank.

    uint8 batches are scaled to [0, 1] first (``mean``/``std`` are in those units). Float
    batches are normalised in their own units when ``normalize_float`` (the in-memory sets),
    else taken as already normalised and only cast (the folder sets' transforms normalise).
    With ``channels_last`` a 4-D output has that memory format (it applies to nothing else).
    The output is float32, or ``dtype`` (bf16 on CUDA under autocast, where the first layer
    would cast it anyway). ``fused`` turns uint8 into the normalised output in one kernel
    (cast, multiply, add and layout change together; the default on CUDA, where it saves three
    passes over the batch; on the CPU the separate steps are faster).
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], device: torch.device,
                 channels_last: bool = False, normalize_float: bool = False,
                 dtype: torch.dtype = torch.float32, fused: bool | None = None):
        mean_t = torch.tensor(mean, dtype=torch.float64).view(-1, 1)
        std_t = torch.tensor(std, dtype=torch.float64).view(-1, 1)
        # x * scale - shift == (x / 255 - mean) / std, in one multiply and one subtract
        self.scale = (1 / (255 * std_t)).float().to(device)
        self.float_scale = (1 / std_t).float().to(device) if normalize_float else None
        self.shift = (mean_t / std_t).float().to(device)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.dtype = dtype
        self.fused = torch.device(device).type == "cuda" if fused is None else fused

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        per_channel = (-1,) + (1,) * (x.dim() - 2)  # (C, 1) for signals, (C, 1, 1) for images
        shift = self.shift.view(per_channel)
        layout = self.memory_format if x.dim() == 4 else torch.contiguous_format
        if self.fused and not x.is_floating_point():
            out = torch.empty(x.shape, dtype=self.dtype, device=x.device, memory_format=layout)
            return torch.addcmul(-shift, x, self.scale.view(per_channel), out=out)
        x = x.contiguous(memory_format=layout)  # cheaper on uint8 than on float
        if x.is_floating_point():
            if self.float_scale is None:
                return x.to(self.dtype)
            # out of place: x may be a view of the stored data set
            return x.float().mul(self.float_scale.view(per_channel)).sub_(shift).to(self.dtype)
        return x.float().mul_(self.scale.view(per_channel)).sub_(shift).to(self.dtype)  # keeps the format


def random_shifts(n: int, padding: int, generator: torch.Generator) -> torch.Tensor:
    """``(n, 2)`` crop offsets (row, column) into the padded image, uniform in ``[0, 2 * padding]``."""
    return torch.randint(0, 2 * padding + 1, (n, 2), generator=generator)


def random_flips(n: int, generator: torch.Generator) -> torch.Tensor:
    """``(n,)`` booleans, each true with probability 1/2."""
    return torch.rand(n, generator=generator) < 0.5


def crop_flip(x: torch.Tensor, padding: int = 0, pad_mode: str = "reflect",
              shifts: torch.Tensor | None = None, flips: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample random crop with padding and horizontal flip of a batch ``(N, C, H, W)``, or
    of signals ``(N, C, L)`` (a shift along the signal by ``shifts[:, 1]``, row offsets unused).

    Image ``i`` becomes the ``H x W`` window at offset ``shifts[i]`` of the image padded by
    ``padding`` pixels on every side (``reflect``: mirrored without repeating the edge, as
    ``F.pad(mode="reflect")``; ``zeros``: value 0, i.e. black before normalisation), then is
    mirrored left-right where ``flips[i]``. Equal to cropping then flipping each image alone.

    Instead of materialising the padded batch, each output pixel's source row and column is
    computed (padding folded in as reflection or a validity mask) and read with two gathers,
    so it works on uint8 and costs two passes over the batch.
    """
    if x.dim() == 3:  # a signal is an image of one row that is never shifted vertically
        if shifts is not None:
            shifts = torch.stack([torch.full_like(shifts[:, 1], padding), shifts[:, 1]], dim=1)
        return crop_flip(x.unsqueeze(2), padding, pad_mode, shifts, flips).squeeze(2)
    n, c, h, w = x.shape
    rows = torch.arange(h, device=x.device).expand(n, h)
    cols = torch.arange(w, device=x.device).expand(n, w)
    if shifts is not None and padding > 0:
        shifts = shifts.to(x.device)
        rows = rows + (shifts[:, :1] - padding)
        cols = cols + (shifts[:, 1:] - padding)
    if flips is not None:
        cols = torch.where(flips.to(x.device)[:, None], cols.flip(1), cols)
    if pad_mode == "reflect":
        rows, cols = _reflect(rows, h), _reflect(cols, w)
        valid = None
    elif pad_mode == "zeros":
        valid = ((rows >= 0) & (rows < h))[:, None, :, None] & ((cols >= 0) & (cols < w))[:, None, None, :]
        rows, cols = rows.clamp(0, h - 1), cols.clamp(0, w - 1)
    else:
        raise ValueError(f"pad_mode must be one of {PAD_MODES}, got {pad_mode!r}")
    out = x.gather(2, rows[:, None, :, None].expand(n, c, h, w))
    out = out.gather(3, cols[:, None, None, :].expand(n, c, h, w))
    return out if valid is None else out.masked_fill_(~valid, 0)


def _reflect(index: torch.Tensor, size: int) -> torch.Tensor:
    """Mirror indices in ``(-size, 2 * size - 1)`` into ``[0, size)`` without repeating the edge."""
    index = index.abs()
    return torch.where(index >= size, 2 * (size - 1) - index, index)
