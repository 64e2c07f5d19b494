"""What sparsity buys at inference: the dense-masked forward pass against sparse execution.

For each model and sparsity the masks are global magnitude masks (``Masks.prune_to`` on |w| of
the freshly initialised model; ``--scope layerwise``: the same sparsity in every layer). Global
magnitude at initialisation prunes the classifiers of both models away from 95% (mnist1d_cnn:
90%); the ``collapsed`` column counts such layers, which then cost nothing in either model.
Two forward passes of the same pruned network are timed side by side, in alternating rounds:

- dense-masked: the model as it runs in training and evaluation, dense kernels over zeroed
  weights (image models in channels_last, as drive.experiment runs them, the faster layout of
  CPU convolutions; ``--memory-format contiguous`` for the other);
- sparse: ``drive.inference.sparse_execution`` (CSR linear layers, column-compressed im2col +
  CSR convolutions; 2:4 kernels for the linear layers that allow them on CUDA >= 8.0).

``ratio`` = sparse / dense time (median over rounds of the two adjacent timings): below 1
sparse execution is faster. Next to it the theory from ``drive.flops``: ``flops_left``, the
share of the dense FLOPs that remain, and ``ideal_x`` = 1 / flops_left, the speed-up a sparse
kernel as efficient per FLOP as the dense one would reach; ``speedup_x`` = 1 / ratio is what
was measured. The crossover is the lowest sparsity at which sparse execution beats dense, per
model, device and batch size: the lowest at which both the median ratio and the fastest
rounds' ratio are below 1 (so that noise around 1 is not a crossover). The outputs of both models are compared (``max_err``: the
largest difference relative to the largest output).
"""

from __future__ import annotations

import argparse
import copy
from collections import Counter
from typing import Any

import torch

from benchmarks.common import Case, csv_list, entry_point, print_table, side_by_side
from drive.flops import count_costs
from drive.inference import sparse_execution, time_inference
from drive.masks import Masks
from drive.models import build_model

#: name -> (build_model arguments, sample shape); the CIFAR and MNIST-1D shapes
MODELS = {
    "resnet20": ({"name": "resnet20", "num_classes": 10, "in_channels": 3, "image_size": 32},
                 (3, 32, 32)),
    "mnist1d_cnn": ({"name": "mnist1d_cnn", "num_classes": 10, "in_channels": 1, "image_size": 40,
                     "sample_shape": (1, 40)}, (1, 40)),
}
#: --smoke: the same architectures at the tiniest sizes (a smoke test runs in seconds)
SMOKE_MODELS = {
    "resnet20": ({"name": "resnet20", "num_classes": 10, "in_channels": 3, "image_size": 8,
                  "width": 0.25}, (3, 8, 8)),
    "mnist1d_cnn": MODELS["mnist1d_cnn"],
}


def side_by_side_timer(cases: dict, repeat: int, device: torch.device | None) -> dict[str, list[float]]:
    """drive.inference's timer interface on the benchmarks' one timing helper."""
    return side_by_side([Case(name, run) for name, run in cases.items()], repeat, device)


def pruned(name: str, sparsity: float, opts: argparse.Namespace) -> tuple[torch.nn.Module, Masks, tuple]:
    """The model (seeded init, eval mode) under global magnitude masks at ``sparsity``."""
    args, shape = (SMOKE_MODELS if opts.smoke else MODELS)[name]
    torch.manual_seed(opts.seed)
    model = build_model(**args).eval()
    masks = Masks.for_model(model)
    masks.prune_to({n: w.detach().abs() for n, w in masks.weights.items()}, 1.0 - sparsity,
                   scope=opts.scope)
    return model, masks, shape


def formats(sparse: torch.nn.Module) -> str:
    """``'csr-im2col x19, csr x1'``: the execution format of the masked layers."""
    counts = Counter(sparse.sparse_formats.values())
    return ", ".join(f"{f} x{n}" for f, n in counts.items())


def measure(name: str, sparsity: float, device: torch.device,
            opts: argparse.Namespace) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The theory row and one timing row per batch size for one model at one sparsity."""
    model, masks, shape = pruned(name, sparsity, opts)
    costs = count_costs(model, shape, masks.keep)
    theory = {"model": name, "sparsity": sparsity, "density": round(masks.density(), 5),
              "mflops": costs.flops / 1e6, "mflops_dense": costs.flops_dense / 1e6,
              "flops_left": costs.flops_fraction, "kb_dense": costs.bytes_dense / 1024,
              "kb_csr": costs.bytes_csr / 1024, "kb_bitmap": costs.bytes_bitmap / 1024,
              "collapsed": len(masks.collapsed_layers())}
    model = model.to(device)
    keep = {n: m.to(device) for n, m in masks.keep.items()}
    sparse = sparse_execution(model, keep)
    image = len(shape) == 3 and opts.memory_format == "channels_last"
    dense = copy.deepcopy(model).to(memory_format=torch.channels_last) if image else model
    timed = time_inference(dense, sparse, shape, opts.batches, repeat=opts.repeat,
                           round_seconds=opts.round_seconds, timer=side_by_side_timer,
                           device=device, seed=opts.seed,
                           memory_format=torch.channels_last if image else torch.contiguous_format)
    rows = []
    for t in timed:
        rows.append({"model": name, "device": device.type, "sparsity": sparsity, "batch": t["batch"],
                     "flops_left": costs.flops_fraction, "ideal_x": 1 / costs.flops_fraction,
                     "dense_ms": 1000 * t["dense_s"], "sparse_ms": 1000 * t["sparse_s"],
                     "ratio": t["ratio"], "speedup_x": 1 / t["ratio"],
                     "ratio_best": t["ratio_best"],
                     "max_err": t["max_abs_diff"] / max(t["max_abs_output"], 1e-30),
                     "calls": t["calls"], "rounds": t["rounds"], "formats": formats(sparse),
                     "seconds": {k: [round(s, 6) for s in v] for k, v in t["seconds"].items()}})
    return theory, rows


def crossovers(rows: list[dict[str, Any]], sparsities: list[float]) -> list[dict[str, Any]]:
    """Per model, device and batch: the lowest sparsity at which sparse execution was faster
    (median ratio and best-round ratio both below 1)."""
    out = []
    for key in dict.fromkeys((r["model"], r["device"], r["batch"]) for r in rows):
        mine = sorted((r for r in rows if (r["model"], r["device"], r["batch"]) == key),
                      key=lambda r: r["sparsity"])
        faster = [r for r in mine if r["ratio"] < 1 and r["ratio_best"] < 1]
        top = mine[-1]
        out.append({"model": key[0], "device": key[1], "batch": key[2],
                    "crossover": (f"{faster[0]['sparsity']:.0%}" if faster
                                  else f"none up to {max(sparsities):.0%}"),
                    "faster_at": ", ".join(f"{r['sparsity']:.0%}" for r in faster) or "-",
                    f"ratio_at_{top['sparsity']:.0%}": top["ratio"]})
    return out


def devices(requested: list[str]) -> tuple[list[torch.device], list[str]]:
    """The devices to run on, and notes for those skipped."""
    chosen, notes = [], []
    for d in requested:
        names = ["cpu"] + (["cuda"] if torch.cuda.is_available() else []) if d == "auto" else [d]
        for n in names:
            if n.startswith("cuda") and not torch.cuda.is_available():
                notes.append(f"{n}: skipped, CUDA is not available")
            elif torch.device(n) not in chosen:
                chosen.append(torch.device(n))
    return chosen, notes


def run(opts: argparse.Namespace) -> dict[str, Any]:
    opts.models = opts.models or list(MODELS)
    unknown = sorted(set(opts.models) - set(MODELS))
    if unknown:
        raise SystemExit(f"--models: unknown {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    chosen, notes = devices(opts.device)
    print(f"\n== Inference: dense-masked vs sparse execution ({', '.join(d.type for d in chosen)}; "
          f"{opts.scope} magnitude masks; {opts.repeat} alternating rounds of ~{opts.round_seconds:g} s "
          f"per case; torch threads "
          f"{torch.get_num_threads()}{'; SMOKE sizes' if opts.smoke else ''}) ==", flush=True)
    for note in notes:
        print(note)
    theory, rows = [], []
    for device in chosen:
        for name in opts.models:
            for sparsity in opts.sparsities:
                th, timed = measure(name, sparsity, device, opts)
                if device == chosen[0]:
                    theory.append(th)
                rows.extend(timed)
                print_table(timed, ["model", "device", "sparsity", "batch", "flops_left", "dense_ms",
                                    "sparse_ms", "ratio"])
    print_table(theory, ["model", "sparsity", "density", "mflops_dense", "mflops", "flops_left",
                         "kb_dense", "kb_csr", "kb_bitmap", "collapsed"],
                "theory (drive.flops; per sample; FLOPs = 2 x multiply-accumulates): MFLOPs and "
                "parameter kB dense, left under the masks, stored as CSR / bitmap")
    print_table(rows, ["model", "device", "sparsity", "batch", "flops_left", "ideal_x", "dense_ms",
                       "sparse_ms", "ratio", "ratio_best", "speedup_x", "max_err", "calls"],
                "forward pass, ms per call (median of rounds); ratio = sparse / dense (median over "
                "rounds; < 1: sparse is faster); ideal_x = 1 / flops_left, speedup_x = 1 / ratio")
    print_table([{"model": r["model"], "device": r["device"], "formats": r["formats"]}
                 for r in {(r["model"], r["device"]): r for r in rows}.values()],
                title="execution formats of the masked layers (sparse model)")
    cross = crossovers(rows, opts.sparsities)
    print_table(cross, title="crossover: lowest sparsity at which sparse execution beat dense-masked")
    return {"rows": rows, "theory": theory, "crossover": cross, "notes": notes}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_inference", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", type=csv_list(), default=None,
                   help=f"comma-separated subset of {', '.join(MODELS)} (default: all)")
    p.add_argument("--sparsities", type=csv_list(float), default=[0.9, 0.95, 0.98, 0.99])
    p.add_argument("--batches", type=csv_list(int), default=[1, 256])
    p.add_argument("--repeat", type=int, default=7, help="alternating rounds per case")
    p.add_argument("--round-seconds", type=float, default=0.2,
                   help="about how long a round of forward passes of the slower model takes")
    p.add_argument("--device", type=csv_list(), default=["auto"],
                   help="comma-separated: cpu, cuda, or auto (the CPU, and CUDA when available)")
    p.add_argument("--memory-format", choices=["channels_last", "contiguous"], default="channels_last",
                   help="layout of the dense-masked image models")
    p.add_argument("--scope", choices=["global", "layerwise"], default="global",
                   help="one magnitude ranking over all layers, or the same sparsity per layer")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smoke", action="store_true",
                   help="tiniest sizes (resnet20 at width 0.25 on 8x8 images): seconds, for a smoke test")
    return p


QUICK = ["--repeat", "3", "--round-seconds", "0.05", "--batches", "1,64"]


main = entry_point(build_parser, run)


if __name__ == "__main__":
    main()
