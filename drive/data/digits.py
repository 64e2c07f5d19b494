"""scikit-learn's handwritten digits: 1797 8x8 grey images of 0-9, shipped with the package.

The embedded default data set (no download, loads in milliseconds). The 0..16 intensities are
scaled to 0..255. Train and test come from a stratified split seeded with ``data.split_seed``,
with ``data.test_fraction`` of the images in the test set. Not augmented by default (a flipped
digit is another digit or none); with ``data.augment: true`` the crop padding is 1 pixel.
"""

from __future__ import annotations

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from drive.config import DataConfig
from drive.data.base import DATASETS, ImageData, channel_stats
from drive.errors import DataError


@DATASETS.register("digits")
def digits(cfg: DataConfig) -> ImageData:
    """The digits as ImageData: uint8 ``(N, 1, 8, 8)``, 10 classes."""
    bunch = load_digits()
    images = torch.from_numpy(bunch.images).mul(255 / 16).round().to(torch.uint8).unsqueeze(1)
    labels = torch.from_numpy(bunch.target).long()
    try:
        train_idx, test_idx = train_test_split(torch.arange(len(labels)).numpy(), test_size=cfg.test_fraction,
                                               random_state=cfg.split_seed, stratify=bunch.target)
    except ValueError as e:  # too few images left on one side for every class
        raise DataError(f"data.test_fraction: {cfg.test_fraction} cannot split the {len(labels)} "
                        f"digits with every class in both sets ({e})") from None
    train_idx, test_idx = torch.from_numpy(train_idx), torch.from_numpy(test_idx)
    mean, std = channel_stats(images[train_idx])
    return ImageData(images[train_idx], labels[train_idx], images[test_idx], labels[test_idx],
                     num_classes=10, mean=mean, std=std, augment=False, crop_padding=1, flip=False,
                     name="digits")
