"""ImageNet (ILSVRC-2012) as file-backed FolderData, read with torchvision's ImageFolder.

Expected layout, prepared by hand (ImageNet cannot be downloaded automatically):
``data.root/train/<wnid>/*.JPEG`` and ``data.root/val/<wnid>/*.JPEG`` (the validation images
sorted into class folders, e.g. with the widely used ``valprep.sh``). Images are decoded and
transformed into uint8 tensors by DataLoader workers (``data.num_workers``) or, on CUDA, decoded
in batches on the GPU (``data.decode``, :mod:`drive.data.jpeg`), and normalised on the device. Train: RandomResizedCrop(image_size) and horizontal flip (the
default augmentation; ``data.augment: false`` uses the test transform, ``data.flip: false``
drops the flip); test: Resize(image_size * 8/7) then CenterCrop(image_size).
``data.image_size`` defaults to 224; ``data.crop_padding`` and ``data.pad_mode`` do not apply.
"""

from __future__ import annotations

from pathlib import Path

from torchvision import transforms

from drive.config import DataConfig
from drive.data.base import DATASETS, FolderData
from drive.data.jpeg import JpegFolder, pil_transform
from drive.errors import DataError

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
INSTRUCTIONS = ("ImageNet cannot be downloaded automatically: get ILSVRC-2012 from https://image-net.org "
                "and arrange it as {root}/train/<wnid>/*.JPEG and {root}/val/<wnid>/*.JPEG")


def transforms_for(image_size: int, train: bool, flip: bool = True) -> transforms.Compose:
    """The PIL -> uint8 tensor transform of the training (augmenting) or test images."""
    return pil_transform(image_size, train, flip)


@DATASETS.register("imagenet")
def imagenet(cfg: DataConfig) -> FolderData:
    """ImageNet from class folders; the number of classes is the number of train folders."""
    root = Path(cfg.root).expanduser()
    size = cfg.image_size or 224
    augment = cfg.augment is not False
    train = _folder(root / "train", size, augment, cfg.flip is not False, root)
    test = _folder(root / "val", size, False, False, root)
    if test.classes != train.classes:
        raise DataError(f"data.root: the class folders of {root / 'val'} differ from those of "
                        f"{root / 'train'}")
    return FolderData(train, test, num_classes=len(train.classes), image_size=size, mean=MEAN, std=STD,
                      name="imagenet")


def _folder(path: Path, size: int, train: bool, flip: bool, root: Path) -> JpegFolder:
    if not path.is_dir():
        raise DataError(f"data.root: ImageNet not found at {path}; {INSTRUCTIONS.format(root=root)}")
    try:
        return JpegFolder(str(path), size, train, flip)
    except (FileNotFoundError, OSError) as e:  # no class folders, or folders without images
        raise DataError(f"data.root: no ImageNet images in {path} ({e}); "
                        f"{INSTRUCTIONS.format(root=root)}") from None
