"""The entry points the experiment code uses: load and serve a data set."""

from __future__ import annotations

from typing import Any

import torch

from drive.config import DataConfig, TrainConfig
from drive.data.args import check_args
from drive.data.augment import Normalizer
from drive.data.base import DATASETS, AnyData, FolderData, ImageData
from drive.data.folder_loader import FolderLoader
from drive.data.jpeg import encoded, resolve_decode
from drive.data.loader import ImageLoader
from drive.errors import DataError, RegistryError, one_line

Loader = ImageLoader | FolderLoader


def load_dataset(name: str, cfg: DataConfig | None = None) -> AnyData:
    """Load a data set by registered name or import path ``package.module:factory``.

    The factory is called as ``factory(cfg)``, after ``cfg.args`` is checked against its options
    (:func:`drive.data.args.check_args`). ``cfg.train_size``/``cfg.test_size``, when set,
    then cap the sets at a random subset (seeded by ``cfg.split_seed``, kept in the original
    order); for ``synthetic`` they are the generated sizes, so the cap changes nothing. Then
    ``cfg.val_fraction`` of the training set (per class, seeded by ``cfg.split_seed``) becomes
    the validation set, which model selection uses instead of the test set.

    Raises:
        DataError: unknown name, bad ``data.args``, missing or corrupt files, a factory that
            raises or returns something else, a split that leaves a set or a class empty.
    """
    cfg = cfg or DataConfig()
    try:
        factory = DATASETS.get(name)
    except RegistryError as e:
        raise DataError(str(e)) from None
    check_args(name, factory, cfg)
    try:
        data = factory(cfg)
    except DataError:
        raise
    except Exception as e:
        if ":" not in name:  # a built-in's failure is a bug: its traceback helps
            raise
        raise DataError(f"dataset: {name!r} failed to load ({one_line(e)})") from None
    if not isinstance(data, (ImageData, FolderData)):
        raise DataError(f"dataset: {name!r} returned {type(data).__name__}, expected ImageData or FolderData")
    capped = data.capped(cfg.train_size, cfg.test_size, cfg.split_seed)
    _check_classes_kept(data, capped, cfg.train_size, name)
    data = capped
    data = data.with_validation(cfg.val_fraction, cfg.split_seed)
    for split, n in (("training", data.num_train), ("test", data.num_test)):
        if n == 0:
            raise DataError(f"dataset: {name!r} has an empty {split} set")
    return data


def _check_classes_kept(full: AnyData, capped: AnyData, train_size: int | None, name: str) -> None:
    """A ``data.train_size`` cap must leave every class some training sample (as the splits do)."""
    if train_size is None or not isinstance(full, ImageData) or capped is full:
        return
    missing = sorted(set(full.train_labels.unique().tolist()) - set(capped.train_labels.unique().tolist()))
    if missing:
        shown = ", ".join(map(str, missing[:5])) + (", ..." if len(missing) > 5 else "")
        raise DataError(f"data.train_size: {train_size} leaves {len(missing)} class(es) of {name} "
                        f"({shown}) with no training sample; use a larger cap or none")


def check_epoch_batches(data: AnyData, dataset: str, cfg: DataConfig, train: TrainConfig) -> None:
    """Refuse a training set (after the validation split) smaller than one batch.

    An epoch of it would be a single partial batch (the whole set, not ``train.batch_size``
    samples), or no step at all with ``train.drop_last``: a run that "finishes" at chance
    accuracy. Whatever makes the set small (``train.batch_size``, ``data.val_fraction``,
    ``data.train_size``, ``data.test_fraction``) gets this one line.

    Raises:
        DataError: ``train.batch_size: ...``, naming the training set's size, what the
            validation split holds out and what would work.
    """
    n, batch = data.num_train, train.batch_size
    if n >= batch:
        return
    where = f"the {n} training samples of {dataset}"
    if cfg.train_size is not None:
        where += f" (data.train_size {cfg.train_size})"
    if data.num_val:
        where += f" left after data.val_fraction {cfg.val_fraction:g} holds out {data.num_val}"
    empty = ("with train.drop_last every epoch would be empty (0 steps)" if train.drop_last else
             f"an epoch would be a single step on all {n} instead of batches of {batch}")
    fix = f"use train.batch_size <= {n}" + (" or a smaller data.val_fraction" if data.num_val else "")
    raise DataError(f"train.batch_size: {batch} is more than {where}: {empty}; {fix}")


def make_loaders(data: AnyData, cfg: DataConfig, batch_size: int, eval_batch_size: int,
                 device: torch.device | str, seed: int, channels_last: bool = False,
                 dtype: torch.dtype = torch.float32, drop_last: bool = False) -> tuple[Loader, Loader]:
    """The training loader (shuffled, augmented; ``drop_last`` drops each epoch's last partial
    batch) and the test loader (stored order, plain).

    Both yield ``(x, y)`` on ``device``: x normalised ``(N, C, H, W)`` (channels_last memory
    format if asked) or ``(N, C, L)`` of ``dtype`` (float32, or bf16 for training under bf16
    autocast), y int64 ``(N,)``. ``train_loader.set_epoch(e)`` selects the epoch;
    order and augmentation are a pure function of ``(seed, e)``.

    Raises:
        DataError: a crop padding the images are too small for with ``pad_mode: reflect``.
    """
    device = torch.device(device)
    normalizer = Normalizer(data.mean, data.std, device, channels_last,
                            normalize_float=isinstance(data, ImageData), dtype=dtype)
    if isinstance(data, FolderData):
        return (_folder_loader(data.train, normalizer, batch_size, True, cfg, device, seed, drop_last),
                _folder_loader(data.test, normalizer, eval_batch_size, False, cfg, device, seed))
    padding, flip = data.augmentation(cfg)
    side = min(data.train_images.shape[2:])
    if cfg.pad_mode == "reflect" and padding >= side:
        raise DataError(f"data.crop_padding: must be smaller than the sample side ({side}) "
                        f"with pad_mode reflect, got {padding}")
    train = ImageLoader(data.train_images, data.train_labels, normalizer, batch_size, device, seed,
                        shuffle=True, crop_padding=padding, flip=flip, pad_mode=cfg.pad_mode,
                        on_device=cfg.on_device, drop_last=drop_last)
    test = ImageLoader(data.test_images, data.test_labels, normalizer, eval_batch_size, device, seed,
                       on_device=cfg.on_device)
    return train, test


def make_val_loader(data: AnyData, cfg: DataConfig, eval_batch_size: int,
                    device: torch.device | str, seed: int, channels_last: bool = False,
                    dtype: torch.dtype = torch.float32) -> Loader | None:
    """The validation loader (stored order, plain), or None when there is no validation set."""
    device = torch.device(device)
    normalizer = Normalizer(data.mean, data.std, device, channels_last,
                            normalize_float=isinstance(data, ImageData), dtype=dtype)
    if isinstance(data, FolderData):
        if data.val is None:
            return None
        return _folder_loader(data.val, normalizer, eval_batch_size, False, cfg, device, seed)
    if data.val_images is None:
        return None
    return ImageLoader(data.val_images, data.val_labels, normalizer, eval_batch_size, device, seed,
                       on_device=cfg.on_device)


def _folder_loader(dataset: Any, normalizer: Normalizer, batch_size: int, shuffle: bool, cfg: DataConfig,
                   device: torch.device, seed: int, drop_last: bool = False) -> FolderLoader:
    """A FolderLoader; JPEG folders decoded as ``data.decode`` says (:mod:`drive.data.jpeg`)."""
    served = encoded(dataset, resolve_decode(cfg.decode, device), device)
    dataset, collate, on_batch = served if served is not None else (dataset, None, None)
    return FolderLoader(dataset, normalizer, batch_size, device, seed, shuffle, cfg.num_workers,
                        collate_fn=collate, on_batch=on_batch, drop_last=drop_last)
