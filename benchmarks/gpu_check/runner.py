"""The budgeted run of the steps: each in a process of its own (its own process group) with a
time limit out of what is left of the budget, killed with its whole group when it overruns or
when the check is stopped; the report rewritten after every step. Standard library only."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.gpu_check.plan import STEP_NAMES, STEPS, budget, skip_reason, step_limits
from benchmarks.gpu_check.report import Report, now_utc, summary

#: the repository's root: the steps' working folder and first entry of their PYTHONPATH
ROOT = Path(__file__).resolve().parents[2]
KILL_GRACE_S = 5.0
StepOutcome = tuple[str, str | None, dict[str, Any], float]  # status, reason, result, seconds


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a process the check starts: this one's, unbuffered, with the
    repository first on PYTHONPATH, and ``extra``."""
    path = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    return dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=path, **extra)


def kill_group(proc: subprocess.Popen) -> None:
    """SIGTERM the step's process group (its DataLoader workers, compile workers, drive-sweep
    processes), SIGKILL what is left after a grace period."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            proc.wait(timeout=KILL_GRACE_S)
        except subprocess.TimeoutExpired:
            pass


def run_child(report: Report, name: str, opts_argv: list[str], limit: float, work: Path) -> StepOutcome:
    """Run one step in its own process group; (status, reason, result, seconds)."""
    result_path = work / f"{name}.json"
    deadline = time.time() + limit
    cmd = [sys.executable, "-u", "-m", "benchmarks.gpu_check", *opts_argv, "--child", name,
           "--child-out", str(result_path), "--deadline", f"{deadline:.1f}"]
    group = {"process_group": 0} if sys.version_info >= (3, 11) else {"start_new_session": True}
    start = time.time()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, **group)
    report.current = proc

    def pump() -> None:
        assert proc.stdout is not None
        for raw in iter(proc.stdout.readline, b""):
            report.say(f"  {name} | {raw.decode('utf-8', 'replace').rstrip()}")

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    timed_out = False
    try:
        proc.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        timed_out = True
        report.say(f"step {name}: over its limit of {limit:.3g} s, killing its process group")
    kill_group(proc)
    reader.join(timeout=5)
    report.current = None
    seconds = time.time() - start
    try:
        result = json.loads(result_path.read_text())
    except (OSError, ValueError):
        result = {}
    if timed_out:
        return "timed_out", f"killed after {limit:.3g} s (its limit); partial results kept", result, seconds
    if proc.returncode == 0:
        return "ran", result.pop("note", None), result, seconds
    reason = result.pop("reason", None) or result.get("error") or f"exit code {proc.returncode}"
    return "failed", reason, result, seconds


def _on_signal(report: Report) -> None:
    """SIGTERM, SIGINT and SIGHUP: kill the running step, mark it ``timed_out`` and the steps
    not started ``skipped``, save the report and exit."""

    def stop(signum: int, _frame: Any) -> None:
        proc = report.current
        if proc is not None:
            kill_group(proc)
        for s in report.data["steps"]:
            if s["status"] == "running":
                s.update(status="timed_out", reason=f"gpu_check was stopped (signal {signum})")
            elif s["status"] == "pending":
                s.update(status="skipped", reason=f"gpu_check was stopped (signal {signum})")
        report.say(f"gpu_check: stopped by signal {signum}; results so far in {report.out}")
        report.save()
        os._exit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, stop)


def orchestrate(opts: argparse.Namespace, argv: list[str]) -> int:
    """Run every selected step within the budget; 1 if a step failed or timed out, else 0."""
    unknown = sorted(set((opts.only or []) + opts.skip) - set(STEP_NAMES))
    if unknown:
        raise SystemExit(f"gpu_check: unknown step(s) {', '.join(unknown)}; steps: {', '.join(STEP_NAMES)}")
    limits = step_limits(opts)
    total = budget(opts)
    if opts.list:
        for s in STEPS:
            print(f"{s.name:22s} limit {limits[s.name]:5.0f} s  {s.what}"
                  + (f"  [--cpu: skipped, {s.cpu_skip}]" if s.cpu_skip else ""))
        return 0
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(opts.out or os.environ.get("OUT") or f"/tmp/gpu_check-{stamp}")
    report = Report(out, opts, argv, total)
    work = Path(tempfile.mkdtemp(prefix="gpu_check_work_"))
    _on_signal(report)
    report.say(f"gpu_check ({report.data['mode']} mode): budget {total:.0f} s, results in {out}")
    report.say(f"sizes: {json.dumps(report.data['sizes'])}")
    report.save()
    deadline = report.clock.start + total
    no_cuda: str | None = None
    for s in STEPS:
        entry = report.step(s.name)
        left = deadline - time.time()
        reason = skip_reason(s, opts)
        if reason is None and no_cuda and s.name != "env":
            reason = no_cuda
        elif reason is None and left < s.min_s:
            reason = f"time budget spent ({max(left, 0):.0f} s left of {total:.0f} s; needs {s.min_s:.0f} s)"
        if reason is not None:
            entry.update(status="skipped", reason=reason)
            report.say(f"step {s.name}: skipped: {reason}")
            report.save()
            continue
        limit = min(limits[s.name], left)
        entry.update(status="running", limit_s=round(limit, 1), started=now_utc())
        report.say(f"step {s.name}: start (limit {limit:.0f} s, {left:.0f} s of the budget left): {s.what}")
        report.save()
        try:
            status, why, result, seconds = run_child(report, s.name, list(argv), limit, work)
        except Exception as e:  # the orchestrator must go on to the next step
            status, why, result, seconds = "failed", f"{type(e).__name__}: {e}", {}, 0.0
        entry.update(status=status, reason=why, seconds=round(seconds, 1), result=result)
        report.say(f"step {s.name}: {status} in {seconds:.1f} s" + (f" ({why})" if why else "")
                   + (f": {result['headline']}" if result.get("headline") else ""))
        if s.name == "env" and status == "ran":
            report.data["versions"] = result.get("versions", {})
            if not opts.cpu and not result.get("cuda_available"):
                no_cuda = "CUDA is not available (see env): nothing to check on a GPU; --cpu is the CPU smoke"
        report.save()
    report.data["finished"] = True
    report.save()
    report.say(summary(report.data))
    _remove(work)
    return 1 if any(s["status"] in ("failed", "timed_out") for s in report.data["steps"]) else 0


def _remove(work: Path) -> None:
    """Remove the steps' result files and their folder (best effort)."""
    try:
        for f in work.iterdir():
            f.unlink()
        work.rmdir()
    except OSError:
        pass
