"""What every benchmark shares: the one timing helper, tables, argument handling.

:func:`side_by_side` times several cases in one process, alternating between them round by
round, so that a machine that gets busier or quieter during the run affects every case alike
and the ratios between cases stay meaningful.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from benchmarks.machine import print_machine


def sync(device: torch.device | str | None) -> None:
    """Wait for the device's queued work (CUDA kernels run asynchronously)."""
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Case:
    """One thing to time: ``run`` is called once per round; ``warmup`` once before round one."""

    name: str
    run: Callable[[], Any]
    warmup: Callable[[], Any] | None = None


def side_by_side(cases: Sequence[Case], repeat: int = 1,
                 device: torch.device | str | None = None) -> dict[str, list[float]]:
    """Seconds per call of each case, ``repeat`` rounds, the cases alternating within a round.

    Each case is warmed up first (allocator, cuDNN autotuning, DataLoader workers). Every timed
    call is bracketed by device synchronisation, so asynchronous CUDA work is counted in full.
    """
    for case in cases:
        if case.warmup is not None:
            case.warmup()
    sync(device)
    times: dict[str, list[float]] = {c.name: [] for c in cases}
    for r in range(repeat):
        # alternate the order each round so that no case always runs right after another
        for case in (cases if r % 2 == 0 else list(reversed(cases))):
            sync(device)
            start = time.perf_counter()
            case.run()
            sync(device)
            times[case.name].append(time.perf_counter() - start)
    return times


def best(values: Sequence[float]) -> float:
    """The fastest of the rounds: other processes only ever add time (timeit's convention)."""
    return min(values)


def fastest(fn: Callable[[], Any], repeat: int = 3, device: torch.device | str | None = None) -> float:
    """Seconds of the fastest of ``repeat`` calls of ``fn`` after one untimed call, each call
    bracketed by device synchronisation (:func:`side_by_side` with one case)."""
    return best(side_by_side([Case("fn", fn, warmup=fn)], repeat, device)["fn"])


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def print_table(rows: list[dict[str, Any]], columns: Sequence[str] | None = None,
                title: str | None = None) -> None:
    """A plain-text table (floats to 4 significant digits)."""
    if not rows:
        return
    columns = list(columns or rows[0].keys())

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return "" if v is None else str(v)

    cells = [[fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    if title:
        print(f"\n{title}")
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)), flush=True)


def csv_list(kind: Callable[[str], Any] = str) -> Callable[[str], list[Any]]:
    """An argparse type for comma-separated lists: ``--models resnet18,vgg16_bn``."""
    return lambda text: [kind(x) for x in text.split(",") if x.strip()]


def key_value(text: str) -> str:
    """An argparse type for ``KEY=VALUE`` config overrides (``--set train.compile=false``): the
    text as given, refused without a key and an ``=``."""
    key, sep, _ = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. compile=false), not {text!r}")
    return text


def step_timing_arguments(parser: argparse.ArgumentParser, repeat: int) -> None:
    """The options of a benchmark that times training steps in alternating rounds."""
    parser.add_argument("--batch-size", type=int, default=None,
                        help="default: the model's config batch size")
    parser.add_argument("--repeat", type=int, default=repeat, help="alternating rounds per case")
    parser.add_argument("--round-seconds", type=float, default=0.5,
                        help="about how long a round of steps takes")
    parser.add_argument("--max-steps", type=int, default=500, help="most steps in a round")
    parser.add_argument("--seed", type=int, default=0)
    device_argument(parser)


def device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda")


def resolve(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def verdict(met: bool | None) -> str:
    return "n/a" if met is None else ("met" if met else "MISSED")


def entry_point(build_parser: Callable[[], argparse.ArgumentParser],
                run: Callable[[argparse.Namespace], dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """A benchmark's ``main(argv)``: parse the options, print the machine, run."""

    def main(argv: list[str] | None = None) -> dict[str, Any]:
        opts = build_parser().parse_args(argv)
        print_machine()
        return run(opts)

    return main
