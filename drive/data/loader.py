"""A device-resident loader for :class:`~drive.data.base.ImageData`.

The samples (uint8 or float32 images or signals) are moved to the training device once (or
kept on the CPU with ``on_device=False`` and moved chunk by chunk). A whole epoch is gathered,
cropped, flipped and normalised at once (see :mod:`drive.data.augment`), in chunks of at most
``chunk_bytes`` of output and a whole number of batches (CIFAR-10's 50,000 images are one chunk
on CUDA), and the batches are slices of it: a handful of kernels per epoch instead of about 15
per batch, and no CPU worker is a bottleneck. The batches are the same as batch-by-batch
augmentation would give: the same samples, crops and flips.

Randomness: the order, crop offsets and flips of an epoch are drawn at its start on the CPU
with a ``torch.Generator`` seeded from ``(seed, epoch)`` and moved to the device once. So
they are a pure function of ``(seed, epoch)`` (a run resumed at epoch e sees the data it would
have seen) and identical on CPU and CUDA.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from drive.data.augment import Normalizer, crop_flip, derive_seed, random_flips, random_shifts


class ImageLoader:
    """Batches ``(x, y)`` of an in-memory set: x float32 normalised ``(N, C, H, W)`` images or
    ``(N, C, L)`` signals, y int64 ``(N,)``, both on ``device``.

    Args:
        images: uint8 or float32 ``(N, C, H, W)`` or ``(N, C, L)``.
        labels: int64 ``(N,)``.
        normalizer: maps a stored batch on ``device`` to the normalised float32 batch.
        batch_size: samples per batch; the last batch of an epoch may be smaller, unless
            ``drop_last`` drops it.
        device: where batches are delivered.
        seed: base seed of the shuffling and augmentation.
        shuffle: a new order each epoch (the training set) or the stored order (the test set).
        crop_padding: padding of the random crop, 0 for none.
        flip: random horizontal flip.
        pad_mode: ``reflect`` or ``zeros``.
        on_device: keep the images on ``device`` (else on the CPU, moving each chunk).
        drop_last: drop the epoch's last batch when it is smaller than ``batch_size``.
        chunk_bytes: most bytes of normalised output made at once (default 1 GiB on CUDA,
            256 MiB elsewhere); rounded to whole batches, at least one.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, normalizer: Normalizer,
                 batch_size: int, device: torch.device, seed: int = 0, shuffle: bool = False,
                 crop_padding: int = 0, flip: bool = False, pad_mode: str = "reflect",
                 on_device: bool = True, chunk_bytes: int | None = None, drop_last: bool = False):
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.device = torch.device(device)
        storage = self.device if on_device else torch.device("cpu")
        self.images = images.to(storage)
        self.labels = labels.to(storage)
        self.normalizer = normalizer
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.crop_padding = crop_padding
        self.flip = flip
        self.pad_mode = pad_mode
        self.epoch = 0
        if chunk_bytes is None:
            chunk_bytes = 2**30 if self.device.type == "cuda" else 2**28
        sample_bytes = max(1, images[0].numel() * torch.empty((), dtype=normalizer.dtype).element_size())
        self.chunk = batch_size * max(1, chunk_bytes // (sample_bytes * batch_size))

    @property
    def num_samples(self) -> int:
        """Samples per epoch."""
        return self.labels.shape[0]

    def __len__(self) -> int:
        """Batches per epoch."""
        return steps_per_epoch(self.num_samples, self.batch_size, self.drop_last)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order and augmentation the next iteration delivers."""
        self.epoch = int(epoch)

    def _plan(self) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        """This epoch's permutation, crop offsets and flips (None where not used)."""
        n = self.num_samples
        generator = torch.Generator().manual_seed(derive_seed(self.seed, self.epoch))
        order = torch.randperm(n, generator=generator) if self.shuffle else None
        shifts = random_shifts(n, self.crop_padding, generator) if self.crop_padding > 0 else None
        flips = random_flips(n, generator) if self.flip else None
        return (None if order is None else order.to(self.images.device),
                None if shifts is None else shifts.to(self.device),
                None if flips is None else flips.to(self.device))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order, shifts, flips = self._plan()
        for begin in range(0, self.num_samples, self.chunk):
            end = min(begin + self.chunk, self.num_samples)
            if order is None:
                x, y = self.images[begin:end], self.labels[begin:end]
            else:
                index = order[begin:end]
                x, y = self.images[index], self.labels[index]
            x = x.to(self.device, non_blocking=True)
            y = y.to(self.device, non_blocking=True)
            if shifts is not None or flips is not None:
                x = crop_flip(x, self.crop_padding, self.pad_mode,
                              None if shifts is None else shifts[begin:end],
                              None if flips is None else flips[begin:end])
            x = self.normalizer(x)
            for start in range(0, end - begin, self.batch_size):
                if self.drop_last and end - begin - start < self.batch_size:
                    break
                yield x[start:start + self.batch_size], y[start:start + self.batch_size]

    def samples(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The samples at ``index`` as one batch, normalised and not augmented, in float32 (for
        scoring, which runs without autocast)."""
        index = index.to(self.images.device)
        x = self.images[index].to(self.device, non_blocking=True)
        return self.normalizer(x).float(), self.labels[index].to(self.device, non_blocking=True)


def steps_per_epoch(samples: int, batch_size: int, drop_last: bool = False) -> int:
    """Batches in an epoch of ``samples``: the last one partial, or dropped (``drop_last``)."""
    return samples // batch_size if drop_last else math.ceil(samples / batch_size)
