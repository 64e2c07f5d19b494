"""load_dataset: names, user factories by import path, size caps."""

import textwrap

import pytest
import torch

from drive.config import DataConfig
from drive.data import DATASETS, DataError, ImageData, load_dataset, make_loaders

FACTORY_MODULE = """
import torch
from drive.data import ImageData

def factory(cfg):
    images = torch.full((6, 2, 5, 5), cfg.split_seed, dtype=torch.uint8)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    return ImageData(images, labels, images[:3], labels[:3], num_classes=3,
                     mean=(0.5, 0.5), std=(0.25, 0.25))

def not_data(cfg):
    return "nope"
"""


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "my_user_data.py").write_text(textwrap.dedent(FACTORY_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    return "my_user_data"


def test_builtin_names_are_registered():
    assert DATASETS.names() == ["cifar10", "cifar100", "digits", "imagenet", "mnist1d", "synthetic",
                                "tinyimagenet"]


def test_unknown_name_lists_the_allowed_ones():
    with pytest.raises(DataError) as err:
        load_dataset("cifar11", DataConfig())
    message = str(err.value)
    assert message.startswith("dataset:") and "\n" not in message
    for name in DATASETS.names():
        assert name in message


def test_user_factory_by_import_path(user_module):
    data = load_dataset(f"{user_module}:factory", DataConfig(split_seed=7))
    assert isinstance(data, ImageData)
    shape = (data.num_classes, data.in_channels, data.image_size, data.num_train, data.num_test)
    assert shape == (3, 2, 5, 6, 3)
    assert int(data.train_images[0, 0, 0, 0]) == 7  # called with the config
    train, _ = make_loaders(data, DataConfig(), 4, 4, torch.device("cpu"), 0)
    x, y = next(iter(train))
    assert x.shape == (4, 2, 5, 5)
    torch.testing.assert_close(x, torch.full_like(x, (7 / 255 - 0.5) / 0.25))


def test_bad_user_factories(user_module):
    with pytest.raises(DataError, match="expected ImageData or FolderData"):
        load_dataset(f"{user_module}:not_data", DataConfig())
    with pytest.raises(DataError, match="does not name a callable"):
        load_dataset(f"{user_module}:missing", DataConfig())
    with pytest.raises(DataError, match="cannot import module"):
        load_dataset("no_such_module_xyz:factory", DataConfig())


def test_train_and_test_size_cap_a_seeded_subset_in_order():
    full = load_dataset("digits", DataConfig())
    capped = load_dataset("digits", DataConfig(train_size=100, test_size=30))
    assert (capped.num_train, capped.num_test) == (100, 30)
    again = load_dataset("digits", DataConfig(train_size=100, test_size=30))
    assert torch.equal(capped.train_images, again.train_images)
    # every kept sample is one of the full set, kept in the original order
    flat = full.train_images.flatten(1)
    positions = []
    for image in capped.train_images.flatten(1):
        matches = (flat == image).all(dim=1).nonzero().flatten().tolist()
        assert matches
        positions.append(matches[0])
    assert positions != list(range(100))  # a random subset, not the first 100
    assert load_dataset("digits", DataConfig(train_size=10_000)).num_train == full.num_train


def test_folder_data_from_a_user_dataset_uint8_or_float():
    from torch.utils.data import TensorDataset

    from drive.data import FolderData

    images = torch.randint(0, 256, (10, 3, 4, 4), dtype=torch.uint8)
    labels = torch.arange(10) % 2
    for stored, expected in ((images, (images / 255 - 0.5) / 0.5), (images.double(), images.float())):
        data = FolderData(TensorDataset(stored, labels), TensorDataset(stored, labels), num_classes=2,
                          image_size=4, mean=(0.5,) * 3, std=(0.5,) * 3)
        _, test = make_loaders(data, DataConfig(num_workers=0), 4, 4, torch.device("cpu"), 0)
        x = torch.cat([x for x, _ in test])
        assert x.dtype == torch.float32
        torch.testing.assert_close(x, expected.float(), rtol=0, atol=1e-5)
    capped = data.capped(3, None, seed=0)
    assert (capped.num_train, capped.num_test) == (3, 10)
