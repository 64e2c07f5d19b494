"""CIFAR-10 and CIFAR-100 through torchvision, as in-memory ImageData.

Files live in ``data.root/cifar-10-batches-py`` and ``data.root/cifar-100-python`` (the
extracted official archives). ``data.download: true`` fetches them with torchvision when
missing. ``data.verify: true`` keeps torchvision's md5 check of every file; by default only
their presence is checked (the check reads 180 MB on every load). Default augmentation: random
crop with 4 pixels of padding and horizontal flip.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.datasets import CIFAR10, CIFAR100

from drive.config import DataConfig
from drive.data.base import DATASETS, DataError, ImageData

CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)


def _without_checksums(cls: type[CIFAR10]) -> type[CIFAR10]:
    """A subclass whose integrity checks only test that the files exist (torchvision's
    ``check_integrity`` skips the md5 when it is None)."""
    return type(f"Unverified{cls.__name__}", (cls,), {
        "train_list": [[name, None] for name, _ in cls.train_list],
        "test_list": [[name, None] for name, _ in cls.test_list],
        "meta": {**cls.meta, "md5": None},
    })


_UNVERIFIED = {cls: _without_checksums(cls) for cls in (CIFAR10, CIFAR100)}


def load_cifar(cls: type[CIFAR10], title: str, cfg: DataConfig, mean: tuple[float, ...],
               std: tuple[float, ...], name: str) -> ImageData:
    """Load a torchvision CIFAR class into ImageData, turning its errors into DataErrors."""
    root = Path(cfg.root).expanduser()
    folder = root / cls.base_folder
    files = [entry[0] for entry in cls.train_list + cls.test_list] + [cls.meta["filename"]]
    missing = [f for f in files if not (folder / f).is_file()]
    if missing and not cfg.download:
        what = (f"incomplete at {folder} (missing {', '.join(missing)})" if folder.is_dir()
                else f"not found at {folder}")
        raise DataError(f"data.root: {title} {what}; set data.download: true to fetch it with torchvision, "
                        f"or copy the files there")
    dataset_cls = cls if cfg.verify else _UNVERIFIED[cls]
    try:  # torchvision downloads only when the (checked) files are missing or corrupt
        train = dataset_cls(str(root), train=True, download=cfg.download)
        test = dataset_cls(str(root), train=False)
    except OSError as e:  # no network (URLError), unwritable root, unreadable files
        raise DataError(f"data.download: could not fetch {title} from {cls.url} into {root} ({e}); "
                        f"copy the extracted files to {folder} instead") from None
    except RuntimeError as e:  # torchvision's md5 mismatch, of the archive or of a file
        raise DataError(f"data.verify: {title} files at {folder} failed torchvision's md5 check ({e}); "
                        f"delete them and set data.download: true, or set data.verify: false") from None
    except Exception as e:  # unpickling garbage raises anything from EOFError to KeyError
        raise DataError(f"data.root: cannot read {title} at {folder} ({type(e).__name__}: {e}); "
                        f"delete the files and set data.download: true") from None
    return ImageData(_images(train), _labels(train), _images(test), _labels(test),
                     num_classes=len(train.classes), mean=mean, std=std, augment=True,
                     crop_padding=4, flip=True, name=name)


def _images(dataset: CIFAR10) -> torch.Tensor:
    return torch.from_numpy(dataset.data).permute(0, 3, 1, 2).contiguous()  # HWC -> CHW


def _labels(dataset: CIFAR10) -> torch.Tensor:
    return torch.tensor(dataset.targets, dtype=torch.int64)


@DATASETS.register("cifar10")
def cifar10(cfg: DataConfig) -> ImageData:
    """CIFAR-10: 50000 + 10000 RGB 32x32 images, 10 classes."""
    return load_cifar(CIFAR10, "CIFAR-10", cfg, CIFAR10_MEAN, CIFAR10_STD, "cifar10")


@DATASETS.register("cifar100")
def cifar100(cfg: DataConfig) -> ImageData:
    """CIFAR-100: 50000 + 10000 RGB 32x32 images, 100 (fine) classes."""
    return load_cifar(CIFAR100, "CIFAR-100", cfg, CIFAR100_MEAN, CIFAR100_STD, "cifar100")
