"""Run the benchmarks (``make bench``) and print a summary of the targets.

    python -m benchmarks.run_all                      # all of them, default sizes
    python -m benchmarks.run_all --quick              # small sizes: a minute or two, for a smoke run
    python -m benchmarks.run_all --only throughput,masks --json bench-out/

Each benchmark is also a module of its own with options for its sizes
(``python -m benchmarks.bench_throughput --help``); run_all uses their defaults (or their
``QUICK`` options with ``--quick``). ``--json DIR`` writes every figure, with the machine and
the command, to ``DIR/bench-<date>.json``.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from benchmarks.common import csv_list, print_table
from benchmarks.machine import describe, machine_info

BENCHMARKS = {
    "throughput": "benchmarks.bench_throughput",
    "masks": "benchmarks.bench_masks",
    "pruning": "benchmarks.bench_pruning_cost",
    "ray": "benchmarks.bench_ray",
    "results": "benchmarks.bench_results_loading",
    "compile": "benchmarks.bench_compile",
    "before_after": "benchmarks.bench_before_after",
    "imagenet_input": "benchmarks.bench_imagenet_input",
    "sweep_order": "benchmarks.bench_sweep_order",
    "inference": "benchmarks.bench_inference",
}


def run_one(name: str, quick: bool) -> dict[str, Any]:
    """Run one benchmark at its default (or ``QUICK``) sizes; its result dict."""
    module = importlib.import_module(BENCHMARKS[name])
    start = time.perf_counter()
    result = module.run(module.build_parser().parse_args(module.QUICK if quick else []))
    return {"status": "ok", "seconds": time.perf_counter() - start, **result}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run_all", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", type=csv_list(), default=list(BENCHMARKS),
                        help=f"comma-separated subset of {', '.join(BENCHMARKS)}")
    parser.add_argument("--skip", type=csv_list(), default=[], help="benchmarks to leave out")
    parser.add_argument("--quick", action="store_true", help="small sizes (each benchmark's QUICK options)")
    parser.add_argument("--json", metavar="DIR", default=None,
                        help="write all results to DIR/bench-<date>.json")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.only + args.skip) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    info = machine_info()
    print(describe(info), flush=True)
    started = time.perf_counter()
    results: dict[str, Any] = {}
    for name in [n for n in args.only if n not in args.skip]:
        try:
            results[name] = run_one(name, args.quick)
        except Exception as e:  # one broken benchmark must not hide the others' figures
            traceback.print_exc()
            results[name] = {"status": "error", "error": f"{type(e).__name__}: {e}"}

    print(f"\n== Summary ({'quick' if args.quick else 'default'} sizes, "
          f"{time.perf_counter() - started:.0f} s in all) ==")
    print(describe(info))
    print_table([{"benchmark": n, "status": r["status"], "seconds": r.get("seconds"), "note": r.get("error")}
                 for n, r in results.items()])
    targets = [{"benchmark": n, **t} for n, r in results.items() for t in r.get("targets", [])]
    print_table(targets, ["benchmark", "target", "value", "status"], "targets")
    if args.json:
        folder = Path(args.json)
        folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
        path = folder / f"bench-{stamp}.json"
        command = "python -m benchmarks.run_all " + " ".join(sys.argv[1:] if argv is None else argv)
        path.write_text(json.dumps({"machine": info, "command": command.strip(), "quick": args.quick,
                                    "results": results}, indent=1, default=str))
        print(f"\nwrote {path}")
    return results


if __name__ == "__main__":
    main()
