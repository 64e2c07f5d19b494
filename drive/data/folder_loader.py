"""A loader for :class:`~drive.data.base.FolderData`: a torch ``DataLoader`` with CPU workers.

Repeatability: the sampler draws, from a generator seeded with ``(seed, epoch)``, the order of
the epoch and one seed per sample; each sample's transforms run under its own seed (torchvision
transforms draw from torch's global generator, which is forked for the call). So the batches
are a pure function of ``(seed, epoch)``, whatever the number of workers, and the caller's
global random state is left alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate

from drive.data.augment import Normalizer, derive_seed
from drive.data.loader import steps_per_epoch


class EpochSampler(Sampler):
    """Yields ``(index, sample_seed)`` pairs, shuffled (or in order) as a function of (seed, epoch)."""

    def __init__(self, n: int, seed: int, shuffle: bool):
        self.n, self.seed, self.shuffle, self.epoch = n, seed, shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[tuple[int, int]]:
        generator = torch.Generator().manual_seed(derive_seed(self.seed, self.epoch))
        order = torch.randperm(self.n, generator=generator) if self.shuffle else torch.arange(self.n)
        seeds = torch.randint(0, 2**62, (self.n,), generator=generator)
        return iter(zip(order.tolist(), seeds.tolist()))


class SeededDataset(Dataset):
    """Reads ``dataset[index]`` with torch's CPU generator seeded by the sample's seed."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        index, seed = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.dataset[index]


class FolderLoader:
    """Batches ``(x, y)`` of a file-backed data set on ``device``: x normalised ``(N, C, H, W)``
    (channels_last if asked), y int64 ``(N,)``. The last batch may be smaller, unless ``drop_last``
    drops it.

    ``collate_fn`` and ``on_batch`` replace the default collation and the move to ``device``:
    ``on_batch`` maps a collated batch to uint8 ``(x, y)`` on the device (GPU JPEG decoding,
    :mod:`drive.data.jpeg`).
    """

    def __init__(self, dataset: Dataset, normalizer: Normalizer, batch_size: int,
                 device: torch.device, seed: int = 0, shuffle: bool = False, num_workers: int = 0,
                 collate_fn: Callable[[list[Any]], Any] | None = None,
                 on_batch: Callable[[Any], tuple[torch.Tensor, torch.Tensor]] | None = None,
                 drop_last: bool = False):
        self.device = torch.device(device)
        self.normalizer = normalizer
        self.collate_fn = collate_fn or default_collate
        self.on_batch = on_batch or self._to_device
        self.sampler = EpochSampler(len(dataset), seed, shuffle)  # type: ignore[arg-type]
        self.loader = DataLoader(SeededDataset(dataset), batch_size=batch_size, sampler=self.sampler,
                                 num_workers=num_workers, pin_memory=self.device.type == "cuda",
                                 persistent_workers=num_workers > 0, collate_fn=self.collate_fn,
                                 drop_last=drop_last,
                                 generator=torch.Generator())  # else it draws from the global one

    @property
    def num_samples(self) -> int:
        """Samples per epoch."""
        return len(self.sampler)

    @property
    def epoch(self) -> int:
        return self.sampler.epoch

    def __len__(self) -> int:
        """Batches per epoch."""
        return steps_per_epoch(self.num_samples, self.loader.batch_size,  # type: ignore[arg-type]
                               self.loader.drop_last)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order and augmentation the next iteration delivers."""
        self.sampler.set_epoch(epoch)

    def _to_device(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = batch
        return (x.to(self.device, non_blocking=True),
                torch.as_tensor(y).to(self.device, dtype=torch.int64, non_blocking=True))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for batch in self.loader:
            x, y = self.on_batch(batch)
            yield self.normalizer(x), y

    def samples(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The samples at ``index`` as one batch (read with fixed seeds), normalised, in float32
        (for scoring, which runs without autocast)."""
        dataset = self.loader.dataset
        items = [dataset[(int(i), derive_seed(self.sampler.seed, -1, int(i)))] for i in index]
        x, y = self.on_batch(self.collate_fn(items))
        return self.normalizer(x).float(), y
