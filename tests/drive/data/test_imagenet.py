"""ImageNet as FolderData from a tiny ImageFolder tree, and its DataLoader-based loader."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from drive.config import DataConfig
from drive.data import FolderData, load_dataset, make_loaders
from drive.data.imagenet import MEAN, STD
from drive.errors import DataError

CLASSES = ["n01", "n02"]


def write_tree(root: Path, per_class: int = 5, val_classes=CLASSES) -> None:
    rng = np.random.default_rng(0)
    for split, classes in (("train", CLASSES), ("val", val_classes)):
        for wnid in classes:
            (root / split / wnid).mkdir(parents=True)
            for i in range(per_class):
                h, w = rng.integers(36, 60, 2)
                array = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
                Image.fromarray(array).save(root / split / wnid / f"{wnid}_{i}.JPEG", quality=90)


def loaders(root, seed=0, workers=0, **cfg):
    cfg = DataConfig(root=str(root), image_size=32, num_workers=workers, **cfg)
    data = load_dataset("imagenet", cfg)
    return data, make_loaders(data, cfg, 4, 3, torch.device("cpu"), seed, channels_last=True)


def epoch(loader, e):
    loader.set_epoch(e)
    xs, ys = zip(*loader)
    return torch.cat(xs), torch.cat(ys)


def test_folder_data_and_batches(tmp_path):
    write_tree(tmp_path)
    data, (train, test) = loaders(tmp_path)
    assert isinstance(data, FolderData)
    shape = (data.num_classes, data.in_channels, data.image_size, data.num_train, data.num_test)
    assert shape == (2, 3, 32, 10, 10)
    assert (len(train), train.num_samples, len(test)) == (3, 10, 4)
    sizes = []
    for x, y in train:
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert x.shape[1:] == (3, 32, 32) and x.is_contiguous(memory_format=torch.channels_last)
        sizes.append(len(y))
    assert sizes == [4, 4, 2]
    x, y = epoch(train, 0)
    assert sorted(y.tolist()) == [0] * 5 + [1] * 5
    # normalised: uint8 pixels map into [(0 - mean) / std, (1 - mean) / std]
    low = ((0 - torch.tensor(MEAN)) / torch.tensor(STD)).view(1, 3, 1, 1)
    high = ((1 - torch.tensor(MEAN)) / torch.tensor(STD)).view(1, 3, 1, 1)
    assert (x >= low - 1e-5).all() and (x <= high + 1e-5).all()


def test_train_order_and_augmentation_are_functions_of_seed_and_epoch(tmp_path):
    write_tree(tmp_path)
    _, (a, _) = loaders(tmp_path)
    _, (b, _) = loaders(tmp_path)
    xa, ya = epoch(a, 3)
    xb, yb = epoch(b, 3)
    assert torch.equal(xa, xb) and torch.equal(ya, yb)
    xc, yc = epoch(a, 4)
    assert not torch.equal(ya, yc) or not torch.equal(xa, xc)
    state = torch.get_rng_state()
    epoch(a, 5)
    assert torch.equal(state, torch.get_rng_state())  # the caller's random state is left alone


def test_workers_give_the_same_batches(tmp_path):
    write_tree(tmp_path, per_class=3)
    x0, y0 = epoch(loaders(tmp_path, workers=0)[1][0], 2)
    x2, y2 = epoch(loaders(tmp_path, workers=2)[1][0], 2)
    assert torch.equal(x0, x2) and torch.equal(y0, y2)


def test_test_loader_is_ordered_and_plain(tmp_path):
    write_tree(tmp_path)
    _, (_, test) = loaders(tmp_path)
    x1, y1 = epoch(test, 0)
    x2, y2 = epoch(test, 9)
    assert y1.tolist() == [0] * 5 + [1] * 5
    assert torch.equal(x1, x2) and torch.equal(y1, y2)


def test_augment_off_uses_the_test_transform(tmp_path):
    write_tree(tmp_path, per_class=1)  # one image per class: the label identifies the image
    (tmp_path / "val").rename(tmp_path / "val_")
    (tmp_path / "val").symlink_to(tmp_path / "train")  # the same images in both sets
    _, (train, test) = loaders(tmp_path, augment=False)
    x, y = epoch(train, 1)
    xt, yt = epoch(test, 0)
    assert torch.equal(x[y.argsort()], xt[yt.argsort()])
    _, (augmenting, _) = loaders(tmp_path)
    x, y = epoch(augmenting, 1)
    assert not torch.equal(x[y.argsort()], xt[yt.argsort()])


def test_missing_and_mismatched(tmp_path):
    with pytest.raises(DataError) as err:
        load_dataset("imagenet", DataConfig(root=str(tmp_path)))
    message = str(err.value)
    assert message.startswith("data.root:") and str(tmp_path / "train") in message
    assert "cannot be downloaded" in message and "\n" not in message
    (tmp_path / "train").mkdir()
    with pytest.raises(DataError, match="data.root: no ImageNet images"):
        load_dataset("imagenet", DataConfig(root=str(tmp_path)))
    write_tree(tmp_path / "other", per_class=1, val_classes=["n01"])
    with pytest.raises(DataError, match="class folders"):
        load_dataset("imagenet", DataConfig(root=str(tmp_path / "other")))
