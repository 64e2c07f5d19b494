"""CIFAR-10/100 from tiny files in the real on-disk format (no network)."""

import pickle
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
import torchvision.datasets.cifar

from drive.config import DataConfig
from drive.data import load_dataset
from drive.data.safe_pickle import dump_batch
from drive.errors import DataError

PER_FILE = 10


def write_cifar(root: Path, hundred: bool = False, seed: int = 0) -> dict:
    """Write a tiny CIFAR-10 (5 train batches + test) or CIFAR-100 (train + test) in the format of
    the official archives (Python 2 pickles of dicts); return the CHW images and labels written."""
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
            entry = {"batch_label": f"{name} batch", "filenames": [f"img_{i}.png" for i in range(count)],
                     "data": chw.reshape(count, 3072), "fine_labels" if hundred else "labels": y}
            if hundred:
                entry["coarse_labels"] = [label // 5 for label in y]
            dump_batch(entry, folder / name)
            images.append(chw)
            labels += y
        written[split] = (torch.from_numpy(np.concatenate(images)), torch.tensor(labels))
    meta = {"fine_label_names": [f"c{i}" for i in range(100)], "coarse_label_names": [f"s{i}" for i in range(20)]} \
        if hundred else {"label_names": [f"c{i}" for i in range(10)], "num_cases_per_batch": PER_FILE, "num_vis": 3072}
    dump_batch(meta, folder / ("meta" if hundred else "batches.meta"))
    return written


@pytest.mark.parametrize("name, hundred", [("cifar10", False), ("cifar100", True)])
def test_round_trip(tmp_path, name, hundred):
    written = write_cifar(tmp_path, hundred)
    data = load_dataset(name, DataConfig(root=str(tmp_path), verify=False))
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


def test_files_read_like_torchvision_reads_them(tmp_path):
    """The files the tests write are the real format: torchvision's own loader (its md5 list
    emptied) reads the same images and labels."""
    written = write_cifar(tmp_path)
    unchecked = type("Unchecked", (torchvision.datasets.CIFAR10,), {
        "train_list": [[n, None] for n, _ in torchvision.datasets.CIFAR10.train_list],
        "test_list": [[n, None] for n, _ in torchvision.datasets.CIFAR10.test_list],
        "meta": {**torchvision.datasets.CIFAR10.meta, "md5": None}})
    theirs = unchecked(str(tmp_path), train=True)
    assert torch.equal(torch.from_numpy(theirs.data).permute(0, 3, 1, 2), written["train"][0])
    assert theirs.targets == written["train"][1].tolist() and theirs.classes[0] == "c0"


def test_files_are_checked_against_the_official_md5_by_default(tmp_path):
    write_cifar(tmp_path)
    assert DataConfig().verify
    with pytest.raises(DataError) as err:
        load_dataset("cifar10", DataConfig(root=str(tmp_path)))
    message = str(err.value)
    assert message.startswith("data.verify:") and "md5" in message and "data_batch_1" in message
    assert "\n" not in message


class _Planted:
    """A pickle that runs a shell command when loaded with plain pickle.load."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("planted", ["data_batch_3", "batches.meta"])
def test_a_planted_pickle_is_refused_before_any_of_its_code_runs(tmp_path, planted):
    write_cifar(tmp_path)
    marker = tmp_path / "marker"
    path = tmp_path / "cifar-10-batches-py" / planted
    path.write_bytes(pickle.dumps(_Planted(marker), protocol=2))
    with pytest.raises(DataError) as err:
        load_dataset("cifar10", DataConfig(root=str(tmp_path), verify=False))
    message = str(err.value)
    assert message.startswith("data.root:") and str(path) in message and "system" in message
    assert "\n" not in message
    assert not marker.exists()  # nothing of the file ran
    with path.open("rb") as f:  # while a plain unpickler would have run it
        pickle.load(f)
    assert marker.exists()


def test_unreadable_file(tmp_path):
    write_cifar(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="data.root: cannot read CIFAR-10 file .*data_batch_3"):
        load_dataset("cifar10", DataConfig(root=str(tmp_path), verify=False))


def test_download_uses_torchvision(tmp_path, monkeypatch):
    calls = []

    def fake_download(url, root, filename=None, md5=None, **kwargs):
        calls.append(url)
        write_cifar(Path(root))

    monkeypatch.setattr(torchvision.datasets.cifar, "download_and_extract_archive", fake_download)
    data = load_dataset("cifar10", DataConfig(root=str(tmp_path), download=True, verify=False))
    assert data.num_train == 5 * PER_FILE and len(calls) == 1
    load_dataset("cifar10", DataConfig(root=str(tmp_path), download=True, verify=False))
    assert len(calls) == 1  # present files are not fetched again


def test_download_failure(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr(torchvision.datasets.cifar, "download_and_extract_archive", offline)
    with pytest.raises(DataError, match="data.download: could not fetch CIFAR-100"):
        load_dataset("cifar100", DataConfig(root=str(tmp_path), download=True))
