"""The two kinds of data set a factory returns, the data set registry and :class:`DataError`.

* :class:`ImageData`: a small set held in memory as uint8 or float32 tensors, images
  ``(N, C, H, W)`` or signals ``(N, C, L)``; served by the device-resident loader
  (:mod:`drive.data.loader`), which augments on the device.
* :class:`FolderData`: a large image set read from files by a ``torch.utils.data.Dataset``
  (ImageNet); served by a ``DataLoader`` with CPU workers (:mod:`drive.data.folder_loader`).

A factory is called as ``factory(cfg: DataConfig)`` and returns one of the two. Its options
come in ``cfg.args`` (``data.args`` in a config); a factory marked with :func:`takes_args` has
them checked against its schema before it is called (see :func:`dataset_args`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Union

import torch
from torch.utils.data import Dataset, Subset

from drive.config import DataConfig
from drive.errors import DataError
from drive.registry import Registry

#: The sample dtypes :class:`ImageData` holds.
SAMPLE_DTYPES = (torch.uint8, torch.float32)


@dataclass(frozen=True, eq=False)
class ImageData:
    """An in-memory classification data set of images or 1-D signals.

    Samples are ``(N, C, H, W)`` images or ``(N, C, L)`` signals, as uint8 or float32 tensors;
    labels int64 ``(N,)`` in ``[0, num_classes)``. ``mean``/``std`` are per channel and used to
    normalise batches, ``(x - mean) / std``: in [0, 1] units for uint8 (``x / 255``), in the
    data's own units for float32. ``augment`` switches augmentation of the training set on; when
    on, a random crop with ``crop_padding`` samples of padding (0 = no crop; along the signal
    for 1-D data) and, if ``flip``, a random horizontal flip (a reversed signal) are applied per
    sample. ``DataConfig.augment/crop_padding/flip`` override these defaults.
    """

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    num_classes: int
    mean: Sequence[float]
    std: Sequence[float]
    augment: bool = False
    crop_padding: int = 0
    flip: bool = False
    name: str = "custom"
    val_images: torch.Tensor | None = None
    val_labels: torch.Tensor | None = None

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            images, labels = getattr(self, f"{split}_images"), getattr(self, f"{split}_labels")
            if images.dtype not in SAMPLE_DTYPES or images.dim() not in (3, 4):
                raise DataError(f"dataset: {self.name} {split}_images must be a uint8 or float32 "
                                f"(N, C, H, W) or (N, C, L) tensor, got {images.dtype} of shape "
                                f"{tuple(images.shape)}")
            if labels.dtype != torch.int64 or labels.shape != images.shape[:1]:
                raise DataError(f"dataset: {self.name} {split}_labels must be int64 of shape "
                                f"({images.shape[0]},), got {labels.dtype} {tuple(labels.shape)}")
            if len(labels) and (labels.min() < 0 or labels.max() >= self.num_classes):
                raise DataError(f"dataset: {self.name} {split}_labels must be in [0, {self.num_classes})")
        if self.test_images.shape[1:] != self.train_images.shape[1:]:
            raise DataError(f"dataset: {self.name} train and test images differ in shape")
        if self.test_images.dtype != self.train_images.dtype:
            raise DataError(f"dataset: {self.name} train and test images differ in dtype")
        if not len(self.mean) == len(self.std) == self.in_channels:
            raise DataError(f"dataset: {self.name} needs one mean and std per channel ({self.in_channels})")

    @property
    def in_channels(self) -> int:
        return self.train_images.shape[1]

    @property
    def image_size(self) -> int:
        """Side of the images (height; the built-in image sets are square), length of signals."""
        return self.train_images.shape[2]

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """The shape of one input sample, ``(C, H, W)`` or ``(C, L)`` (never assumed square)."""
        return tuple(self.train_images.shape[1:])

    @property
    def num_train(self) -> int:
        return self.train_images.shape[0]

    @property
    def num_test(self) -> int:
        return self.test_images.shape[0]

    @property
    def num_val(self) -> int:
        return 0 if self.val_labels is None else self.val_labels.shape[0]

    def with_validation(self, fraction: float, seed: int) -> ImageData:
        """``fraction`` of the training set (per class, seeded) moved into a validation set."""
        if fraction <= 0:
            return self
        keep, held = holdout_indices(self.train_labels, fraction, seed, self.name)
        return dataclasses.replace(
            self, train_images=self.train_images[keep], train_labels=self.train_labels[keep],
            val_images=self.train_images[held], val_labels=self.train_labels[held])

    def augmentation(self, cfg: DataConfig) -> tuple[int, bool]:
        """``(crop_padding, flip)`` of the training set after the overrides in ``cfg``."""
        if not (self.augment if cfg.augment is None else cfg.augment):
            return 0, False
        padding = self.crop_padding if cfg.crop_padding is None else cfg.crop_padding
        flip = self.flip if cfg.flip is None else cfg.flip
        return padding, flip

    def capped(self, train_size: int | None, test_size: int | None, seed: int) -> ImageData:
        """At most ``train_size``/``test_size`` samples: a seeded random subset in original order."""
        fields = {}
        for split, size in (("train", train_size), ("test", test_size)):
            keep = subset_indices(getattr(self, f"{split}_labels").shape[0], size, seed)
            if keep is not None:
                fields[f"{split}_images"] = getattr(self, f"{split}_images")[keep]
                fields[f"{split}_labels"] = getattr(self, f"{split}_labels")[keep]
        return dataclasses.replace(self, **fields) if fields else self


@dataclass(frozen=True, eq=False)
class FolderData:
    """A file-backed image classification data set (ImageNet-sized).

    ``train``/``test`` are datasets whose items are ``(image, label)``; the image is a uint8
    ``(C, H, W)`` tensor, normalised with ``mean``/``std`` on the device, or an already
    normalised float tensor, which is used as it is. All augmentation is done by the datasets'
    own transforms (the factory applies ``DataConfig.augment``/``flip`` when building them).
    """

    train: Dataset
    test: Dataset
    num_classes: int
    image_size: int
    mean: Sequence[float]
    std: Sequence[float]
    in_channels: int = 3
    name: str = "custom"
    val: Dataset | None = None

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """The shape of one input sample as the model sees it (the first training sample's)."""
        return tuple(self.train[0][0].shape)

    @property
    def num_train(self) -> int:
        return len(self.train)  # type: ignore[arg-type]

    @property
    def num_test(self) -> int:
        return len(self.test)  # type: ignore[arg-type]

    @property
    def num_val(self) -> int:
        return 0 if self.val is None else len(self.val)  # type: ignore[arg-type]

    def with_validation(self, fraction: float, seed: int) -> FolderData:
        """``fraction`` of the training set (per class when the labels are known) held out."""
        if fraction <= 0:
            return self
        labels = dataset_targets(self.train)
        if labels is None:  # labels unknown without reading every image: a plain random split
            labels = torch.zeros(self.num_train, dtype=torch.long)
        keep, held = holdout_indices(labels, fraction, seed, self.name)
        return dataclasses.replace(self, train=Subset(self.train, keep.tolist()),
                                   val=Subset(self.train, held.tolist()))

    def capped(self, train_size: int | None, test_size: int | None, seed: int) -> FolderData:
        """At most ``train_size``/``test_size`` samples: a seeded random subset in original order."""
        fields = {}
        for split, size in (("train", train_size), ("test", test_size)):
            dataset = getattr(self, split)
            keep = subset_indices(len(dataset), size, seed)
            if keep is not None:
                fields[split] = Subset(dataset, keep.tolist())
        return dataclasses.replace(self, **fields) if fields else self


AnyData = Union[ImageData, FolderData]
DataFactory = Callable[[DataConfig], AnyData]

#: Built-in data sets by name; the modules of :mod:`drive.data` register their factories.
DATASETS: Registry[DataFactory] = Registry("dataset")


def subset_indices(n: int, size: int | None, seed: int) -> torch.Tensor | None:
    """Sorted indices of a seeded random subset of ``size`` out of ``n``; None keeps all."""
    if size is None or size >= n:
        return None
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=generator)[:size].sort().values


def dataset_targets(dataset: Dataset) -> torch.Tensor | None:
    """The labels of a dataset that lists them (``ImageFolder.targets``, subsets of it)."""
    if isinstance(dataset, Subset):
        parent = dataset_targets(dataset.dataset)
        return None if parent is None else parent[torch.as_tensor(dataset.indices, dtype=torch.long)]
    targets = getattr(dataset, "targets", None)
    return None if targets is None else torch.as_tensor(targets, dtype=torch.long)


def holdout_indices(labels: torch.Tensor, fraction: float, seed: int,
                    name: str = "data") -> tuple[torch.Tensor, torch.Tensor]:
    """(kept, held out) sorted indices: per class, ``round(fraction * n)`` samples (at least one)
    chosen with a generator seeded by ``seed``.

    Raises:
        DataError: a class would keep no training sample.
    """
    generator = torch.Generator().manual_seed(seed)
    held = []
    for c in torch.unique(labels).tolist():
        members = (labels == c).nonzero().flatten()
        n = max(1, round(fraction * len(members)))
        if n >= len(members):
            raise DataError(f"data.val_fraction: {fraction} leaves class {c} of {name} with no "
                            f"training sample ({len(members)} in all); use a smaller fraction")
        held.append(members[torch.randperm(len(members), generator=generator)[:n]])
    held_idx = torch.cat(held).sort().values
    mask = torch.ones(len(labels), dtype=torch.bool)
    mask[held_idx] = False
    return mask.nonzero().flatten(), held_idx


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of ``(N, C, ...)`` samples: in [0, 1] units for uint8, in the
    data's own units for float.

    uint8 stats come from a histogram of the 256 values per channel: exact, and no float copy
    of the set.
    """
    if images.is_floating_point():
        per_channel = images.transpose(0, 1).reshape(images.shape[1], -1).double()
        stds = per_channel.std(dim=1, correction=0).clamp(min=1e-3)
        return tuple(per_channel.mean(dim=1).tolist()), tuple(stds.tolist())
    values = torch.arange(256, dtype=torch.float64) / 255
    means, stds = [], []
    for c in range(images.shape[1]):
        counts = torch.bincount(images[:, c].flatten(), minlength=256).double()
        p = counts / counts.sum()
        mean = float((p * values).sum())
        var = float((p * (values - mean) ** 2).sum())
        means.append(mean)
        stds.append(max(var**0.5, 1e-3))  # a constant channel must not divide by zero
    return tuple(means), tuple(stds)
