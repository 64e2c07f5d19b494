"""A seeded synthetic image set that a small CNN learns well above chance, for any shape.

Each class has one smooth random template (low-resolution noise upsampled bilinearly); an image
is its class template plus Gaussian pixel noise, quantised to uint8. Everything is drawn from
``data.split_seed``, so the same config gives the same images. Shape and size come from
``data.image_size`` (32), ``data.num_classes`` (10), ``data.channels`` (3),
``data.train_size`` (1024) and ``data.test_size`` (256). Not augmented by default; with
``data.augment: true``, crop padding image_size // 8 and flips.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from drive.config import DataConfig
from drive.data.base import DATASETS, ImageData, channel_stats

NOISE_STD = 0.3  # per-pixel noise in [0, 1] units; templates differ by about 0.2 per pixel
CHUNK = 4096  # images generated at a time, to bound the float32 working memory


@DATASETS.register("synthetic")
def synthetic(cfg: DataConfig) -> ImageData:
    """The synthetic set as ImageData: uint8 ``(N, channels, image_size, image_size)``."""
    size = cfg.image_size or 32
    num_classes = cfg.num_classes or 10
    channels = cfg.channels or 3
    generator = torch.Generator().manual_seed(cfg.split_seed)
    coarse = torch.rand(num_classes, channels, 4, 4, generator=generator)
    templates = 0.25 + 0.5 * F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    train_images, train_labels = _sample(templates, cfg.train_size or 1024, generator)
    test_images, test_labels = _sample(templates, cfg.test_size or 256, generator)
    mean, std = channel_stats(train_images)
    return ImageData(train_images, train_labels, test_images, test_labels, num_classes=num_classes,
                     mean=mean, std=std, augment=False, crop_padding=max(1, size // 8), flip=True,
                     name="synthetic")


def _sample(templates: torch.Tensor, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` noisy images of uniformly drawn classes, and their labels."""
    labels = torch.randint(0, templates.shape[0], (n,), generator=generator)
    images = torch.empty(n, *templates.shape[1:], dtype=torch.uint8)
    for start in range(0, n, CHUNK):
        y = labels[start:start + CHUNK]
        noise = torch.randn(len(y), *templates.shape[1:], generator=generator)
        x = (templates[y] + NOISE_STD * noise).clamp_(0, 1)
        images[start:start + CHUNK] = x.mul_(255).round_().to(torch.uint8)
    return images, labels
