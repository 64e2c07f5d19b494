"""Training throughput: the project's training path against the plain PyTorch recipe.

Both paths train the same model from the same initial weights with the same batch size and SGD
settings on the same images: random uint8 CIFAR-shaped images written in the real CIFAR-10
pickle format into a temporary folder.

* plain: what a user would write. ``torchvision.datasets.CIFAR10`` with ``RandomCrop(32, 4)``,
  ``RandomHorizontalFlip``, ``ToTensor``, ``Normalize``; a shuffling ``DataLoader`` with worker
  processes (``pin_memory`` on CUDA); float32; SGD with momentum. It is given the benefit of the
  doubt: persistent workers, and no per-step ``loss.item()``.
* project: ``drive.data.load_dataset("cifar10")`` + ``drive.data.make_loaders`` (uint8 images
  held on the device, crop and flip per batch on the device) + ``drive.train.train_epoch`` with
  90%-sparse masks and the project's settings: channels_last (CPU and CUDA), and on CUDA bf16
  autocast and cudnn.benchmark.

Each path is warmed up with a batch, then one epoch over ``--images`` images is timed
(``--repeat`` times, the paths alternating; the fastest epoch counts). Each data pipeline is
also timed alone (iterating the loader, no model), which shows whether it can limit training.
On CUDA the default is a full CIFAR-10-sized epoch (50,000 images); elsewhere a few hundred
(ResNet-18 trains at tens of images/s on CPU).
"""

from __future__ import annotations

import argparse
import itertools
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader
from torchvision import transforms
from torchvision.datasets import CIFAR10

from benchmarks.common import (Case, best, csv_list, device_argument, entry_point, print_table, resolve,
                               side_by_side, verdict)
from drive.config import DataConfig, TrainConfig
from drive.data import load_dataset, make_loaders
from drive.data.safe_pickle import dump_batch
from drive.data.cifar import CIFAR10_MEAN, CIFAR10_STD
from drive.masks import Masks
from drive.models import build_model
from drive.train import make_optimizer, train_epoch

CIFAR10_TRAIN = 50_000
H100_EPOCH_TARGET_S = 3.0
CUDA_RATIO_TARGET = 3.0
TIE = 0.02  # ratios this close to 1 are within the run-to-run noise of a shared 2-core machine


class GeneratedCIFAR10(CIFAR10):
    """torchvision's CIFAR10 reading the files written by :func:`write_cifar10`: same format,
    but not the official bytes, so the md5 checks are off (``None`` = only check existence)."""

    train_list = [[name, None] for name, _ in CIFAR10.train_list]
    test_list = [[name, None] for name, _ in CIFAR10.test_list]
    meta = {**CIFAR10.meta, "md5": None}


def write_cifar10(root: Path, n_train: int, n_test: int = 100, seed: int = 0) -> None:
    """Random uint8 images in the CIFAR-10 python format under ``root/cifar-10-batches-py``:
    five training batches, a test batch and ``batches.meta``, as in the official archive."""
    folder = root / CIFAR10.base_folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)

    def dump(name: str, n: int) -> None:
        entry = {"batch_label": name, "labels": rng.integers(0, 10, n).tolist(),
                 "data": rng.integers(0, 256, (n, 3 * 32 * 32), dtype=np.uint8),
                 "filenames": [f"{name}_{i}.png" for i in range(n)]}
        dump_batch(entry, folder / name)

    for i, (name, _) in enumerate(CIFAR10.train_list):  # n_train split over the five batches
        dump(name, n_train // 5 + (i < n_train % 5))
    dump(CIFAR10.test_list[0][0], n_test)
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    dump_batch({"label_names": classes, "num_cases_per_batch": n_train // 5, "num_vis": 3072},
               folder / CIFAR10.meta["filename"])


def _model(name: str, device: torch.device, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)  # both paths start from the same weights
    return build_model(name, 10, 3, 32).to(device)


def plain_epoch(model: torch.nn.Module, loader: Any, optimizer: torch.optim.Optimizer,
                device: torch.device) -> None:
    """The training loop of the plain recipe."""
    model.train()
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def data_case(name: str, loader: Any) -> Case:
    """One pass over a loader alone, no model: how fast the data pipeline delivers batches."""
    return Case(name, run=lambda: sum(len(y) for _, y in loader),
                warmup=lambda: sum(len(y) for _, y in itertools.islice(loader, 1)))


def plain_case(model_name: str, root: Path, opts: argparse.Namespace,
               device: torch.device) -> tuple[Case, Case]:
    """The plain recipe (torchvision data set and transforms, DataLoader, float32), and its
    data pipeline alone."""
    transform = transforms.Compose([
        transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(), transforms.ToTensor(),
        transforms.Normalize(CIFAR10_MEAN, CIFAR10_STD)])
    dataset = GeneratedCIFAR10(str(root), train=True, transform=transform)
    loader = DataLoader(dataset, batch_size=opts.batch_size, shuffle=True, num_workers=opts.workers,
                        pin_memory=device.type == "cuda", persistent_workers=opts.workers > 0)
    model = _model(model_name, device, opts.seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=opts.lr, momentum=0.9, weight_decay=5e-4)

    def setup() -> None:  # a user's script leaves cuDNN's defaults alone
        torch.backends.cudnn.benchmark = False

    train = Case("plain", run=lambda: (setup(), plain_epoch(model, loader, optimizer, device)),
                 warmup=lambda: (setup(), plain_epoch(model, itertools.islice(loader, opts.warmup_batches),
                                                      optimizer, device)))
    return train, data_case("plain_data", loader)


def project_case(model_name: str, root: Path, opts: argparse.Namespace,
                 device: torch.device) -> tuple[Case, Case]:
    """The project's path (device-resident loader, train_epoch with 90%-sparse masks,
    channels_last, and on CUDA bf16 autocast and cudnn.benchmark, as drive.experiment sets them
    up), and its data pipeline alone."""
    data_cfg = DataConfig(root=str(root), verify=False)  # generated files, not the official ones
    cfg = TrainConfig(batch_size=opts.batch_size, lr=opts.lr, momentum=0.9, weight_decay=5e-4)
    data = load_dataset("cifar10", data_cfg)
    channels_last = cfg.channels_last
    model = _model(model_name, device, opts.seed)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    masks = Masks.for_model(model)
    masks.prune_to({n: w.detach().abs() for n, w in masks.weights.items()}, 0.1)
    train, _ = make_loaders(data, data_cfg, cfg.batch_size, cfg.eval_batch_size, device, opts.seed,
                            channels_last=channels_last)
    optimizer = make_optimizer(model, cfg)

    def epoch(batches: Any) -> None:
        torch.backends.cudnn.benchmark = device.type == "cuda"
        train_epoch(model, batches, optimizer, masks, cfg, device)

    training = Case("project", run=lambda: epoch(train),
                    warmup=lambda: epoch(itertools.islice(train, opts.warmup_batches)))
    return training, data_case("project_data", train)


def measure(model_name: str, root: Path, opts: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Images/s of both paths on one model, their ratio, the CIFAR-10 epoch time, and how fast
    each path's data pipeline is alone."""
    paths = [plain_case(model_name, root, opts, device), project_case(model_name, root, opts, device)]
    times = side_by_side([train for train, _ in paths], opts.repeat, device)
    times.update(side_by_side([data for _, data in paths], opts.repeat, device))
    rate = {name: opts.images / best(t) for name, t in times.items()}
    row = {"model": model_name, "device": device.type, "batch": opts.batch_size, "images": opts.images,
           "plain_img_s": rate["plain"], "project_img_s": rate["project"],
           "ratio": rate["project"] / rate["plain"], "plain_epoch_50k_s": CIFAR10_TRAIN / rate["plain"],
           "project_epoch_50k_s": CIFAR10_TRAIN / rate["project"],
           "epoch_50k": "measured" if opts.images >= CIFAR10_TRAIN else "projected",
           "plain_data_img_s": rate["plain_data"], "project_data_img_s": rate["project_data"],
           "seconds": {k: [round(t, 3) for t in v] for k, v in times.items()}}
    return row


def targets(rows: list[dict[str, Any]], gpu: str | None) -> list[dict[str, Any]]:
    """The issue's throughput targets, judged on the measured rows."""
    out = []
    for r in rows:
        if r["device"] == "cuda":
            out.append({"target": f"{r['model']}: project >= {CUDA_RATIO_TARGET:g}x plain on CUDA",
                        "value": f"{r['ratio']:.2f}x", "status": verdict(r["ratio"] >= CUDA_RATIO_TARGET)})
            if r["model"] == "resnet18" and gpu and "H100" in gpu:
                out.append({"target": f"resnet18 CIFAR-10 epoch < {H100_EPOCH_TARGET_S:g} s on H100",
                            "value": f"{r['project_epoch_50k_s']:.2f} s ({r['epoch_50k']})",
                            "status": verdict(r["project_epoch_50k_s"] < H100_EPOCH_TARGET_S)})
        else:  # a tie within the measurement's resolution is not "slower"
            status = verdict(r["ratio"] >= 1.0) if not 1 - TIE < r["ratio"] < 1 else f"tie (within {TIE:.0%})"
            out.append({"target": f"{r['model']}: project not slower than plain on CPU",
                        "value": f"{r['ratio']:.3f}x", "status": status})
    return out


def run(opts: argparse.Namespace) -> dict[str, Any]:
    device = resolve(opts.device)
    if opts.images is None:
        opts.images = CIFAR10_TRAIN if device.type == "cuda" else 512
    print(f"\n== Training throughput: project path vs plain PyTorch recipe ({device.type}, batch "
          f"{opts.batch_size}, {opts.images} timed images per epoch after {opts.warmup_batches} warm-up "
          f"batch(es), {opts.repeat} round(s), DataLoader workers {opts.workers}) ==", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_cifar_") as tmp:
        write_cifar10(Path(tmp), opts.images)
        for name in opts.models:
            rows.append(measure(name, Path(tmp), opts, device))
            print_table(rows[-1:], ["model", "plain_img_s", "project_img_s", "ratio"])
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    checks = targets(rows, gpu)
    print_table(rows, ["model", "device", "batch", "images", "plain_img_s", "project_img_s", "ratio",
                       "plain_epoch_50k_s", "project_epoch_50k_s", "epoch_50k"], "throughput (images/s)")
    print_table(rows, ["model", "plain_data_img_s", "project_data_img_s"],
                "the data pipelines alone (no model), images/s")
    print_table(checks, title="targets")
    return {"rows": rows, "targets": checks}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_throughput", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", type=csv_list(), default=["resnet18", "vgg16_bn", "resnet20"],
                   help="CIFAR models to train (resnet20: a small one, where the data pipeline matters)")
    p.add_argument("--images", type=int, default=None,
                   help="timed images per epoch (default 50000 on CUDA, 512 on CPU)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--warmup-batches", type=int, default=1)
    p.add_argument("--repeat", type=int, default=4, help="timed epochs per path (the fastest counts)")
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                   help="DataLoader workers of the plain recipe (default: cores, at most 8)")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    device_argument(p)
    return p


QUICK = ["--images", "128", "--batch-size", "64", "--repeat", "1"]


main = entry_point(build_parser, run)


if __name__ == "__main__":
    main()
