"""Helpers of the drills that run the CLI in a subprocess and signal it (test_signals.py,
test_resume.py): the driver in a session of its own, so that every Ray process it starts can be
found by its session id, also after the driver is gone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


def session_processes(sid: int) -> list[str]:
    """The live processes (zombies excluded) of the session ``sid``: the driver starts as a
    session leader (:func:`start`), and every process Ray starts for it keeps its session id."""
    out = subprocess.run(["ps", "-eo", "pid=,sid=,stat=,args="], capture_output=True, text=True).stdout
    rows = [line.split(None, 3) for line in out.splitlines()]
    return [" ".join(r) for r in rows if len(r) == 4 and r[1] == str(sid) and not r[2].startswith("Z")]


def gone(sid: int, timeout: float = 20) -> list[str]:
    """Wait until no process of the session is left; the ones still there after ``timeout``."""
    deadline = time.monotonic() + timeout
    while session_processes(sid) and time.monotonic() < deadline:
        time.sleep(0.25)
    return session_processes(sid)


def start(args: list[str], tmp: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """``drive-sweep ARGS`` in ``tmp``, in a session of its own, SIGINT not ignored (as in a
    terminal), its output in files (a pipe nobody reads while it runs could fill and block it)."""
    logs = [(tmp / f"{args[0]}-{time.monotonic_ns()}.{kind}").open("w+") for kind in ("out", "err")]
    proc = subprocess.Popen([sys.executable, "-m", "sweeps.cli", *args], cwd=tmp,
                            stdout=logs[0], stderr=logs[1], text=True,
                            env={**os.environ, **(env or {})}, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    proc.logs = logs  # type: ignore[attr-defined]
    return proc


def finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[str, str]:
    """Wait for ``proc`` to end; its stdout and stderr."""
    proc.wait(timeout=timeout)
    texts = []
    for log in proc.logs:  # type: ignore[attr-defined]
        log.seek(0)
        texts.append(log.read())
        log.close()
    return texts[0], texts[1]


def wait_for(what: Callable[[], bool], proc: subprocess.Popen, timeout: float = 240) -> None:
    """Wait until ``what()``; fail when ``proc`` ended first or it took too long."""
    deadline = time.monotonic() + timeout
    while not what():
        if proc.poll() is not None:
            out, err = finish(proc)
            pytest.fail(f"the sweep ended first:\n{out[-3000:]}\n{err[-3000:]}")
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def twins(tree: dict[str, Any]) -> list[tuple[Any, dict[str, Any]]]:
    """Each trial of the sweep ``tree`` run uninterrupted, here: (its config, its metrics). One
    thread, as a trial with one CPU computes (a trial's metrics equal them bit for bit)."""
    import torch

    from drive.experiment import run
    from sweeps.checks import load_sweep

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return [(t.config, run(t.config)) for t in load_sweep(tree=tree).trials]
    finally:
        torch.set_num_threads(threads)
