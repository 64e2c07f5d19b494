"""This tree's training step, epoch and checkpoints against an earlier commit's, side by side.

The earlier commit (``--before``, e.g. the commit before the fast-path work) is extracted with
``git archive`` into a temporary folder. Each round runs :mod:`benchmarks.probe_fast_path` once
against each tree (``PYTHONPATH`` set to it), the order alternating between rounds, so that a
machine that gets busier or quieter affects both alike; the fastest round of each case counts
and the ratios before / after are the figures to read. Measured:

* training step (ms) of digits_cnn (batch 64) and ResNet-20 (batch 128) with full masks (a
  dense phase: the dense baseline, DRIVE's warm-up, IMP's level 0) and with 90%-sparse masks;
* one 90%-sparse training epoch through the experiment's own loader: digits_cnn on digits and
  ResNet-20 on 1,024 CIFAR-shaped synthetic images with crop and flip;
* one checkpoint of a ResNet-18 on CIFAR-shaped images: DRIVE after pruning (90% sparse) and
  IMP in level 1 (rewinding to epoch 0): file size, time on the training thread, time until the
  file is complete.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import csv_list, entry_point, print_table

ROOT = Path(__file__).resolve().parents[1]
PROBE = ROOT / "benchmarks" / "probe_fast_path.py"


def extract(ref: str, folder: Path) -> str:
    """Write the tree of commit ``ref`` into ``folder``; return the full commit hash."""
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", f"{ref}^{{commit}}"],
                            capture_output=True, text=True, check=True).stdout.strip()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return commit


def probe(tree: Path, opts: argparse.Namespace) -> dict[str, Any]:
    """One probe process against ``tree``; its JSON result."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        env = {**os.environ, "PYTHONPATH": str(tree)}
        subprocess.run([sys.executable, str(PROBE), "--out", out.name, "--seconds", str(opts.seconds),
                        "--checkpoint-repeat", str(opts.checkpoint_repeat), "--cases", ",".join(opts.cases)],
                       env=env, check=True, cwd=tempfile.gettempdir())
        return json.loads(Path(out.name).read_text())


def _flatten(result: dict[str, Any]) -> dict[str, float]:
    """``{case: value}`` of one probe result (times in the unit of the case's name)."""
    out = {}
    for model, phases in result.get("step_ms", {}).items():
        for phase, ms in phases.items():
            out[f"step_ms {model} {phase}"] = ms
    for name, seconds in result.get("epoch_s", {}).items():
        out[f"epoch_s {name}"] = seconds
    for name, ck in result.get("checkpoint", {}).items():
        out[f"checkpoint_MB {name}"] = ck["bytes"] / 1e6
        out[f"checkpoint_training_thread_s {name}"] = ck["training_thread_s"]
        out[f"checkpoint_complete_s {name}"] = ck["complete_s"]
    return out


def run(opts: argparse.Namespace) -> dict[str, Any]:
    trees: dict[str, Path] = {"after": ROOT}
    with tempfile.TemporaryDirectory(prefix="bench_before_") as tmp:
        commits = {"after": "working tree"}
        if opts.before:
            commits["before"] = extract(opts.before, Path(tmp))
            trees = {"before": Path(tmp), "after": ROOT}
        print(f"\n== Before / after: {', '.join(f'{k} = {v}' for k, v in commits.items())}; {opts.rounds} "
              f"alternating round(s) of one probe process per tree ==", flush=True)
        rounds: dict[str, list[dict[str, float]]] = {k: [] for k in trees}
        for r in range(opts.rounds):
            for name in (list(trees) if r % 2 == 0 else list(reversed(trees))):
                rounds[name].append(_flatten(probe(trees[name], opts)))
    cases = list(rounds["after"][0])
    rows = []
    for case in cases:
        row: dict[str, Any] = {"case": case}
        for name, results in rounds.items():
            row[name] = min(r[case] for r in results)  # sizes are the same every round
        if "before" in row:
            row["before/after"] = row["before"] / row["after"]
        rows.append(row)
    print_table(rows, title="fastest round of each case; before/after > 1: the change made it faster or smaller")
    return {"commits": commits, "rows": rows, "rounds": rounds}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_before_after", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before", default=None, help="commit to compare with (default: measure this tree only)")
    p.add_argument("--rounds", type=int, default=3, help="probe processes per tree, alternating")
    p.add_argument("--seconds", type=float, default=1.0, help="seconds per timed case in a probe")
    p.add_argument("--checkpoint-repeat", type=int, default=3, help="checkpoints written per probe")
    p.add_argument("--cases", type=csv_list(), default=["step", "epoch", "checkpoint"])
    return p


QUICK = ["--rounds", "1", "--seconds", "0.2", "--checkpoint-repeat", "1"]


main = entry_point(build_parser, run)


if __name__ == "__main__":
    main()
