"""ImageNet input pipeline: images/s of each ``data.decode`` mode, without a model.

Real JPEG files are written in the ImageNet folder layout into a temporary folder (smooth
colour images of ImageNet's typical sizes, 333-500 pixels a side, quality 90, about 20-40 kB
each, as ImageNet's photos are), then one training epoch of each loader is timed: PIL decoding
and transforms in DataLoader workers (``pil``, the recipe of torchvision's ImageNet example),
torchvision's libjpeg-turbo decoder and tensor transforms in the workers (``cpu``), and batched
decoding on the device (``device``: nvJPEG on CUDA; on a CPU-only machine it decodes in the main
process). RandomResizedCrop to ``--image-size`` and flips throughout, as ImageNet training does.
Each mode runs with no workers (one core's rate) and with ``--workers``; the cases alternate
round by round and the fastest round counts.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from benchmarks.common import (
    Case,
    best,
    csv_list,
    device_argument,
    entry_point,
    print_table,
    resolve,
    side_by_side,
)
from drive.config import DataConfig
from drive.data import load_dataset, make_loaders


def write_imagenet(root: Path, images: int, classes: int = 4, seed: int = 0) -> int:
    """``images`` JPEGs (spread over ``classes`` wnid folders) in ``train/`` and a few in
    ``val/``; returns the bytes written to ``train/``."""
    rng = np.random.default_rng(seed)
    total = 0
    for split, count in (("train", images), ("val", classes)):
        for i in range(count):
            folder = root / split / f"n{i % classes:08d}"
            folder.mkdir(parents=True, exist_ok=True)
            w, h = (500, int(rng.integers(333, 500))) if rng.random() < 0.5 else (int(rng.integers(333, 500)), 500)
            coarse = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8))
            path = folder / f"{split}_{i}.JPEG"
            coarse.resize((w, h), Image.BICUBIC).save(path, quality=90)
            total += path.stat().st_size if split == "train" else 0
    return total


def run(opts: argparse.Namespace) -> dict[str, Any]:
    device = resolve(opts.device)
    print(f"\n== ImageNet input pipeline ({device.type}): {opts.images} JPEGs, RandomResizedCrop "
          f"{opts.image_size} + flip, batch {opts.batch_size}, {opts.repeat} round(s) ==", flush=True)
    cases, loaders = [], {}
    with tempfile.TemporaryDirectory(prefix="bench_imagenet_") as tmp:
        size = write_imagenet(Path(tmp), opts.images)
        for mode in opts.modes:
            for workers in sorted({0, opts.workers}):
                cfg = DataConfig(root=tmp, image_size=opts.image_size, num_workers=workers, decode=mode)
                train, _ = make_loaders(load_dataset("imagenet", cfg), cfg, opts.batch_size, opts.batch_size,
                                        device, 0, channels_last=True)
                name = f"{mode} w{workers}"
                loaders[name] = train
                cases.append(Case(name, run=lambda t=train: sum(len(y) for _, y in t),
                                  warmup=lambda t=train: next(iter(t))))
        times = side_by_side(cases, opts.repeat, device)
    rows = [{"mode": name.split()[0], "workers": int(name.split()[1][1:]), "img_s": opts.images / best(t),
             "seconds": [round(v, 3) for v in t]} for name, t in times.items()]
    pil = {r["workers"]: r["img_s"] for r in rows if r["mode"] == "pil"}
    for r in rows:
        r["vs_pil_same_workers"] = r["img_s"] / pil[r["workers"]] if r["workers"] in pil else None
    print_table(rows, ["mode", "workers", "img_s", "vs_pil_same_workers"],
                f"images/s of one training epoch, no model ({size / opts.images / 1000:.0f} kB per JPEG)")
    return {"rows": rows, "jpeg_kb": size / opts.images / 1000}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_imagenet_input", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=512)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--modes", type=csv_list(), default=["pil", "cpu", "device"])
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    p.add_argument("--repeat", type=int, default=3)
    device_argument(p)
    return p


QUICK = ["--images", "64", "--repeat", "1"]


main = entry_point(build_parser, run)


if __name__ == "__main__":
    main()
