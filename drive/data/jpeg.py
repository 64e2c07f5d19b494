"""JPEG class folders (ImageNet) decoded by torchvision: in the workers, or on the GPU in batches.

Three ways to turn the files of a :class:`JpegFolder` into uint8 batches (``data.decode``):

* ``pil``: torchvision's ``ImageFolder`` with PIL decoding and PIL transforms in the
  DataLoader workers (the folder itself, as a plain ``ImageFolder``).
* ``cpu``: the workers read the file, decode it with ``torchvision.io.decode_jpeg``
  (libjpeg-turbo) and crop and resize the tensor.
* ``device``: the workers only read the bytes and the image size from the JPEG header and draw
  the crop; the training device decodes the whole batch at once (``decode_jpeg(..., device=
  "cuda")``, nvJPEG) and crops and resizes there, so the CPU does almost nothing per image.

``auto`` is ``device`` on CUDA and ``cpu`` elsewhere (decoding with torchvision measured faster
than PIL on the CPU, docs/benchmarks.md). Every mode draws the same crop and flip for a sample
(``RandomResizedCrop.get_params`` and the flip under the sample's seed, as the PIL transforms
do), so the modes differ only by their decoders' and resizers' rounding. A file torchvision
cannot decode (a CMYK JPEG, or ImageNet's one PNG named .JPEG) falls back to PIL.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from PIL import Image
from torch.utils.data import Dataset, Subset
from torchvision import transforms
from torchvision.datasets import ImageFolder
from torchvision.io import ImageReadMode, decode_jpeg
from torchvision.transforms.v2 import functional as TF

DECODE_MODES = ("auto", "pil", "cpu", "device")
SCALE, RATIO = (0.08, 1.0), (3 / 4, 4 / 3)  # RandomResizedCrop's defaults
_TEST = -1  # a crop box of -1s: the test transform (resize, centre crop)


def resolve_decode(mode: str, device: torch.device) -> str:
    """``data.decode`` for the training device: ``auto`` is ``device`` on CUDA, else ``cpu``."""
    if mode not in DECODE_MODES:
        raise ValueError(f"data.decode: must be one of {', '.join(DECODE_MODES)}, got {mode!r}")
    if mode == "auto":
        return "device" if device.type == "cuda" else "cpu"
    return mode


class JpegFolder(ImageFolder):
    """An ``ImageFolder`` of JPEG files (PIL decoding, ``transform``) that also knows the
    augmentation it stands for, so that :func:`encoded` can serve it decoded by torchvision.

    Args:
        root: the folder of class folders.
        image_size: side of the square output.
        train: RandomResizedCrop (and ``flip``) if true, else resize to ``image_size * 8/7`` and
            centre crop.
        flip: random horizontal flip (training only).
    """

    def __init__(self, root: str, image_size: int, train: bool, flip: bool = True):
        self.image_size, self.train, self.flip = image_size, train, flip and train
        super().__init__(root, transform=pil_transform(image_size, train, self.flip))


def pil_transform(image_size: int, train: bool, flip: bool = True) -> transforms.Compose:
    """The PIL -> uint8 tensor transform of the training (augmenting) or test images."""
    if train:
        steps = [transforms.RandomResizedCrop(image_size, SCALE, RATIO)]
        steps += [transforms.RandomHorizontalFlip()] if flip else []
    else:
        steps = [transforms.Resize(round(image_size * 8 / 7)), transforms.CenterCrop(image_size)]
    return transforms.Compose([*steps, transforms.PILToTensor()])


def draw_crop(folder: JpegFolder, height: int, width: int) -> torch.Tensor:
    """``[top, left, h, w, flip]`` of a sample, drawn from torch's global generator in the order
    the PIL transforms draw them (the caller seeds it per sample); -1s for the test transform."""
    if not folder.train:
        return torch.full((5,), _TEST, dtype=torch.int64)
    shape_only = torch.empty(1, 1, 1).expand(3, height, width)
    top, left, h, w = transforms.RandomResizedCrop.get_params(shape_only, list(SCALE), list(RATIO))
    flip = bool(torch.rand(1) < 0.5) if folder.flip else False
    return torch.tensor([top, left, h, w, int(flip)], dtype=torch.int64)


def apply_crop(image: torch.Tensor, box: torch.Tensor, size: int) -> torch.Tensor:
    """The training crop (resized to ``size`` x ``size``, flipped) or the test transform of a
    uint8 ``(3, H, W)`` image on any device."""
    top, left, h, w, flip = box.tolist()
    if top == _TEST:
        resized = TF.resize(image, [round(size * 8 / 7)], antialias=True)
        return TF.center_crop(resized, [size, size])
    out = TF.resized_crop(image, top, left, h, w, [size, size], antialias=True)
    return TF.horizontal_flip(out) if flip else out


def decode(data: torch.Tensor, path: str, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 RGB ``(3, H, W)`` of JPEG bytes, on ``device``; PIL for what torchvision refuses."""
    try:
        return decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
    except RuntimeError:
        with Image.open(path) as image:
            return TF.pil_to_tensor(image.convert("RGB")).to(device)


class EncodedJpegs(Dataset):
    """The samples of a :class:`JpegFolder` for torchvision decoding.

    ``decode_here`` (the ``cpu`` mode): items are ``(uint8 image, label)``, decoded and cropped
    in the worker. Else (``device``): items are ``(bytes, crop box, label, path)`` and
    :class:`DeviceDecoder` makes the batch on the device.
    """

    def __init__(self, folder: JpegFolder, decode_here: bool):
        self.folder, self.decode_here = folder, decode_here

    def __len__(self) -> int:
        return len(self.folder)

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        path, label = self.folder.samples[index]
        with open(path, "rb") as f:  # not torchvision.io.read_file: a worker cannot send its mmap
            data = torch.frombuffer(bytearray(f.read()), dtype=torch.uint8)
        if self.decode_here:
            image = decode(data, path)
            box = draw_crop(self.folder, image.shape[1], image.shape[2])
            return apply_crop(image, box, self.folder.image_size), label
        with Image.open(path) as header:  # the size only: PIL reads the header, not the pixels
            width, height = header.size
        return data, draw_crop(self.folder, height, width), label, path


def collate_encoded(items: list[tuple[Any, ...]]) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor, list[str]]:
    """A batch of ``(bytes, box, label, path)`` items: the byte tensors stay a list."""
    data, boxes, labels, paths = zip(*items)
    return list(data), torch.stack(boxes), torch.tensor(labels, dtype=torch.int64), list(paths)


class DeviceDecoder:
    """Turns a collated batch of :class:`EncodedJpegs` into a uint8 ``(N, 3, S, S)`` batch and
    labels on ``device``: one batched decode (nvJPEG on CUDA), then crop and resize per image."""

    def __init__(self, size: int, device: torch.device):
        self.size, self.device = size, device

    def __call__(self, batch: tuple[list[torch.Tensor], torch.Tensor, torch.Tensor, list[str]]
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        data, boxes, labels, paths = batch
        try:
            images = decode_jpeg(data, mode=ImageReadMode.RGB, device=self.device)
        except RuntimeError:  # one file it cannot decode: each alone, with the PIL fallback
            images = [decode(d, p, self.device) for d, p in zip(data, paths)]
        out = torch.stack([apply_crop(image, box, self.size) for image, box in zip(images, boxes)])
        return out, labels.to(self.device, non_blocking=True)


def encoded(dataset: Dataset, mode: str, device: torch.device
            ) -> tuple[Dataset, Callable[[list[Any]], Any] | None, Callable[[Any], Any] | None] | None:
    """``(dataset, collate_fn, on_batch)`` serving ``dataset`` (a :class:`JpegFolder`, or a
    ``Subset`` of one) in ``mode`` (``cpu`` or ``device``), or None when it is no JpegFolder
    or the mode is ``pil``."""
    indices: Sequence[int] | None = None
    if isinstance(dataset, Subset):
        dataset, indices = dataset.dataset, dataset.indices
    if not isinstance(dataset, JpegFolder) or mode == "pil":
        return None
    out: Dataset = EncodedJpegs(dataset, decode_here=mode == "cpu")
    if indices is not None:
        out = Subset(out, list(indices))
    if mode == "cpu":
        return out, None, None
    return out, collate_encoded, DeviceDecoder(dataset.image_size, device)
