"""CIFAR-10 and CIFAR-100 as in-memory ImageData, read without running pickled code.

Files live in ``data.root/cifar-10-batches-py`` and ``data.root/cifar-100-python`` (the
extracted official archives). ``data.download: true`` fetches them with torchvision's download
code (which checks the archive's published md5) when missing. ``data.verify: true`` (the
default) checks every extracted file against torchvision's published md5 before reading it.
The batch files are pickles; they are read with :mod:`drive.data.safe_pickle`, which accepts
only the numpy arrays, lists, dicts and strings of the real format, so a file planted under
``data.root`` cannot run code. Default augmentation: random crop with 4 pixels of padding and
horizontal flip.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torchvision.datasets import CIFAR10, CIFAR100, VisionDataset
from torchvision.datasets.utils import check_integrity

from drive.config import DataConfig
from drive.data.base import DATASETS, ImageData
from drive.data.safe_pickle import UnsafePickleError, load_batch
from drive.errors import DataError

CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)


def _archive(cls: type[CIFAR10], root: Path) -> CIFAR10:
    """torchvision's class for its file list, checksums and download code, without running
    its ``__init__`` (which unpickles the batches with ``pickle.load``)."""
    files = cls.__new__(cls)
    VisionDataset.__init__(files, str(root))
    return files


def _read(path: Path, title: str) -> dict:
    try:
        return load_batch(path)
    except UnsafePickleError as e:
        raise DataError(f"data.root: {path} is not a {title} file: its pickle calls {e.global_name}, "
                        f"which the official files never do; refused to run it (delete the file and "
                        f"download the data set again)") from None
    except Exception as e:  # unpickling garbage raises anything from EOFError to KeyError
        raise DataError(f"data.root: cannot read {title} file {path} ({type(e).__name__}: {e}); "
                        f"delete the files and set data.download: true") from None


def _split(folder: Path, names: list[str], title: str) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = [], []
    for name in names:
        entry = _read(folder / name, title)
        try:
            images.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            labels += list(entry["labels"] if "labels" in entry else entry["fine_labels"])
        except (KeyError, ValueError, TypeError) as e:
            raise DataError(f"data.root: {folder / name} is not a {title} batch ({type(e).__name__}: {e})") from None
    return torch.from_numpy(np.concatenate(images)).contiguous(), torch.tensor(labels, dtype=torch.int64)


def load_cifar(cls: type[CIFAR10], title: str, cfg: DataConfig, mean: tuple[float, ...],
               std: tuple[float, ...], name: str) -> ImageData:
    """Check, download when asked, verify and read one CIFAR data set into ImageData."""
    root = Path(cfg.root).expanduser()
    folder = root / cls.base_folder
    entries = cls.train_list + cls.test_list + [[cls.meta["filename"], cls.meta["md5"]]]
    missing = [f for f, _ in entries if not (folder / f).is_file()]
    if missing and not cfg.download:
        what = (f"incomplete at {folder} (missing {', '.join(missing)})" if folder.is_dir()
                else f"not found at {folder}")
        raise DataError(f"data.root: {title} {what}; set data.download: true to fetch it with torchvision, "
                        f"or copy the files there")
    if missing:
        try:  # torchvision checks the archive against its published md5 before extracting
            _archive(cls, root).download()
        except OSError as e:  # no network (URLError), unwritable root
            raise DataError(f"data.download: could not fetch {title} from {cls.url} into {root} ({e}); "
                            f"copy the extracted files to {folder} instead") from None
        except RuntimeError as e:  # the archive's md5 did not match
            raise DataError(f"data.verify: the downloaded {title} archive failed its md5 check ({e}); "
                            f"download it again") from None
    if cfg.verify:
        bad = [f for f, md5 in entries if not check_integrity(str(folder / f), md5)]
        if bad:
            raise DataError(f"data.verify: {title} files at {folder} do not match the official archive's "
                            f"md5 ({', '.join(bad)}); delete them and set data.download: true, or set "
                            f"data.verify: false for files of your own") from None
    train_images, train_labels = _split(folder, [f for f, _ in cls.train_list], title)
    test_images, test_labels = _split(folder, [f for f, _ in cls.test_list], title)
    classes = _read(folder / cls.meta["filename"], title).get(cls.meta["key"])
    if not isinstance(classes, list) or not classes:
        raise DataError(f"data.root: {folder / cls.meta['filename']} has no {cls.meta['key']} list; "
                        f"is it a {title} meta file?")
    return ImageData(train_images, train_labels, test_images, test_labels,
                     num_classes=len(classes), mean=mean, std=std,
                     augment=True, crop_padding=4, flip=True, name=name)


@DATASETS.register("cifar10")
def cifar10(cfg: DataConfig) -> ImageData:
    """CIFAR-10: 50000 + 10000 RGB 32x32 images, 10 classes."""
    return load_cifar(CIFAR10, "CIFAR-10", cfg, CIFAR10_MEAN, CIFAR10_STD, "cifar10")


@DATASETS.register("cifar100")
def cifar100(cfg: DataConfig) -> ImageData:
    """CIFAR-100: 50000 + 10000 RGB 32x32 images, 100 (fine) classes."""
    return load_cifar(CIFAR100, "CIFAR-100", cfg, CIFAR100_MEAN, CIFAR100_STD, "cifar100")
