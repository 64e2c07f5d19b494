"""The pytest steps: cuda_tests (every test that skips without CUDA) and drive_suite (the
``tests/drive`` suite on the machine's torch, leaving out the files whose imports are absent),
both under :mod:`benchmarks.gpu_check.pytest_plugin`."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.gpu_check.report import Partial
from benchmarks.gpu_check.runner import ROOT
from benchmarks.gpu_check.steps.util import say

#: packages some test modules import at their top that a bare GPU machine lacks
OPTIONAL_TEST_IMPORTS = ("ray", "optuna", "moto", "mlflow", "wandb", "tbparse", "tensorboardX", "jsonschema")
PLUGIN = "benchmarks.gpu_check.pytest_plugin"
_DEF = re.compile(r"\s*(?:async\s+)?(?:def|class)\s+(\w+)")


def cuda_test_ids(root: Path = ROOT) -> list[str]:
    """Node ids of the tests that skip without CUDA: a ``skipif`` decorator mentioning CUDA
    (in any case, within its first three lines) right above a test function or class, or a
    module-level ``pytestmark`` that does."""
    ids = []
    for path in sorted((root / "tests").rglob("test_*.py")):
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        rel = path.relative_to(root).as_posix()
        if any(line.startswith("pytestmark") and "cuda" in line.lower() for line in lines):
            ids.append(rel)
            continue
        for i, line in enumerate(lines):
            if not (line.lstrip().startswith("@") and "skipif" in line
                    and "cuda" in " ".join(lines[i:i + 3]).lower()):
                continue
            for nxt in lines[i + 1:i + 8]:
                m = _DEF.match(nxt)
                if m:
                    node = f"{rel}::{m.group(1)}"
                    if node not in ids:
                        ids.append(node)
                    break
    return ids


def missing_import_files(paths: list[str], root: Path = ROOT,
                         optional: tuple[str, ...] = OPTIONAL_TEST_IMPORTS) -> dict[str, str]:
    """Test files under ``paths`` whose top-level imports name a package of ``optional`` that
    is not installed (they could not even be collected): file -> the package."""
    absent = {name for name in optional if importlib.util.find_spec(name) is None}
    pattern = re.compile(r"^(?:import|from)\s+(\w+)", re.MULTILINE)
    out = {}
    for given in paths:
        base = root / given
        files = [base] if base.is_file() else sorted(base.rglob("*.py")) if base.is_dir() else []
        for path in files:
            names = set(pattern.findall(path.read_text(encoding="utf-8", errors="replace"))) & absent
            if names:
                out[path.relative_to(root).as_posix()] = sorted(names)[0]
    return out


def run_pytest(args: list[str], rec: Partial, opts: argparse.Namespace, key: str) -> None:
    """pytest with the gpu_check plugin: every test's outcome lands in a JSON Lines file as it
    ends, and tests are skipped once the step's deadline is near (so pytest ends by itself)."""
    report = Path(opts.child_out).with_name(f"{key}-tests.jsonl")
    report.unlink(missing_ok=True)
    extra = ["--timeout", "120"] if importlib.util.find_spec("pytest_timeout") else []
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--tb=short", "-rfE",
           "-p", PLUGIN, *extra, *args]
    deadline = (opts.deadline or time.time() + 3600) - 15
    env = dict(os.environ, GPU_CHECK_DEADLINE=f"{deadline:.1f}", GPU_CHECK_REPORT=str(report))
    rec.update(command=" ".join(cmd[1:]))
    say(f"running: {' '.join(cmd[1:])}")
    code = subprocess.call(cmd, cwd=ROOT, env=env)
    entries = [json.loads(line) for line in report.read_text().splitlines()] if report.exists() else []
    outcomes: dict[str, int] = {}
    for entry in entries:
        outcomes[entry["outcome"]] = outcomes.get(entry["outcome"], 0) + 1
    failures = [{"test": e["nodeid"], "when": e["when"], "message": e["message"]}
                for e in entries if e["outcome"] in ("failed", "error")]
    budget_skips = sum(1 for e in entries if "time budget" in e["message"])
    rec.update(exit_code=code, outcomes=outcomes, skipped_for_time=budget_skips, failures=failures,
               headline=", ".join(f"{n} {k}" for k, n in sorted(outcomes.items())) or f"pytest exit {code}")
    if code not in (0, 5) or failures:
        rec.update(reason=(f"{len(failures)} test(s) failed or errored (pytest exit {code})" if failures
                           else f"pytest exit {code}, no test failed: see the step's output"))
        raise SystemExit(1)


def step_cuda_tests(opts: argparse.Namespace, rec: Partial) -> None:
    """Every test that skips without CUDA (on the CPU, one that runs is added)."""
    ids = cuda_test_ids()
    if opts.cpu:  # they skip here: add one that runs, so the smoke sees a pass
        ids = ids + ["tests/drive/test_bits.py"]
    rec.update(tests=[{"node": i} for i in ids])
    run_pytest(ids, rec, opts, "cuda_tests")


def step_drive_suite(opts: argparse.Namespace, rec: Partial) -> None:
    """The ``--suite`` test paths, in parallel where pytest-xdist is installed (not with --cpu)."""
    paths = shlex.split(opts.suite)
    ignored = missing_import_files(paths)
    args = [*paths, "--ignore=tests/benchmarks/test_gpu_check_smoke.py",
            *(f"--ignore={f}" for f in ignored)]
    rec.update(ignored=[{"file": f, "missing": m} for f, m in ignored.items()])
    if importlib.util.find_spec("xdist") and not opts.cpu:
        args += ["-n", str(min(8, os.cpu_count() or 1))]
    run_pytest(args, rec, opts, "drive_suite")
