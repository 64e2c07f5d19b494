"""The synthetic set: seeded, shaped as asked, learnable."""

import torch

from drive.config import DataConfig
from drive.data import load_dataset


def test_defaults():
    data = load_dataset("synthetic", DataConfig())
    assert (data.num_classes, data.in_channels, data.image_size, data.num_train, data.num_test) == \
        (10, 3, 32, 1024, 256)
    assert data.train_images.dtype == torch.uint8


def test_requested_shape_and_sizes():
    cfg = DataConfig(image_size=12, num_classes=4, channels=2, train_size=50, test_size=20)
    data = load_dataset("synthetic", cfg)
    assert data.train_images.shape == (50, 2, 12, 12) and data.test_images.shape == (20, 2, 12, 12)
    assert data.num_classes == 4 and len(data.mean) == 2
    assert set(data.train_labels.tolist()) == {0, 1, 2, 3}


def test_deterministic_for_a_seed():
    cfg = DataConfig(image_size=8, train_size=64, test_size=16)
    a, b = load_dataset("synthetic", cfg), load_dataset("synthetic", cfg)
    c = load_dataset("synthetic", cfg.model_copy(update={"split_seed": 1}))
    assert torch.equal(a.train_images, b.train_images) and torch.equal(a.test_labels, b.test_labels)
    assert not torch.equal(a.train_images, c.train_images)


def test_learnable_by_nearest_class_mean():
    data = load_dataset("synthetic", DataConfig(image_size=16, train_size=500, test_size=200))
    x, xt = data.train_images.flatten(1).float(), data.test_images.flatten(1).float()
    means = torch.stack([x[data.train_labels == k].mean(0) for k in range(data.num_classes)])
    predicted = torch.cdist(xt, means).argmin(1)
    accuracy = (predicted == data.test_labels).float().mean().item()
    assert accuracy > 0.6  # chance is 0.1
