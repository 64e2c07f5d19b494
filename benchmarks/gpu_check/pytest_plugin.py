"""A pytest plugin for the GPU check's pytest steps (``-p benchmarks.gpu_check.pytest_plugin``).

* ``GPU_CHECK_REPORT=FILE``: every test's outcome is appended to FILE as one JSON line when it
  ends (``nodeid``, ``when``, ``outcome``, ``duration``, ``message``), so a pytest run that is
  killed still leaves what it did. Under pytest-xdist only the controller writes.
* ``GPU_CHECK_DEADLINE=UNIX_TIME``: tests not started by then are skipped ("time budget"), so
  that pytest ends by itself, with its summary, inside the step's time limit.
"""

from __future__ import annotations

import json
import os
import time

import pytest

_state = {"worker": False}


def pytest_configure(config: pytest.Config) -> None:
    _state["worker"] = hasattr(config, "workerinput")


def pytest_runtest_setup(item: pytest.Item) -> None:
    deadline = float(os.environ.get("GPU_CHECK_DEADLINE") or "inf")
    if time.time() > deadline:
        pytest.skip("gpu_check: time budget spent")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    path = os.environ.get("GPU_CHECK_REPORT")
    if not path or _state["worker"]:
        return
    # one line per test: its call, or the setup that skipped or broke it, or a broken teardown
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed") \
            or (report.when == "teardown" and report.outcome == "failed"):
        outcome = report.outcome
        if report.when != "call" and outcome == "failed":
            outcome = "error"
        if hasattr(report, "wasxfail"):
            outcome = "xfailed" if report.outcome == "skipped" else "xpassed"
        message = ""
        if report.outcome != "passed":
            message = (report.longreprtext or "").strip().splitlines()
            message = message[-1][:300] if message else ""
        entry = {"nodeid": report.nodeid, "when": report.when, "outcome": outcome,
                 "duration": round(report.duration, 3), "message": message}
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")
