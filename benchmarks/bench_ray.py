"""Ray overhead: N short trials through a sweep against the same experiments in one process.

The trials are identical digits experiments (DRIVE at 90% sparsity, one seed each), with the
epochs calibrated so that one trial takes about ``--trial-seconds`` in one process at one
thread. The runs (in the order: 1 thread, sweep one at a time, 1 thread again, default
threads, parallel sweep):

* in-process, 1 thread: ``drive.experiment.run`` for each trial in turn, torch at one thread,
  which is what each Ray trial gets (Ray sets ``OMP_NUM_THREADS`` to the trial's CPUs, 1 here);
  run twice, before and after the one-at-a-time sweep, to cancel the machine's drift;
* in-process, default threads: the same, torch at its default (one thread per core), which is
  what a user running the experiments in a loop gets;
* sweep, ``max_concurrent: 1``: ``sweeps.launch.run_sweep`` with ``cpu: 1`` per trial, one trial
  at a time: its wall time minus the mean 1-thread in-process time is Ray's overhead per trial
  (workers, reports, checkpoints, result files);
* sweep, parallel: the same sweep with as many concurrent trials as cores.

Parallel efficiency = (sequential time / P) / parallel sweep wall time, against each of the
sequential runs, with P = min(cores, trials) the trials that can run at once. Ray's start-up
(``ray.init``) is timed apart from the sweeps.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from typing import Any

import torch

from benchmarks.common import entry_point, print_table, verdict
from drive.config import build_config
from drive.experiment import run as run_experiment

EFFICIENCY_TARGET = 0.8
TARGET_TRIAL_S = 20.0


def base_experiment(epochs: int) -> dict[str, Any]:
    return {"dataset": "digits", "model": "digits_cnn", "device": "cpu", "method": "drive",
            "sparsity": 0.9, "warmup_epochs": 1, "train": {"epochs": epochs}}


def in_process(epochs: int, trials: int, threads: int) -> list[float]:
    """Wall seconds of each trial run in this process with ``threads`` torch threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        seconds = []
        for seed in range(trials):
            start = time.perf_counter()
            run_experiment(build_config({**base_experiment(epochs), "seed": seed}))
            seconds.append(time.perf_counter() - start)
        return seconds
    finally:
        torch.set_num_threads(before)


def calibrate(trial_seconds: float) -> tuple[int, float]:
    """Epochs that make one trial last about ``trial_seconds`` at one thread: a trial's time is
    fitted as fixed + per-epoch cost from runs of 2 and 6 epochs."""
    in_process(2, 1, 1)  # untimed: first-use costs
    short, long = in_process(2, 1, 1)[0], in_process(6, 1, 1)[0]
    per_epoch = max((long - short) / 4, 1e-3)
    fixed = max(short - 2 * per_epoch, 0.0)
    return max(2, math.ceil((trial_seconds - fixed) / per_epoch)), per_epoch


def _torch_threads() -> int:
    return torch.get_num_threads()


def sweep(epochs: int, trials: int, storage: str, name: str, max_concurrent: int | None,
          checkpoint_every: int | None = None) -> dict[str, Any]:
    """Wall time of Ray's start-up and of one sweep of the trials, and Ray workers' torch threads."""
    import ray

    from sweeps.launch import run_sweep
    from sweeps.runtime import init_ray
    from sweeps.spec import load_spec

    spec = load_spec(tree={"name": name, "storage": storage, "experiment": base_experiment(epochs),
                           "sweep": {"seed": list(range(trials))}, "resources": {"cpu": 1, "gpu": 0},
                           "max_concurrent": max_concurrent,
                           **({"checkpoint_every": checkpoint_every} if checkpoint_every else {})})
    ray.shutdown()
    start = time.perf_counter()
    init_ray(None)
    startup = time.perf_counter() - start
    try:
        start = time.perf_counter()
        run_sweep(spec, verbose=0)
        wall = time.perf_counter() - start
        threads = ray.get(ray.remote(num_cpus=1)(_torch_threads).remote())
    finally:
        ray.shutdown()
    return {"startup_s": startup, "wall_s": wall, "worker_threads": threads}


def run(opts: argparse.Namespace) -> dict[str, Any]:
    slots = min(os.cpu_count() or 1, opts.trials)  # trials that can run at once
    epochs, per_epoch = (opts.epochs, None) if opts.epochs else calibrate(opts.trial_seconds)
    print(f"\n== Ray overhead: {opts.trials} digits DRIVE trials of {epochs} epochs, sequentially in one "
          f"process vs through run_sweep (cpu: 1 per trial, {slots} at once) ==", flush=True)
    if per_epoch:
        print(f"calibration: {per_epoch:.3f} s per epoch at 1 thread -> {epochs} epochs "
              f"for ~{opts.trial_seconds:g} s trials", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench_ray_") as storage:
        # the 1-thread loop runs before and after the one-at-a-time sweep, and the overhead is
        # taken against their mean, so that the machine's drift during the run cancels
        before = in_process(epochs, opts.trials, 1)
        print(f"  in-process, 1 thread: {sum(before):.1f} s", flush=True)
        serial = sweep(epochs, opts.trials, storage, "serial", 1, opts.checkpoint_every)
        print(f"  sweep, max_concurrent 1: {serial['wall_s']:.1f} s "
              f"(+ Ray start-up {serial['startup_s']:.1f} s)", flush=True)
        after = in_process(epochs, opts.trials, 1)
        print(f"  in-process, 1 thread, again: {sum(after):.1f} s", flush=True)
        default_threads = torch.get_num_threads()
        many = in_process(epochs, opts.trials, default_threads)
        print(f"  in-process, {default_threads} threads: {sum(many):.1f} s", flush=True)
        parallel = sweep(epochs, opts.trials, storage, "parallel", None, opts.checkpoint_every)
        print(f"  sweep, parallel: {parallel['wall_s']:.1f} s (+ Ray start-up {parallel['startup_s']:.1f} s)",
              flush=True)
    one = [(a + b) / 2 for a, b in zip(before, after)]
    trial_s = sum(one) / opts.trials
    runs = [
        {"run": "in-process, 1 thread (before the sweep)", "wall_s": sum(before),
         "per_trial_s": sum(before) / opts.trials},
        {"run": "in-process, 1 thread (after the sweep)", "wall_s": sum(after),
         "per_trial_s": sum(after) / opts.trials},
        {"run": f"in-process, {default_threads} threads", "wall_s": sum(many),
         "per_trial_s": sum(many) / opts.trials},
        {"run": "sweep, max_concurrent 1", "wall_s": serial["wall_s"],
         "per_trial_s": serial["wall_s"] / opts.trials, "ray_startup_s": serial["startup_s"]},
        {"run": f"sweep, parallel ({slots} at once)", "wall_s": parallel["wall_s"],
         "per_trial_s": parallel["wall_s"] / opts.trials, "ray_startup_s": parallel["startup_s"]},
    ]
    overhead = (serial["wall_s"] - sum(one)) / opts.trials
    efficiency = {
        "vs in-process, 1 thread": (sum(one) / slots) / parallel["wall_s"],
        f"vs in-process, {default_threads} threads": (sum(many) / slots) / parallel["wall_s"],
        "vs sweep, max_concurrent 1": (serial["wall_s"] / slots) / parallel["wall_s"],
    }
    print_table(runs, ["run", "wall_s", "per_trial_s", "ray_startup_s"],
                f"{opts.trials} trials of {epochs} epochs (Ray workers ran torch at "
                f"{parallel['worker_threads']} thread(s))")
    print(f"Ray overhead per trial (sweep at max_concurrent 1 - mean of the in-process runs at 1 thread): "
          f"{overhead:.2f} s = {100 * overhead / trial_s:.1f}% of a {trial_s:.1f} s trial; the two "
          f"in-process runs differ by {abs(sum(before) - sum(after)) / opts.trials:.2f} s per trial")
    print_table([{"baseline": k, "efficiency": v, "speed_up": v * slots} for k, v in efficiency.items()],
                title=f"parallel efficiency = (sequential / {slots}) / parallel sweep wall")
    fair = efficiency["vs in-process, 1 thread"]
    met = fair >= EFFICIENCY_TARGET if trial_s >= TARGET_TRIAL_S else None
    checks = [{"target": f"parallel efficiency >= {EFFICIENCY_TARGET:.0%} with {slots} trials at once, "
                         f"trials >= {TARGET_TRIAL_S:g} s (vs 1-thread sequential)",
               "value": f"{fair:.0%} ({trial_s:.1f} s trials)", "status": verdict(met)}]
    print_table(checks, title="targets")
    return {"trials": opts.trials, "epochs": epochs, "cores": os.cpu_count(), "slots": slots,
            "calibration_s_per_epoch": per_epoch,
            "trial_s": trial_s, "runs": runs, "overhead_per_trial_s": overhead,
            "worker_threads": parallel["worker_threads"], "default_threads": default_threads,
            "efficiency": efficiency, "in_process_1_thread_s": {"before": before, "after": after}, "in_process_default_s": many,
            "targets": checks}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_ray", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--trial-seconds", type=float, default=1.2 * TARGET_TRIAL_S,
                   help="calibrate the epochs so that a trial takes about this long at 1 thread "
                        "(default: 20%% over the target's 20 s, so that trials do last 20 s)")
    p.add_argument("--epochs", type=int, default=None, help="fixed epochs per trial (skips the calibration)")
    p.add_argument("--checkpoint-every", type=int, default=None,
                   help="the sweeps' checkpoint_every (default: the sweep default, every 2 epochs)")
    return p


QUICK = ["--trials", "2", "--trial-seconds", "3"]


main = entry_point(build_parser, run)


if __name__ == "__main__":
    main()
