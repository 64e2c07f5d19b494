"""ImageNet (ILSVRC-2012) as file-backed FolderData, read with torchvision's ImageFolder.

Expected layout, prepared by hand (ImageNet cannot be downloaded automatically):
``data.root/train/<wnid>/*.JPEG`` and ``data.root/val/<wnid>/*.JPEG`` (the validation images
sorted into class folders, e.g. with the widely used ``valprep.sh``). Images are decoded and
transformed by DataLoader workers (``data.num_workers``) into uint8 tensors, which are
normalised on the device. Train: RandomResizedCrop(image_size) and horizontal flip (the
default augmentation; ``data.augment: false`` uses the test transform, ``data.flip: false``
drops the flip); test: Resize(image_size * 8/7) then CenterCrop(image_size).
``data.image_size`` defaults to 224; ``data.crop_padding`` and ``data.pad_mode`` do not apply.
"""

from __future__ import annotations

from pathlib import Path

from torchvision import transforms
from torchvision.datasets import ImageFolder

from drive.config import DataConfig
from drive.data.base import DATASETS, DataError, FolderData

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
INSTRUCTIONS = ("ImageNet cannot be downloaded automatically: get ILSVRC-2012 from https://image-net.org "
                "and arrange it as {root}/train/<wnid>/*.JPEG and {root}/val/<wnid>/*.JPEG")


def transforms_for(image_size: int, train: bool, flip: bool = True) -> transforms.Compose:
    """The PIL -> uint8 tensor transform of the training (augmenting) or test images."""
    if train:
        steps = [transforms.RandomResizedCrop(image_size)]
        steps += [transforms.RandomHorizontalFlip()] if flip else []
    else:
        steps = [transforms.Resize(round(image_size * 8 / 7)), transforms.CenterCrop(image_size)]
    return transforms.Compose([*steps, transforms.PILToTensor()])


@DATASETS.register("imagenet")
def imagenet(cfg: DataConfig) -> FolderData:
    """ImageNet from class folders; the number of classes is the number of train folders."""
    root = Path(cfg.root).expanduser()
    size = cfg.image_size or 224
    augment = cfg.augment is not False
    train_transform = transforms_for(size, train=augment, flip=cfg.flip is not False)
    train = _folder(root / "train", train_transform, root)
    test = _folder(root / "val", transforms_for(size, train=False), root)
    if test.classes != train.classes:
        raise DataError(f"data.root: the class folders of {root / 'val'} differ from those of "
                        f"{root / 'train'}")
    return FolderData(train, test, num_classes=len(train.classes), image_size=size, mean=MEAN, std=STD,
                      name="imagenet")


def _folder(path: Path, transform: transforms.Compose, root: Path) -> ImageFolder:
    if not path.is_dir():
        raise DataError(f"data.root: ImageNet not found at {path}; {INSTRUCTIONS.format(root=root)}")
    try:
        return ImageFolder(str(path), transform=transform)
    except (FileNotFoundError, OSError) as e:  # no class folders, or folders without images
        raise DataError(f"data.root: no ImageNet images in {path} ({e}); "
                        f"{INSTRUCTIONS.format(root=root)}") from None
