"""Tiny ImageNet (200 classes of 64x64 RGB images) as in-memory ImageData.

The official layout under ``data.root/tiny-imagenet-200``: ``wnids.txt`` (the classes, in label
order), ``train/<wnid>/images/*.JPEG`` and ``val/images/*.JPEG`` labelled by
``val/val_annotations.txt``; the validation set is the test set. ``data.download: true``
fetches and unzips the official archive with torchvision.

Decoding the 110k JPEGs takes minutes, so the decoded uint8 tensors are cached in one file
next to the data (:data:`CACHE_NAME`), written atomically and rebuilt when missing, unreadable
or made for another ``wnids.txt``; delete it after changing the images. Default augmentation:
random crop with 8 pixels of padding and horizontal flip.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.datasets.utils import download_and_extract_archive

from drive.config import DataConfig
from drive.data.base import DATASETS, ImageData
from drive.data.cache import load_or_build
from drive.errors import DataError

URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
MD5 = "90528d7ca1a48142e341f4ef8d21d0de"
FOLDER = "tiny-imagenet-200"
CACHE_NAME = "drive_uint8_cache.pt"
MEAN, STD = (0.4802, 0.4481, 0.3975), (0.2302, 0.2265, 0.2262)


@DATASETS.register("tinyimagenet")
def tinyimagenet(cfg: DataConfig) -> ImageData:
    """Tiny ImageNet: 100000 train and 10000 validation (test) images, 200 classes."""
    root = Path(cfg.root).expanduser()
    folder = root / FOLDER
    if not (folder / "wnids.txt").is_file():
        if not cfg.download:
            raise DataError(f"data.root: Tiny ImageNet not found at {folder} (no wnids.txt); set "
                            f"data.download: true to fetch it from {URL}, or unzip that archive in {root}")
        try:
            download_and_extract_archive(URL, str(root), filename=f"{FOLDER}.zip", md5=MD5)
        except (OSError, RuntimeError) as e:
            raise DataError(f"data.download: could not fetch Tiny ImageNet from {URL} into {root} "
                            f"({e}); download and unzip it there by hand") from None
    data = load_cached(folder)
    return ImageData(data["train_images"], data["train_labels"], data["test_images"], data["test_labels"],
                     num_classes=len(data["wnids"]), mean=MEAN, std=STD, augment=True, crop_padding=8,
                     flip=True, name="tinyimagenet")


def load_cached(folder: Path) -> dict:
    """The decoded tensors (and ``wnids``) from the cache file, decoding the images if needed."""
    wnids = (folder / "wnids.txt").read_text().split()
    return load_or_build(folder / CACHE_NAME, lambda data: data.get("wnids") == wnids,
                         lambda: decode(folder, wnids), "Tiny ImageNet")


def decode(folder: Path, wnids: list[str]) -> dict:
    """Read the train and validation images and labels of the official layout."""
    label_of = {wnid: i for i, wnid in enumerate(wnids)}
    train_paths, train_labels = [], []
    for wnid in wnids:
        images = folder / "train" / wnid / "images"
        if not images.is_dir():
            raise DataError(f"data.root: Tiny ImageNet at {folder} is incomplete: {images} is missing")
        paths = sorted(images.glob("*.JPEG"))
        train_paths += paths
        train_labels += [label_of[wnid]] * len(paths)
    test_paths, test_labels = [], []
    annotations = folder / "val" / "val_annotations.txt"
    if not annotations.is_file():
        raise DataError(f"data.root: Tiny ImageNet at {folder} is incomplete: {annotations} is missing")
    for line in annotations.read_text().splitlines():
        fields = line.split("\t")
        if len(fields) < 2 or fields[1] not in label_of:
            raise DataError(f"data.root: bad line in {annotations} (expected file name, wnid of wnids.txt, "
                            f"box): {line!r}")
        test_paths.append(folder / "val" / "images" / fields[0])
        test_labels.append(label_of[fields[1]])
    return {"wnids": wnids,
            "train_images": read_images(train_paths), "train_labels": torch.tensor(train_labels),
            "test_images": read_images(test_paths), "test_labels": torch.tensor(test_labels)}


def read_images(paths: list[Path]) -> torch.Tensor:
    """Decode same-sized images (as RGB) into one uint8 ``(N, 3, H, W)`` tensor, using threads
    (Pillow releases the GIL while decoding)."""
    if not paths:
        raise DataError("data.root: Tiny ImageNet has no images where the layout expects them")
    out = None
    with ThreadPoolExecutor(max_workers=min(16, os.cpu_count() or 1)) as pool:
        for i, (path, array) in enumerate(zip(paths, pool.map(_read_rgb, paths))):
            if out is None:
                out = np.empty((len(paths), *array.shape), dtype=np.uint8)
            if array.shape != out.shape[1:]:
                raise DataError(f"data.root: {path} is {array.shape[1]}x{array.shape[0]}, "
                                f"expected {out.shape[2]}x{out.shape[1]} like the other images")
            out[i] = array
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def _read_rgb(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except OSError as e:  # missing file or not an image
        raise DataError(f"data.root: cannot read image {path} ({e})") from None
