"""The entry point, ``python3 -m benchmarks.gpu_check``, and its options: it orchestrates the
steps (:mod:`.runner`), or, started by the runner with ``--child STEP``, runs one step
(:mod:`.steps`). Standard library only until a step runs."""

from __future__ import annotations

import argparse
import sys

import benchmarks.gpu_check as package
from benchmarks.gpu_check.plan import CPU_BUDGET_S, DEFAULT_BUDGET_S


def csv_list(text: str) -> list[str]:
    """An argparse type for comma-separated step names."""
    return [x.strip() for x in text.split(",") if x.strip()]


def build_parser() -> argparse.ArgumentParser:
    """The check's options (the sizes' defaults depend on ``--cpu``: :func:`.plan.sizes`)."""
    p = argparse.ArgumentParser(prog="python3 -m benchmarks.gpu_check", description=package.__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cpu", action="store_true",
                   help="the smoke mode: tiny sizes on the CPU, CUDA-only steps skipped")
    p.add_argument("--out", default=None, help="results folder (default $OUT, else /tmp/gpu_check-DATE)")
    p.add_argument("--budget", type=float, default=None,
                   help=f"seconds for the whole check (default {DEFAULT_BUDGET_S:g}; --cpu {CPU_BUDGET_S:g})")
    p.add_argument("--only", type=csv_list, default=None, help="comma-separated steps to run")
    p.add_argument("--skip", type=csv_list, default=[], help="comma-separated steps to leave out")
    p.add_argument("--limit", action="append", default=[], metavar="STEP=SECONDS",
                   help="another time limit for a step (repeatable)")
    p.add_argument("--list", action="store_true", help="print the steps and their limits, run nothing")
    sizes = p.add_argument_group("sizes (defaults depend on --cpu)")
    sizes.add_argument("--images", type=int, default=None, help="throughput: images per epoch (50000)")
    sizes.add_argument("--batch-size", type=int, default=None, help="throughput: batch size (128)")
    sizes.add_argument("--repeat", type=int, default=None, help="throughput: timed epochs per case (2)")
    sizes.add_argument("--ablation-repeat", type=int, default=None,
                       help="ablation: timed epochs per variant (1; the compiled ones after a whole warm-up epoch)")
    sizes.add_argument("--workers", type=int, default=None, help="DataLoader workers of the plain recipes")
    sizes.add_argument("--jpeg-images", type=int, default=None, help="nvjpeg: JPEGs decoded per pass (512)")
    sizes.add_argument("--packing-procs", type=int, default=None, help="packing: processes at once (4)")
    sizes.add_argument("--packing-model", default=None, help="packing: model (resnet18)")
    sizes.add_argument("--packing-images", type=int, default=None,
                       help="packing: synthetic training images (19968: 156 batches of 128)")
    sizes.add_argument("--packing-epochs", type=int, default=None, help="packing: epochs per process (8)")
    sizes.add_argument("--pruning-compile", choices=["off", "auto"], default="off",
                       help="pruning_cost: train.compile of its experiments (off: every experiment is a "
                            "new model, which torch.compile would compile again)")
    sizes.add_argument("--inference-args", default="", help="inference: extra arguments of bench_inference")
    sizes.add_argument("--suite", default="tests/drive", help="drive_suite: the test paths")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--child-out", default=None, help=argparse.SUPPRESS)
    p.add_argument("--deadline", type=float, default=None, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the check (or, with ``--child``, one step of it); the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    opts = build_parser().parse_args(argv)
    if opts.child:
        from benchmarks.gpu_check.steps import run_step

        return run_step(opts.child, opts)
    from benchmarks.gpu_check.runner import orchestrate

    return orchestrate(opts, argv)
