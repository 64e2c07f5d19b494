"""What the steps share: printing, and running a benchmark module in the step's process."""

from __future__ import annotations

import argparse
import importlib
from typing import Any


def say(message: str) -> None:
    """Print a line at once (the runner time-stamps and logs it)."""
    print(message, flush=True)


def command(bench: str, argv: list[str]) -> str:
    """The command line that runs ``benchmarks.<bench>`` with ``argv``, for the record."""
    return f"python -m benchmarks.{bench} " + " ".join(argv)


def bench_options(bench: str, argv: list[str]) -> argparse.Namespace:
    """``benchmarks.<bench>``'s options parsed from the command-line arguments ``argv``."""
    return importlib.import_module(f"benchmarks.{bench}").build_parser().parse_args(argv)


def run_bench(bench: str, argv: list[str]) -> dict[str, Any]:
    """Run ``benchmarks.<bench>`` with the command-line arguments ``argv`` in this process; its
    result dict."""
    return importlib.import_module(f"benchmarks.{bench}").run(bench_options(bench, argv))
