"""A sweep's wall time with its trials started in grid order and longest first.

The sweep (by default the demo, ``sweeps/configs/demo.yaml``: 94 digits trials, two of them IMP
trials ~15 times longer than the others) runs twice on embedded local Ray, once with the trials
in the order of the grid (as before :func:`sweeps.space.longest_first`: IMP last) and once
longest first, ``--rounds`` times alternating. For each run: the wall time of the sweep (Ray's
start included, as ``drive-sweep demo`` pays it), the total work (the sum of the trials' spans,
from the ``time`` of their record's first and last lines), the ideal wall time (total work / the
trials that run at once) and the efficiency (ideal / wall), and the tail: how long the last
trial to finish ran after every other trial had ended.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any
from unittest import mock

from benchmarks.common import entry_point, print_table

DEMO = Path(__file__).resolve().parents[1] / "sweeps" / "configs" / "demo.yaml"


def trial_spans(path: str) -> list[tuple[float, float]]:
    """``(start, end)`` wall-clock times of every trial of the sweep at ``path``."""
    spans = []
    for record in Path(path).glob("*/metrics.jsonl"):
        lines = [json.loads(line) for line in record.read_text().splitlines() if line.strip()]
        spans.append((lines[0]["time"], lines[-1]["time"]))
    return spans


def one_sweep(sweep_file: str, overrides: list[str], storage: str, name: str, longest_first: bool) -> dict[str, Any]:
    import ray

    import sweeps.launch as launch
    from sweeps.spec import load_spec

    spec = load_spec(sweep_file, overrides, fields={"storage": storage, "name": name})
    keep_order = mock.patch.object(launch, "longest_first", lambda base, trials: trials)
    start = time.perf_counter()
    if longest_first:
        path = launch.run_sweep(spec, verbose=0)
    else:
        with keep_order:
            path = launch.run_sweep(spec, verbose=0)
    wall = time.perf_counter() - start
    slots = int(ray.cluster_resources().get("CPU", 1) // max(spec.resources.cpu, 1e-9))
    if spec.max_concurrent:
        slots = min(slots, spec.max_concurrent)
    ray.shutdown()
    spans = trial_spans(path)
    work = sum(end - begin for begin, end in spans)
    ends = sorted(end for _, end in spans)
    return {"order": "longest first" if longest_first else "grid (before)", "trials": len(spans),
            "slots": slots, "wall_s": wall, "work_s": work, "ideal_s": work / slots,
            "efficiency": work / slots / wall, "tail_s": ends[-1] - ends[-2] if len(ends) > 1 else 0.0}


def run(opts: argparse.Namespace) -> dict[str, Any]:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    print(f"\n== Sweep order: {opts.sweep} {' '.join(opts.set or [])}, grid order against longest first, "
          f"{opts.rounds} round(s) ==", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_order_") as storage:
        for r in range(opts.rounds):
            for first in ((False, True) if r % 2 == 0 else (True, False)):
                rows.append(one_sweep(opts.sweep, opts.set or [], storage, f"order-{r}-{int(first)}", first))
                print_table(rows[-1:], ["order", "trials", "wall_s", "ideal_s", "efficiency", "tail_s"])
    print_table(rows, ["order", "trials", "slots", "wall_s", "work_s", "ideal_s", "efficiency", "tail_s"],
                "sweep wall time (Ray start included); ideal = total trial work / slots")
    best = {o: min(r["wall_s"] for r in rows if r["order"] == o) for o in {r["order"] for r in rows}}
    ratio = best["grid (before)"] / best["longest first"]
    print(f"\nwall time, grid order / longest first (fastest of each): {ratio:.3f}")
    return {"rows": rows, "before_over_after": ratio}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_sweep_order", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sweep", default=str(DEMO), help="sweep file (default: the demo)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a sweep field")
    p.add_argument("--rounds", type=int, default=1, help="runs of each order, alternating")
    return p


QUICK = ["--set", "sweep.method=[snip,imp]", "--set", "sweep.seed=[0]", "--set", "sweep.sparsity=[0.5,0.9]",
         "--set", "experiment.train.epochs=2"]


main = entry_point(build_parser, run)


if __name__ == "__main__":
    main()
