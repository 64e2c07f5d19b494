"""JPEG folders decoded by torchvision (in the workers, or batched on the device) against PIL."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from drive.config import DataConfig
from drive.data import load_dataset, make_loaders
from drive.data.jpeg import JpegFolder, draw_crop, pil_transform, resolve_decode

CPU = torch.device("cpu")


def write_jpegs(root: Path, per_class: int = 4) -> None:
    """Smooth colour images (upsampled noise) of varied sizes, as real photos are smooth."""
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for wnid in ("n01", "n02"):
            (root / split / wnid).mkdir(parents=True)
            for i in range(per_class):
                h, w = (int(v) for v in rng.integers(40, 90, 2))
                coarse = Image.fromarray(rng.integers(0, 256, (5, 6, 3), dtype=np.uint8))
                coarse.resize((w, h), Image.BICUBIC).save(root / split / wnid / f"{i}.JPEG", quality=95)


def loaders(root: Path, decode: str, workers: int = 0, device: torch.device = CPU, **cfg):
    cfg = DataConfig(root=str(root), image_size=32, num_workers=workers, decode=decode, **cfg)
    return make_loaders(load_dataset("imagenet", cfg), cfg, 3, 4, device, 0)


def epoch(loader, e):
    loader.set_epoch(e)
    xs, ys = zip(*loader)
    return torch.cat(xs), torch.cat(ys)


def test_auto_decodes_on_the_gpu_under_cuda_and_with_torchvision_in_the_workers_elsewhere():
    assert resolve_decode("auto", torch.device("cuda")) == "device"
    assert resolve_decode("auto", CPU) == "cpu" and resolve_decode("pil", torch.device("cuda")) == "pil"
    with pytest.raises(ValueError, match="data.decode: must be one of auto, pil, cpu, device"):
        resolve_decode("nvjpeg", CPU)


def test_crops_and_flips_are_drawn_as_the_pil_transforms_draw_them(tmp_path):
    """Under a sample's seed, draw_crop makes the same random calls as RandomResizedCrop and
    RandomHorizontalFlip on the PIL image: the same box and flip."""
    from torchvision import transforms

    write_jpegs(tmp_path)
    folder = JpegFolder(str(tmp_path / "train"), 32, train=True)
    flips = []
    for i, (path, _) in enumerate(folder.samples):
        image = Image.open(path).convert("RGB")
        torch.manual_seed(100 + i)
        box = draw_crop(folder, image.height, image.width)
        torch.manual_seed(100 + i)
        expected = transforms.RandomResizedCrop.get_params(image, [0.08, 1.0], [3 / 4, 4 / 3])
        assert box[:4].tolist() == list(expected) and box[4].item() == int(torch.rand(1) < 0.5)
        flips.append(box[4].item())
    assert 0 < sum(flips) < len(flips)
    torch.manual_seed(0)
    test_box = draw_crop(JpegFolder(str(tmp_path / "val"), 32, train=False), 50, 60)
    assert test_box.tolist() == [-1] * 5 and torch.equal(torch.get_rng_state(), torch.manual_seed(0).get_state())


@pytest.mark.parametrize("augment", [True, False])
def test_torchvision_decoding_gives_the_pil_images_up_to_rounding(tmp_path, augment):
    """The same samples, crops and flips in every mode; the decoders and resizers differ by a
    few grey levels (a different crop would differ by tens)."""
    write_jpegs(tmp_path)
    batches = {mode: epoch(loaders(tmp_path, mode, augment=augment)[0], 2) for mode in ("pil", "cpu", "device")}
    (x_cpu, y_cpu), (x_dev, y_dev), (x_pil, y_pil) = batches["cpu"], batches["device"], batches["pil"]
    assert torch.equal(y_cpu, y_pil) and torch.equal(y_dev, y_pil)
    assert torch.equal(x_cpu, x_dev)  # the same decoder and crop, in the worker or on the device
    levels = (x_cpu - x_pil).abs() * 0.25 * 255  # in grey levels (std ~0.25 of the unit range)
    assert levels.mean() < 3
    shifted = (x_cpu - x_pil.roll(1, dims=0)).abs().mul(0.25 * 255).mean()
    assert shifted > 4 * levels.mean()
    test = {mode: epoch(loaders(tmp_path, mode)[1], 0) for mode in ("pil", "device")}
    assert (test["pil"][0] - test["device"][0]).abs().mul(0.25 * 255).mean() < 3


def test_files_torchvision_cannot_decode_fall_back_to_pil(tmp_path):
    write_jpegs(tmp_path, per_class=2)
    rgb = np.random.default_rng(1).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "train" / "n01" / "png_in_disguise.JPEG", format="PNG")
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "train" / "n02" / "cmyk.JPEG", quality=95)
    for mode in ("cpu", "device"):
        x, y = epoch(loaders(tmp_path, mode, workers=0)[0], 0)
        assert x.shape == (6, 3, 32, 32) and torch.isfinite(x).all() and sorted(y.tolist()) == [0, 0, 0, 1, 1, 1]


def test_device_decoding_with_workers_and_scoring_samples(tmp_path):
    write_jpegs(tmp_path, per_class=3)
    train, _ = loaders(tmp_path, "device", workers=2)
    x2, y2 = epoch(train, 1)
    x0, y0 = epoch(loaders(tmp_path, "device", workers=0)[0], 1)
    assert torch.equal(x0, x2) and torch.equal(y0, y2)
    xs, ys = train.samples(torch.tensor([0, 4]))
    assert xs.shape == (2, 3, 32, 32) and xs.dtype == torch.float32 and ys.tolist() == [0, 1]
    cfg = DataConfig(root=str(tmp_path), image_size=32, decode="device", train_size=4)
    capped, _ = make_loaders(load_dataset("imagenet", cfg), cfg, 3, 4, CPU, 0)
    assert sorted(epoch(capped, 0)[1].tolist()) == sorted(epoch(capped, 1)[1].tolist()) and capped.num_samples == 4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_decoding_gives_the_cpu_batches_up_to_rounding(tmp_path):
    write_jpegs(tmp_path)
    x_gpu, y_gpu = epoch(loaders(tmp_path, "device", device=torch.device("cuda"))[0], 2)
    x_cpu, y_cpu = epoch(loaders(tmp_path, "cpu")[0], 2)
    assert x_gpu.device.type == "cuda" and torch.equal(y_gpu.cpu(), y_cpu)
    assert (x_gpu.cpu() - x_cpu).abs().mul(0.25 * 255).mean() < 3


def test_pil_transform_is_the_one_imagenet_used():
    steps = [type(t).__name__ for t in pil_transform(32, True).transforms]
    assert steps == ["RandomResizedCrop", "RandomHorizontalFlip", "PILToTensor"]
    assert [type(t).__name__ for t in pil_transform(32, False).transforms] == ["Resize", "CenterCrop", "PILToTensor"]
