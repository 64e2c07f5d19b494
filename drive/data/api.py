"""The entry points the experiment code uses: load and serve a data set."""

from __future__ import annotations

import torch

from drive.config import DataConfig
from drive.data.args import check_args
from drive.data.augment import Normalizer
from drive.data.base import DATASETS, AnyData, DataError, FolderData, ImageData
from drive.data.folder_loader import FolderLoader
from drive.data.jpeg import encoded, resolve_decode
from drive.data.loader import ImageLoader
from drive.registry import RegistryError

Loader = ImageLoader | FolderLoader


def load_dataset(name: str, cfg: DataConfig | None = None) -> AnyData:
    """Load a data set by registered name or import path ``package.module:factory``.

    The factory is called as ``factory(cfg)``, after ``cfg.args`` is checked against its options
    (:func:`drive.data.args.check_args`). ``cfg.train_size``/``cfg.test_size``, when set,
    then cap the sets at a random subset (seeded by ``cfg.split_seed``, kept in the original
    order); for ``synthetic`` they are the generated sizes, so the cap changes nothing.

    Raises:
        DataError: unknown name, bad ``data.args``, missing or corrupt files, a factory
            returning something else.
    """
    cfg = cfg or DataConfig()
    try:
        factory = DATASETS.get(name)
    except RegistryError as e:
        raise DataError(str(e)) from None
    check_args(name, factory, cfg)
    data = factory(cfg)
    if not isinstance(data, (ImageData, FolderData)):
        raise DataError(f"dataset: {name!r} returned {type(data).__name__}, expected ImageData or FolderData")
    return data.capped(cfg.train_size, cfg.test_size, cfg.split_seed)


def make_loaders(data: AnyData, cfg: DataConfig, batch_size: int, eval_batch_size: int,
                 device: torch.device | str, seed: int, channels_last: bool = False,
                 dtype: torch.dtype = torch.float32) -> tuple[Loader, Loader]:
    """The training loader (shuffled, augmented) and the test loader (stored order, plain).

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
        mode = resolve_decode(cfg.decode, device)
        out = []
        for dataset, size, shuffle in ((data.train, batch_size, True), (data.test, eval_batch_size, False)):
            served = encoded(dataset, mode, device)  # JPEG folders decoded by torchvision
            dataset, collate, on_batch = served if served is not None else (dataset, None, None)
            out.append(FolderLoader(dataset, normalizer, size, device, seed, shuffle, cfg.num_workers,
                                    collate_fn=collate, on_batch=on_batch))
        return out[0], out[1]
    padding, flip = data.augmentation(cfg)
    side = min(data.train_images.shape[2:])
    if cfg.pad_mode == "reflect" and padding >= side:
        raise DataError(f"data.crop_padding: must be smaller than the sample side ({side}) "
                        f"with pad_mode reflect, got {padding}")
    train = ImageLoader(data.train_images, data.train_labels, normalizer, batch_size, device, seed,
                        shuffle=True, crop_padding=padding, flip=flip, pad_mode=cfg.pad_mode,
                        on_device=cfg.on_device)
    test = ImageLoader(data.test_images, data.test_labels, normalizer, eval_batch_size, device, seed,
                       on_device=cfg.on_device)
    return train, test
