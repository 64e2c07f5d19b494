"""The data steps: JPEG decoding on the CPU against batched nvJPEG on the GPU (nvjpeg), and
``benchmarks.bench_imagenet_input``'s loaders (imagenet_input)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from benchmarks.gpu_check.plan import sizes
from benchmarks.gpu_check.report import Partial
from benchmarks.gpu_check.steps.util import command, run_bench, say

#: the size of the JPEGs (ImageNet's typical photo), both orientations
JPEG_SIDES = (375, 500)


def make_jpegs(n: int, distinct: int) -> list[Any]:
    """``n`` JPEGs (``distinct`` different ones, repeated), smooth photo-like images of
    ImageNet's typical size, quality 90, made in memory from a seeded generator."""
    import torch
    import torch.nn.functional as F
    from torchvision.io import encode_jpeg

    gen = torch.Generator().manual_seed(0)
    datas = []
    for i in range(distinct):
        h, w = JPEG_SIDES if i % 2 else JPEG_SIDES[::-1]
        coarse = torch.rand(1, 3, 12, 16, generator=gen)
        img = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)[0]
        img = (img + 0.03 * torch.randn(img.shape, generator=gen)).clamp(0, 1).mul(255).round().to(torch.uint8)
        datas.append(encode_jpeg(img, quality=90))
    return [datas[i % distinct] for i in range(n)]


def step_nvjpeg(opts: argparse.Namespace, rec: Partial) -> None:
    """Images/s of CPU decoding (one thread, a thread pool) and of batched GPU decoding, and
    how far the GPU's pixels are from the CPU's."""
    import concurrent.futures
    import time

    import torch
    from torchvision.io import ImageReadMode, decode_jpeg

    from benchmarks.common import fastest

    n = sizes(opts)["jpeg_images"]
    distinct = max(1, min(n, 64))
    start = time.perf_counter()
    datas = make_jpegs(n, distinct)
    mbytes = sum(d.numel() for d in datas) / 1e6
    pixels = n * JPEG_SIDES[0] * JPEG_SIDES[1] / 1e6
    rec.update(images=n, distinct=distinct, mb=round(mbytes, 2), megapixels=round(pixels, 1),
               encode_s=round(time.perf_counter() - start, 2))
    say(f"{n} JPEGs ({distinct} distinct, {mbytes:.1f} MB, 500x375 / 375x500, quality 90)")

    def row(name: str, seconds: float, **extra: Any) -> None:
        rec.add("rows", {"decoder": name, "img_s": n / seconds, "mpix_s": pixels / seconds, **extra})
        say(f"  {name}: {n / seconds:,.0f} img/s")

    torch.set_num_threads(1)
    cpu_one = fastest(lambda: [decode_jpeg(d, mode=ImageReadMode.RGB) for d in datas], 2)
    row("cpu, 1 thread", cpu_one)
    threads = min(8, os.cpu_count() or 1)
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        cpu_pool = fastest(lambda: list(pool.map(lambda d: decode_jpeg(d, mode=ImageReadMode.RGB), datas)), 2)
    row(f"cpu, {threads} threads", cpu_pool, threads=threads)
    if not torch.cuda.is_available():
        rec.update(headline=f"CPU {n / cpu_one:,.0f} img/s per thread; no CUDA: nvJPEG not measured",
                   note="no CUDA: GPU decoding not measured")
        return
    reference = [decode_jpeg(d, mode=ImageReadMode.RGB) for d in datas[:distinct]]
    for batch in (1, 32, 128, n):
        if batch > n:
            continue
        seconds = fastest(lambda: [decode_jpeg(datas[i:i + batch], mode=ImageReadMode.RGB, device="cuda")
                                   for i in range(0, n, batch)], 3, "cuda")
        row(f"cuda, batch {batch}", seconds, batch=batch, vs_cpu_thread=cpu_one / seconds,
            vs_cpu_pool=cpu_pool / seconds)
    gpu = decode_jpeg(datas[:distinct], mode=ImageReadMode.RGB, device="cuda")
    diffs = [(g.cpu().int() - r.int()).abs() for g, r in zip(gpu, reference)]
    rec.update(max_abs_diff_vs_cpu=max(int(d.max()) for d in diffs),
               mean_abs_diff_vs_cpu=sum(float(d.float().mean()) for d in diffs) / len(diffs),
               shapes_match=all(g.shape == r.shape for g, r in zip(gpu, reference)))
    fastest_gpu = max(r["img_s"] for r in rec.data["rows"] if r["decoder"].startswith("cuda"))
    rec.update(headline=(f"nvJPEG {fastest_gpu:,.0f} img/s = {fastest_gpu * cpu_one / n:.1f}x one CPU thread, "
                         f"{fastest_gpu * cpu_pool / n:.1f}x {threads} threads; max |GPU - CPU| "
                         f"{rec.data['max_abs_diff_vs_cpu']} levels"))


def step_imagenet_input(opts: argparse.Namespace, rec: Partial) -> None:
    """bench_imagenet_input: PIL / CPU / device decoding in the loader."""
    z = sizes(opts)
    if opts.cpu:
        argv = ["--images", "8", "--image-size", "32", "--batch-size", "4", "--workers", "0", "--repeat", "1"]
    else:
        argv = ["--images", "1024", "--batch-size", "128", "--workers", str(z["workers"]), "--repeat", "2"]
    argv += ["--device", z["device"]]
    rec.update(argv=command("bench_imagenet_input", argv))
    result = run_bench("bench_imagenet_input", argv)
    rows = [{k: v for k, v in r.items() if not isinstance(v, (list, dict))} for r in result["rows"]]
    rec.update(rows=rows, headline=", ".join(f"{r['mode']} w{r['workers']} {r['img_s']:,.0f}" for r in rows) + " img/s")
