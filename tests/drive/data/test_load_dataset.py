"""load_dataset: names, user factories by import path, size caps."""

import textwrap

import pytest
import torch

from drive.config import DataConfig
from drive.data import DATASETS, ImageData, load_dataset, make_loaders
from drive.errors import DataError

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


def test_validation_split_is_stratified_seeded_and_disjoint():
    full = load_dataset("digits", DataConfig())
    data = load_dataset("digits", DataConfig(val_fraction=0.1))
    assert data.num_train + data.num_val == full.num_train and data.num_test == full.num_test
    assert torch.equal(data.test_labels, full.test_labels)  # the test set is untouched
    per_class = torch.bincount(data.val_labels, minlength=10)
    expected = torch.bincount(full.train_labels, minlength=10).float().mul(0.1).round()
    assert torch.equal(per_class.float(), expected.clamp(min=1))
    # disjoint and complete: every training image lands in exactly one of the two sets
    joined = torch.cat([data.train_images, data.val_images]).flatten(1)
    assert torch.unique(joined, dim=0).shape[0] == torch.unique(full.train_images.flatten(1), dim=0).shape[0]
    again = load_dataset("digits", DataConfig(val_fraction=0.1))
    other = load_dataset("digits", DataConfig(val_fraction=0.1, split_seed=1))
    assert torch.equal(again.val_images, data.val_images)
    assert not torch.equal(other.val_labels, data.val_labels)
    assert load_dataset("digits", DataConfig()).val_images is None


def test_folder_data_holds_out_a_validation_subset(tmp_path):
    from torch.utils.data import TensorDataset

    from drive.data import FolderData
    from drive.data.api import make_val_loader

    class Labelled(TensorDataset):
        targets = [0, 1] * 10

    x = torch.zeros(20, 3, 4, 4, dtype=torch.uint8)
    ds = Labelled(x, torch.tensor(Labelled.targets))
    data = FolderData(ds, ds, num_classes=2, image_size=4, mean=(0.5,) * 3, std=(0.2,) * 3)
    split = data.with_validation(0.2, 0)
    assert (split.num_train, split.num_val) == (16, 4)
    assert sorted(ds.targets[i] for i in split.val.indices) == [0, 0, 1, 1]
    assert make_val_loader(split, DataConfig(num_workers=0), 4, "cpu", 0) is not None
    assert make_val_loader(data, DataConfig(num_workers=0), 4, "cpu", 0) is None


def test_a_factory_that_raises_is_one_line(user_module, tmp_path):
    (tmp_path / "my_user_data.py").write_text("def boom(cfg):\n    raise KeyError('labels.csv')\n")
    import importlib
    import sys

    sys.modules.pop("my_user_data", None)
    importlib.invalidate_caches()
    with pytest.raises(DataError, match=r"^dataset: 'my_user_data:boom' failed to load \(KeyError: 'labels.csv'\)$"):
        load_dataset("my_user_data:boom")


@pytest.mark.parametrize("field,value", [("test_fraction", 0.999), ("val_fraction", 0.9995)])
def test_a_split_that_empties_a_class_is_one_line(field, value):
    with pytest.raises(DataError, match=f"^data.{field}: {value} "):
        load_dataset("digits", DataConfig(**{field: value}))
