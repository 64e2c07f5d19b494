"""MNIST-1D (drive/data/mnist1d.py): the package's generator and defaults, no download, the cache
under data.root, data.args, and the 1-D samples through the loader."""

from __future__ import annotations

import random
import warnings

import numpy as np
import pytest
import torch
from mnist1d.data import get_dataset_args, make_dataset

import drive.data.cache as cache
import drive.data.mnist1d as m1d
from drive.config import DataConfig
from drive.data import load_dataset, make_loaders
from drive.errors import DataError

SMALL = {"num_samples": 200}  # 160 train, 40 test signals: generated in a few milliseconds


def config(root, **args) -> DataConfig:
    return DataConfig(root=str(root), args=args)


@pytest.fixture
def no_network(monkeypatch):
    """Any download attempt (the package's get_dataset uses requests.get) fails the test."""
    import requests

    def refuse(*args, **kwargs):
        raise AssertionError("MNIST-1D must be generated, never downloaded")

    monkeypatch.setattr(requests, "get", refuse)


def cache_files(root):
    return sorted((root / m1d.FOLDER).glob("*"))


def test_schema_defaults_are_the_packages():
    ours = m1d.Mnist1dArgs().model_dump()
    ours["padding"] = list(ours["padding"])
    theirs = get_dataset_args(as_dict=True)
    assert theirs.pop("url").startswith("http")  # the pickle download is the one argument left out
    assert ours == theirs


def test_default_set_is_the_packages_generator_output(tmp_path, no_network):
    data = load_dataset("mnist1d", DataConfig(root=str(tmp_path)))
    reference = make_dataset(get_dataset_args())
    assert (data.num_train, data.num_test, data.num_classes, data.sample_shape) == (4000, 1000, 10, (1, 40))
    assert data.train_images.dtype == torch.float32 and data.train_labels.dtype == torch.int64
    assert torch.equal(data.train_images[:, 0], torch.from_numpy(reference["x"]).float())
    assert torch.equal(data.test_images[:, 0], torch.from_numpy(reference["x_test"]).float())
    assert torch.equal(data.train_labels, torch.from_numpy(reference["y"]).long())
    assert torch.equal(data.test_labels, torch.from_numpy(reference["y_test"]).long())
    assert torch.bincount(data.train_labels, minlength=10).min() > 300  # every class present
    # normalisation stats of the (already standardised) train set, in the data's own units
    torch.testing.assert_close(torch.tensor([*data.mean, *data.std]),
                               torch.tensor([data.train_images.mean().item(), data.train_images.std().item()]),
                               atol=1e-3, rtol=0)
    assert data.augmentation(DataConfig()) == (0, False)  # none by default, as in the paper
    assert data.augmentation(DataConfig(augment=True)) == (4, False)


def test_generation_leaves_the_global_random_state_alone(tmp_path):
    np.random.seed(123)
    random.seed(123)
    expected = (np.random.rand(), random.random())
    np.random.seed(123)
    random.seed(123)
    load_dataset("mnist1d", config(tmp_path, **SMALL))
    assert (np.random.rand(), random.random()) == expected


def test_generated_once_then_read_from_the_cache(tmp_path, monkeypatch, no_network):
    first = load_dataset("mnist1d", config(tmp_path, **SMALL))
    [path] = cache_files(tmp_path)
    assert path.suffix == ".pt"
    saved = torch.load(path, weights_only=True)
    assert saved["key"]["args"]["num_samples"] == 200 and saved["key"]["mnist1d"] == m1d.package_version()

    def never(args):
        raise AssertionError("generated again although cached")

    monkeypatch.setattr(m1d, "generate", never)
    again = load_dataset("mnist1d", config(tmp_path, **SMALL))
    assert torch.equal(again.train_images, first.train_images)
    assert torch.equal(again.test_labels, first.test_labels)
    with pytest.raises(AssertionError, match="generated again"):  # other arguments: another file
        load_dataset("mnist1d", config(tmp_path, **SMALL, seed=7))


def test_cache_is_keyed_by_the_arguments(tmp_path):
    a = load_dataset("mnist1d", config(tmp_path, **SMALL))
    b = load_dataset("mnist1d", config(tmp_path, **SMALL, seed=7))
    c = load_dataset("mnist1d", config(tmp_path, num_samples=300, final_seq_length=24))
    assert len(cache_files(tmp_path)) == 3
    assert not torch.equal(a.train_images, b.train_images)  # the seed changes the signals
    assert (c.num_train, c.num_test, c.sample_shape) == (240, 60, (1, 24))
    # the explicit default is the same set (and the same file) as the implicit one
    assert torch.equal(load_dataset("mnist1d", config(tmp_path, **SMALL, seed=42)).train_images,
                       a.train_images)
    assert len(cache_files(tmp_path)) == 3


def test_unreadable_cache_is_rebuilt(tmp_path):
    first = load_dataset("mnist1d", config(tmp_path, **SMALL))
    [path] = cache_files(tmp_path)
    path.write_bytes(b"not a torch file")
    with pytest.warns(UserWarning, match="unreadable"):
        again = load_dataset("mnist1d", config(tmp_path, **SMALL))
    assert torch.equal(again.train_images, first.train_images)
    assert torch.load(path, weights_only=True)["key"]["args"]["num_samples"] == 200


def test_a_failed_write_leaves_no_partial_cache(tmp_path, monkeypatch):
    """The file is written under a temporary name and moved into place: a write that fails
    half-way leaves neither a truncated cache nor the temporary file."""
    real_save = torch.save

    def half_save(obj, path):
        real_save(obj, path)
        with open(path, "r+b") as f:
            f.truncate(100)
        raise OSError("disk full")

    monkeypatch.setattr(cache.torch, "save", half_save)
    with pytest.warns(UserWarning, match="cannot write the MNIST-1D cache"):
        data = load_dataset("mnist1d", config(tmp_path, **SMALL))
    assert data.num_train == 160 and cache_files(tmp_path) == []
    monkeypatch.setattr(cache.torch, "save", real_save)
    load_dataset("mnist1d", config(tmp_path, **SMALL))
    assert [p.name.endswith(".pt") for p in cache_files(tmp_path)] == [True]


def test_unwritable_root_still_gives_the_data(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.warns(UserWarning, match="cannot write"):
        assert load_dataset("mnist1d", config(blocker, **SMALL)).num_test == 40


@pytest.mark.parametrize("args, line", [
    ({"num_sample": 100}, "data.args.num_sample: unknown option of dataset mnist1d; allowed: num_samples, "),
    ({"num_samples": 5}, "data.args.num_samples: Input should be greater than or equal to 10"),
    ({"padding": [9, 3]}, "data.args.padding: must be [low, high] with 0 <= low <= high, got [9, 3]"),
    ({"train_split": 1.5}, "data.args.train_split: Input should be less than 1"),
    ({"num_samples": 20, "train_split": 0.01}, "data.args.train_split: 0.01 of 20 signals leaves an empty"),
    ({"seed": "abc"}, "data.args.seed: Input should be a valid integer"),
])
def test_bad_args_are_one_line_naming_the_key(tmp_path, args, line):
    with pytest.raises(DataError) as err:
        load_dataset("mnist1d", config(tmp_path, **args))
    assert str(err.value).startswith(line) and "\n" not in str(err.value)
    assert not (tmp_path / m1d.FOLDER).exists()  # nothing generated or written


def test_float_signals_through_the_loader(tmp_path):
    data = load_dataset("mnist1d", config(tmp_path, **SMALL))
    stored = data.train_images.clone()
    train, test = make_loaders(data, DataConfig(), 32, 64, torch.device("cpu"), 0, channels_last=True)
    x, y = next(iter(test))
    assert x.shape == (40, 1, 40) and x.dtype == torch.float32
    expected = (data.test_images - data.mean[0]) / data.std[0]
    torch.testing.assert_close(x, expected)
    train.set_epoch(3)
    batches = list(train)
    assert sum(len(b[1]) for b in batches) == 160
    assert torch.equal(data.train_images, stored)  # normalising never writes into the data set


def test_prepare_and_cli_use_the_cache(tmp_path, capsys):
    """`drive-sweep prune` on MNIST-1D; bad data.args stop it with one line and exit 2."""
    from sweeps.cli import main

    base = ["prune", "--quiet", "--device", "cpu", "--dataset", "mnist1d", "--model", "mnist1d_cnn",
            "--set", f"data.root={tmp_path}"]
    out = tmp_path / "m.json"
    assert main([*base, "--set", "data.args.foo=1", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"drive-sweep: error: data.args.foo: unknown option of dataset mnist1d; allowed: "
                   f"{', '.join(m1d.Mnist1dArgs.model_fields)}"]
    assert not out.exists()
    assert main([*base, "--method", "synflow", "--epochs", "1", "--set", "data.args.num_samples=200",
                 "--out", str(out)]) == 0
    assert len(cache_files(tmp_path)) == 1 and out.exists()


def test_no_warning_on_a_normal_load(tmp_path):
    load_dataset("mnist1d", config(tmp_path, **SMALL))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_dataset("mnist1d", config(tmp_path, **SMALL))
