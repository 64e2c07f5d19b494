"""The packing step: fractional GPU packing as Ray's ``gpu: 0.25`` does it. N processes of
``drive-sweep prune`` train at once on the one device, against one alone, the same config in
each (seeds differ); the figure is the steady-state images/s of all together over one's."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.gpu_check.plan import sizes
from benchmarks.gpu_check.report import Partial
from benchmarks.gpu_check.runner import child_env
from benchmarks.gpu_check.steps.util import say

Epochs = list[tuple[float, float]]  # (end wall time, training seconds) of each training epoch


def packing_rates(records: list[Epochs], images: int, skip: int = 1, tolerance: float = 0.05) -> dict[str, Any]:
    """Steady-state images/s of processes that trained at the same time.

    ``records[p]`` lists process p's training epochs in order as ``(end wall time, training
    seconds)``. The first ``skip`` epochs (compilation, CUDA graph capture) are left out; then
    only the epochs inside the window where every process was past those and none had
    finished count, so each rate is measured while all processes shared the device.
    """
    steady = []
    for epochs in records:
        spans = [((epochs[k - 1][0] if k else end - secs), end, secs) for k, (end, secs) in enumerate(epochs)]
        steady.append(spans[skip:])
    if not steady or any(not s for s in steady):
        raise ValueError(f"every process needs more than {skip} training epoch(s)")
    lo = max(s[0][0] for s in steady)
    hi = min(s[-1][1] for s in steady)
    rates, overlapping = [], True
    for spans in steady:
        inside = [e for e in spans if e[0] >= lo - tolerance and e[1] <= hi + tolerance]
        if not inside:
            inside, overlapping = spans, False
        rates.append(images * len(inside) / sum(e[2] for e in inside))
    return {"rates": rates, "aggregate_img_s": sum(rates), "window_s": max(hi - lo, 0.0),
            "all_overlapping": overlapping}


def read_train_epochs(path: Path) -> tuple[Epochs, dict[str, Any] | None]:
    """``(end time, training seconds)`` of each training epoch in a drive-sweep record (its
    ``epoch`` lines of phase ``train``: drive.schema), and its ``end`` line."""
    epochs, end, last = [], None, 0.0
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        if entry.get("event") == "epoch" and entry.get("phase") == "train":
            epochs.append((entry["time"], entry["train_time_s"] - last))
            last = entry["train_time_s"]
        elif entry.get("event") == "end":
            end = entry
    return epochs, end


def packing_config(opts: argparse.Namespace, work: Path) -> dict[str, Any]:
    """The experiment every process runs: magnitude pruning to 90%, then training (on the GPU
    the packing model on synthetic CIFAR-shaped data; with --cpu a small model on digits)."""
    z = sizes(opts)
    epochs = z["packing_epochs"]
    if opts.cpu:
        return {"method": "magnitude", "sparsity": 0.9, "model": z["packing_model"], "dataset": "digits",
                "device": "cpu", "warmup_epochs": 0, "data": {"root": str(work / "data")},
                "train": {"epochs": epochs, "eval_every": epochs}}
    return {"method": "magnitude", "sparsity": 0.9, "model": z["packing_model"], "dataset": "synthetic",
            "device": z["device"], "warmup_epochs": 0,
            "data": {"root": str(work / "data"), "image_size": 32, "channels": 3, "num_classes": 10,
                     "train_size": z["packing_images"], "test_size": 256, "augment": True},
            "train": {"epochs": epochs, "batch_size": 128, "lr": 0.1, "eval_every": epochs}}


def train_images(tree: dict[str, Any]) -> int:
    """The training-set size of the packing config (as the experiment resolves it)."""
    from drive.config import build_config
    from drive.data import load_dataset

    cfg = build_config(tree)
    return int(load_dataset(cfg.dataset, cfg.data).num_train)


def run_together(count: int, config: Path, work: Path, env: dict[str, str]) -> tuple[list[int], float]:
    """Start ``count`` drive-sweep prune processes at once and wait for all; their exit codes
    and the wall time. Process i writes ``run-COUNT-i.jsonl`` and ``run-COUNT-i.log``."""
    start = time.time()
    procs = []
    for i in range(count):
        log = open(work / f"run-{count}-{i}.log", "w")
        procs.append((subprocess.Popen(
            [sys.executable, "-m", "sweeps.cli", "prune", "--config", str(config), "--seed", str(i), "--quiet",
             "--out", str(work / f"run-{count}-{i}.jsonl")], cwd=work, env=env, stdout=log,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL), log))
    codes = []
    for proc, log in procs:
        codes.append(proc.wait())
        log.close()
    return codes, time.time() - start


def collect(count: int, work: Path) -> tuple[list[Epochs], list[dict[str, Any] | None]]:
    """Each process's training epochs and end line; the last lines of its output printed."""
    records, ends = [], []
    for i in range(count):
        text = (work / f"run-{count}-{i}.log").read_text(errors="replace").strip().splitlines()
        for line in text[-6:]:
            say(f"  [{count}:{i}] {line}")
        try:
            ep, end = read_train_epochs(work / f"run-{count}-{i}.jsonl")
        except OSError:
            ep, end = [], None
        records.append(ep)
        ends.append(end)
    return records, ends


def step_packing(opts: argparse.Namespace, rec: Partial) -> None:
    """One process alone, then ``packing_procs`` at once; a row for each."""
    z = sizes(opts)
    work = Path(tempfile.mkdtemp(prefix="gpu_check_packing_"))
    tree = packing_config(opts, work)
    epochs = tree["train"]["epochs"]
    config = work / "packing.yaml"
    config.write_text(json.dumps(tree))  # JSON is YAML
    rec.update(config=tree, command="python -m sweeps.cli prune --config packing.yaml --seed I --quiet --out ...")
    env = child_env(**({"OMP_NUM_THREADS": "1"} if opts.cpu else {}))
    images = train_images(tree)
    rec.update(train_images=images)
    single = None
    for count in (1, z["packing_procs"]):
        say(f"{count} process(es) of drive-sweep prune ({tree['model']}, {epochs} epochs) at once")
        codes, wall = run_together(count, config, work, env)
        records, ends = collect(count, work)
        if any(codes):
            raise RuntimeError(f"{sum(1 for c in codes if c)} of {count} drive-sweep processes failed "
                               f"(exit codes {codes}); see the lines above")
        rates = packing_rates(records, images)
        row = {"processes": count, "aggregate_img_s": rates["aggregate_img_s"],
               "per_process_img_s": sum(rates["rates"]) / count, "overlap_window_s": rates["window_s"],
               "all_overlapping": rates["all_overlapping"], "wall_s": wall,
               "first_epoch_s": sum(r[0][1] for r in records) / count,
               "test_acc": sum((e or {}).get("test_acc") or 0 for e in ends) / count}
        if single is None:
            single = rates["aggregate_img_s"]
        row["vs_one"] = rates["aggregate_img_s"] / single
        rec.add("rows", row)
        say(f"  {count} at once: {rates['aggregate_img_s']:,.0f} img/s in all "
            f"({row['vs_one']:.2f}x one alone), overlap window {rates['window_s']:.1f} s")
    last = rec.data["rows"][-1]
    rec.update(ratio=last["vs_one"], headline=(f"{last['processes']} processes at once: {last['aggregate_img_s']:,.0f} "
                                               f"img/s = {last['vs_one']:.2f}x one alone ({tree['model']})"))
