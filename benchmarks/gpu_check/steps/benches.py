"""The steps that run a benchmark module as it is, one model or data set at a time so that each
part's rows are kept as they come: bench_masks (masks), bench_pruning_cost (pruning_cost) and
bench_inference (inference)."""

from __future__ import annotations

import argparse
import shlex

from benchmarks.gpu_check.plan import sizes
from benchmarks.gpu_check.report import Partial
from benchmarks.gpu_check.steps.util import bench_options, command, run_bench

#: bench_inference's arguments in the --cpu smoke: its smoke sizes, one batch size
INFERENCE_SMOKE = ["--smoke", "--sparsities", "0.9,0.99", "--batches", "1", "--repeat", "1", "--round-seconds", "0"]


def _keep(rec: Partial, result: dict, *keys: str) -> None:
    """Append the rows of ``result``'s tables ``keys`` to ``rec``'s (timings left out)."""
    for key in keys:
        for r in result.get(key, []):
            rec.add(key, {k: v for k, v in r.items() if k != "seconds"})


def step_masks(opts: argparse.Namespace, rec: Partial) -> None:
    """bench_masks on each model: a 90%-sparse masked step against a dense one."""
    z = sizes(opts)
    models = ["digits_cnn"] if opts.cpu else ["resnet18", "vgg16_bn", "digits_cnn"]
    timing = ["--repeat", "1", "--round-seconds", "0.02"] if opts.cpu else ["--repeat", "10", "--round-seconds", "0.25"]
    for model in models:
        _keep(rec, run_bench("bench_masks", ["--models", model, *timing, "--device", z["device"]]), "rows", "targets")
    rec.update(headline="overhead " + ", ".join(f"{r['model']} {r['overhead_pct']:.1f}%" for r in rec.data["rows"]))


def step_pruning_cost(opts: argparse.Namespace, rec: Partial) -> None:
    """bench_pruning_cost on each data set; eager unless ``--pruning-compile auto``."""
    z = sizes(opts)
    if opts.cpu:
        argv = ["--datasets", "digits", "--methods", "drive,magnitude,imp", "--sparsities", "0.5",
                "--digits-epochs", "1", "--device", "cpu"]
    else:
        argv = ["--digits-epochs", "2", "--cifar-epochs", "2", "--sparsities", "0.9,0.98", "--device", z["device"]]
    if opts.pruning_compile == "off":
        argv += ["--set", "train.compile=false"]
    datasets = bench_options("bench_pruning_cost", argv).datasets
    rec.update(argv=command("bench_pruning_cost", argv),
               train_compile="False" if opts.pruning_compile == "off" else "auto")
    for dataset in datasets:
        _keep(rec, run_bench("bench_pruning_cost", [*argv, "--datasets", dataset]), "rows", "scoring_check", "targets")
    ratios = [f"{r['dataset']} {r['sparsity']:g}: {r['imp_time_ratio']:.0f}x"
              for r in rec.data.get("rows", []) if r["method"] == "drive" and r.get("imp_time_ratio")]
    rec.update(headline="IMP / DRIVE prune time " + ", ".join(ratios))


def step_inference(opts: argparse.Namespace, rec: Partial) -> None:
    """bench_inference on each model: ``--device cuda`` at its default sizes on the GPU, its
    smoke sizes on the CPU; ``--inference-args`` adds to them."""
    z = sizes(opts)
    argv = (INFERENCE_SMOKE if opts.cpu else []) + ["--device", z["device"], *shlex.split(opts.inference_args)]
    rec.update(argv=command("bench_inference", argv))
    models = bench_options("bench_inference", argv).models
    if models is None:
        from benchmarks.bench_inference import MODELS

        models = list(MODELS)
    for model in models:
        result = run_bench("bench_inference", [*argv, "--models", model])
        _keep(rec, result, "rows", "theory", "crossover")
        for note in result.get("notes", []):
            rec.add("notes", {"model": model, "note": note})
    rows = rec.data.get("rows", [])
    formats = sorted({f.rsplit(" x", 1)[0] for r in rows for f in r["formats"].split(", ")})
    best = min(rows, key=lambda r: r["ratio"]) if rows else None
    rec.update(headline=("crossover " + ", ".join(f"{c['model']} b{c['batch']} {c['crossover']}"
                                                  for c in rec.data.get("crossover", []))
                         + (f"; best sparse/dense {best['ratio']:.2f} ({best['model']} "
                            f"{best['sparsity']:.0%} b{best['batch']}, {best['device']})" if best else "")
                         + f"; formats {', '.join(formats)}"))
