"""CIFAR-10/100 from tiny files in the real pickle format (no network)."""

import pickle
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
import torchvision.datasets.cifar

from drive.config import DataConfig
from drive.data import DataError, load_dataset

PER_FILE = 10


def write_cifar(root: Path, hundred: bool = False, seed: int = 0) -> dict:
    """Write a tiny CIFAR-10 (5 train batches + test) or CIFAR-100 (train + test) in the pickle
    format torchvision reads; return the CHW images and labels written, per split."""
    rng = np.random.default_rng(seed)
    folder = root / ("cifar-100-python" if hundred else "cifar-10-batches-py")
    folder.mkdir(parents=True)
    classes = 100 if hundred else 10
    files = {"train": ["train"], "test": ["test"]} if hundred else \
        {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
    written = {}
    for split, names in files.items():
        images, labels = [], []
        for name in names:
            count = PER_FILE * (5 if hundred and split == "train" else 1)
            chw = rng.integers(0, 256, (count, 3, 32, 32), dtype=np.uint8)
            y = rng.integers(0, classes, count).tolist()
            entry = {"data": chw.reshape(count, 3072), "fine_labels" if hundred else "labels": y}
            if hundred:
                entry["coarse_labels"] = [label // 5 for label in y]
            (folder / name).write_bytes(pickle.dumps(entry))
            images.append(chw)
            labels += y
        written[split] = (torch.from_numpy(np.concatenate(images)), torch.tensor(labels))
    meta = {"fine_label_names": [f"c{i}" for i in range(100)]} if hundred else \
        {"label_names": [f"c{i}" for i in range(10)]}
    (folder / ("meta" if hundred else "batches.meta")).write_bytes(pickle.dumps(meta))
    return written


@pytest.mark.parametrize("name, hundred", [("cifar10", False), ("cifar100", True)])
def test_round_trip(tmp_path, name, hundred):
    written = write_cifar(tmp_path, hundred)
    data = load_dataset(name, DataConfig(root=str(tmp_path)))
    assert (data.num_classes, data.in_channels, data.image_size) == (100 if hundred else 10, 3, 32)
    assert (data.num_train, data.num_test) == (5 * PER_FILE, PER_FILE)
    assert torch.equal(data.train_images, written["train"][0])
    assert torch.equal(data.train_labels, written["train"][1])
    assert torch.equal(data.test_images, written["test"][0])
    assert torch.equal(data.test_labels, written["test"][1])
    assert data.train_images.is_contiguous()
    assert data.augmentation(DataConfig()) == (4, True)
    assert len(data.mean) == 3 and all(0.2 < s < 0.3 for s in data.std)


def test_missing_folder_names_path_and_download(tmp_path):
    with pytest.raises(DataError) as err:
        load_dataset("cifar10", DataConfig(root=str(tmp_path)))
    message = str(err.value)
    assert message.startswith("data.root:") and "\n" not in message
    assert str(tmp_path / "cifar-10-batches-py") in message and "data.download: true" in message


def test_missing_file_is_named(tmp_path):
    write_cifar(tmp_path, hundred=True)
    (tmp_path / "cifar-100-python" / "test").unlink()
    with pytest.raises(DataError, match=r"missing test\)"):
        load_dataset("cifar100", DataConfig(root=str(tmp_path)))


def test_verify_checks_md5(tmp_path):
    write_cifar(tmp_path)
    with pytest.raises(DataError) as err:
        load_dataset("cifar10", DataConfig(root=str(tmp_path), verify=True))
    assert str(err.value).startswith("data.verify:") and "md5" in str(err.value)


def test_unreadable_file(tmp_path):
    write_cifar(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="data.root: cannot read CIFAR-10"):
        load_dataset("cifar10", DataConfig(root=str(tmp_path)))


def test_download_uses_torchvision(tmp_path, monkeypatch):
    calls = []

    def fake_download(url, root, filename=None, md5=None, **kwargs):
        calls.append(url)
        write_cifar(Path(root))

    monkeypatch.setattr(torchvision.datasets.cifar, "download_and_extract_archive", fake_download)
    data = load_dataset("cifar10", DataConfig(root=str(tmp_path), download=True))
    assert data.num_train == 5 * PER_FILE and len(calls) == 1
    load_dataset("cifar10", DataConfig(root=str(tmp_path), download=True))
    assert len(calls) == 1  # present files are not fetched again


def test_download_failure(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr(torchvision.datasets.cifar, "download_and_extract_archive", offline)
    with pytest.raises(DataError, match="data.download: could not fetch CIFAR-100"):
        load_dataset("cifar100", DataConfig(root=str(tmp_path), download=True))
