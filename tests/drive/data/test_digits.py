"""scikit-learn's digits: shapes, scaling, the seeded stratified split."""

import math
from collections import Counter

import pytest
import torch
from sklearn.datasets import load_digits

from drive.config import DataConfig
from drive.data import ImageData, load_dataset


def test_shapes_types_and_scaling():
    data = load_dataset("digits", DataConfig())
    assert isinstance(data, ImageData)
    assert (data.num_classes, data.in_channels, data.image_size) == (10, 1, 8)
    assert data.train_images.dtype == torch.uint8 and data.train_labels.dtype == torch.int64
    assert data.train_images.shape[1:] == (1, 8, 8)
    assert int(data.train_images.max()) == 255 and int(data.train_images.min()) == 0
    assert data.augmentation(DataConfig()) == (0, False)  # flipping digits changes them
    assert data.augmentation(DataConfig(augment=True)) == (1, False)
    assert 0 < data.mean[0] < 1 and 0 < data.std[0] < 1


def test_split_sizes_follow_test_fraction_and_cover_the_set():
    for fraction in (0.2, 0.5):
        data = load_dataset("digits", DataConfig(test_fraction=fraction))
        assert data.num_test == math.ceil(1797 * fraction)
        assert data.num_train + data.num_test == 1797
    # the two parts together are exactly the scaled originals
    originals = torch.from_numpy(load_digits().images).mul(255 / 16).round().to(torch.uint8)
    both = torch.cat([data.train_images, data.test_images])[:, 0]
    assert Counter(map(bytes, both.flatten(1).numpy())) == Counter(map(bytes, originals.flatten(1).numpy()))


def test_split_is_stratified():
    data = load_dataset("digits", DataConfig(test_fraction=0.3))
    total = torch.bincount(torch.cat([data.train_labels, data.test_labels]), minlength=10)
    test = torch.bincount(data.test_labels, minlength=10)
    assert (test - total * 0.3).abs().max() <= 1


def test_split_depends_on_split_seed_only():
    a = load_dataset("digits", DataConfig(split_seed=3))
    b = load_dataset("digits", DataConfig(split_seed=3))
    c = load_dataset("digits", DataConfig(split_seed=4))
    assert torch.equal(a.test_images, b.test_images) and torch.equal(a.train_labels, b.train_labels)
    assert not torch.equal(a.test_images, c.test_images)


def test_mean_and_std_are_those_of_the_train_images():
    data = load_dataset("digits", DataConfig())
    x = data.train_images.double() / 255
    assert data.mean[0] == pytest.approx(x.mean().item(), abs=1e-9)
    assert data.std[0] == pytest.approx(x.std(unbiased=False).item(), abs=1e-9)
