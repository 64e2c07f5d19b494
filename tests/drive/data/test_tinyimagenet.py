"""Tiny ImageNet from a tiny tree in the official layout (PNG bytes in .JPEG files: exact)."""

from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
from PIL import Image

import drive.data.tinyimagenet as tiny
from drive.config import DataConfig
from drive.data import load_dataset
from drive.errors import DataError

WNIDS = ["n02", "n01", "n03"]  # label order is the file's order, not sorted
VAL = [("val_0.JPEG", "n03"), ("val_1.JPEG", "n02"), ("val_2.JPEG", "n03"), ("val_3.JPEG", "n01")]


def save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format="PNG")


def write_tree(root: Path, size: int = 16) -> dict:
    rng = np.random.default_rng(0)
    folder = root / "tiny-imagenet-200"
    folder.mkdir(parents=True)
    (folder / "wnids.txt").write_text("\n".join(WNIDS) + "\n")
    train = []
    for wnid in WNIDS:
        for i in range(2):
            array = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            save(folder / "train" / wnid / "images" / f"{wnid}_{i}.JPEG", array)
            train.append(array)
        (folder / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
    test = []
    for name, wnid in VAL:
        array = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        save(folder / "val" / "images" / name, array)
        test.append(array)
    (folder / "val" / "val_annotations.txt").write_text(
        "".join(f"{name}\t{wnid}\t0\t0\t{size - 1}\t{size - 1}\n" for name, wnid in VAL))
    chw = lambda arrays: torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)  # noqa: E731
    return {"train": chw(train), "test": chw(test), "folder": folder}


def test_load_labels_and_pixels(tmp_path):
    tree = write_tree(tmp_path)
    data = load_dataset("tinyimagenet", DataConfig(root=str(tmp_path)))
    shape = (data.num_classes, data.in_channels, data.image_size, data.num_train, data.num_test)
    assert shape == (3, 3, 16, 6, 4)
    assert data.train_labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert data.test_labels.tolist() == [WNIDS.index(wnid) for _, wnid in VAL]
    assert torch.equal(data.train_images, tree["train"]) and torch.equal(data.test_images, tree["test"])
    assert data.augmentation(DataConfig()) == (8, True)


def test_cache_is_created_reused_and_rebuilt(tmp_path):
    tree = write_tree(tmp_path)
    folder, cfg = tree["folder"], DataConfig(root=str(tmp_path))
    load_dataset("tinyimagenet", cfg)
    cache = folder / tiny.CACHE_NAME
    assert cache.is_file() and not list(folder.glob("*.tmp"))
    # reused: a changed image on disk is not seen while the cache exists
    save(folder / "val" / "images" / "val_0.JPEG", np.zeros((16, 16, 3), dtype=np.uint8))
    assert torch.equal(load_dataset("tinyimagenet", cfg).test_images, tree["test"])
    # rebuilt when deleted
    cache.unlink()
    assert load_dataset("tinyimagenet", cfg).test_images[0].sum() == 0
    # rebuilt when it belongs to another wnids.txt, or is unreadable
    (folder / "wnids.txt").write_text("n01\nn02\nn03\n")
    reordered = load_dataset("tinyimagenet", cfg)
    assert reordered.test_labels.tolist() == [2, 1, 2, 0]
    assert torch.equal(reordered.train_images[:2], tree["train"][2:4])
    cache.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="unreadable"):
        assert load_dataset("tinyimagenet", cfg).num_train == 6


def test_grey_images_become_rgb(tmp_path):
    tree = write_tree(tmp_path)
    grey = np.full((16, 16), 77, dtype=np.uint8)
    Image.fromarray(grey).save(tree["folder"] / "val" / "images" / "val_1.JPEG", format="PNG")
    data = load_dataset("tinyimagenet", DataConfig(root=str(tmp_path)))
    assert torch.equal(data.test_images[1], torch.full((3, 16, 16), 77, dtype=torch.uint8))


def test_missing_and_broken_trees(tmp_path):
    with pytest.raises(DataError) as err:
        load_dataset("tinyimagenet", DataConfig(root=str(tmp_path)))
    assert str(err.value).startswith("data.root:") and "data.download: true" in str(err.value)
    assert str(tmp_path / "tiny-imagenet-200") in str(err.value) and tiny.URL in str(err.value)
    folder = write_tree(tmp_path)["folder"]
    save(folder / "train" / "n01" / "images" / "n01_9.JPEG", np.zeros((8, 8, 3), dtype=np.uint8))
    with pytest.raises(DataError, match="n01_9.JPEG is 8x8, expected 16x16"):
        load_dataset("tinyimagenet", DataConfig(root=str(tmp_path)))
    (folder / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn99\t0\t0\t1\t1\n")
    with pytest.raises(DataError, match="bad line"):
        load_dataset("tinyimagenet", DataConfig(root=str(tmp_path)))


def test_download(tmp_path, monkeypatch):
    def fake_download(url, root, filename=None, md5=None, **kwargs):
        assert url == tiny.URL and md5 == tiny.MD5
        write_tree(Path(root))

    monkeypatch.setattr(tiny, "download_and_extract_archive", fake_download)
    assert load_dataset("tinyimagenet", DataConfig(root=str(tmp_path), download=True)).num_test == 4

    def offline(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr(tiny, "download_and_extract_archive", offline)
    with pytest.raises(DataError, match="data.download: could not fetch Tiny ImageNet"):
        load_dataset("tinyimagenet", DataConfig(root=str(tmp_path / "other"), download=True))
