"""``drive-sweep run SWEEP --dry-run``: what a sweep would run, and what it would cost, printed
without running it.

The sweep is checked as a launch checks it before Ray starts (:func:`sweeps.checks.load_sweep`:
the file, every trial's config, search and schedulers; the name not taken; the storage
writable), but nothing is written (the storage is judged by its nearest existing folder, not by a
probe file) and nothing is downloaded or built: data sets and models are checked at launch. The
trials are listed in the order they would start (longest first), with their expected cost from
:func:`drive.plan.expected_cost`: training epochs and scoring sample passes.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

from sweeps.spec import SweepError, SweepSpec
from sweeps.storage import check_free
from sweeps.trials import Sweep, Trial

#: Rows of the trial table printed in full; a larger sweep prints its first rows and a summary.
HEAD = 20
#: Columns every table has, first; the sweep's other axes follow.
FIRST = ("method", "sparsity", "seed")


def check_target(spec: SweepSpec) -> None:
    """The checks of a launch on its experiment folder, without writing: the name is not taken
    and the storage's nearest existing folder can be written (object stores are not probed)."""
    path = spec.experiment_path()
    check_free(path)
    if spec.is_remote:
        return
    folder = Path(spec.storage).expanduser().absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise SweepError([f"storage: cannot write to {spec.storage} ({folder} is a file)"])
    if not os.access(folder, os.W_OK | os.X_OK):
        raise SweepError([f"storage: cannot write to {spec.storage} (Permission denied)"])


def describe(sweep: Sweep, head: int = HEAD) -> str:
    """The dry run's report: the trial table (its first ``head`` rows when longer), the trials
    per method and the expected cost per trial and in all."""
    from drive.plan import expected_cost

    spec = sweep.spec
    trials = sweep.longest_first()
    costs = {id(t): expected_cost(t.config) for t in trials}
    samples = {id(t): n for t, n in zip(sweep.trials, sweep.samples_per_point())}
    axes = [k for k in spec.grid_axes if k not in FIRST]
    columns = ["#", *FIRST, *axes] + (["samples"] if spec.sampled_axes else []) + ["epochs", "scoring passes"]
    rows = [[str(i), *_cells(t, axes), *([str(samples[id(t)])] if spec.sampled_axes else []),
             f"{costs[id(t)][0]:,}", f"{costs[id(t)][1]:,}"]
            for i, t in enumerate(trials[:head], 1)]
    lines = [f"dry run of {spec.name}: {sweep.total:,} trials, results to {spec.experiment_path()} "
             "(nothing started, nothing written)", ""]
    lines += _table(columns, rows, {"#", "samples", "epochs", "scoring passes"})
    if len(trials) > head:
        lines.append(f"... and {len(trials) - head:,} more grid points (the {head} listed start "
                     "first: the longest trials)")
    lines += ["", *_per_method(trials, costs, samples, sweep.methods)]
    lines += ["", "checked: the sweep file, every trial's config, search and scheduler settings, "
              "the name and the storage path",
              "checked at launch only: data sets (prepared, downloaded if asked), models (built "
              "once), resources and --address (Ray)"]
    return "\n".join(lines)


def _cells(trial: Trial, axes: list[str]) -> list[str]:
    cfg, point = trial.config, trial.point
    sparsity = "-" if cfg.method == "dense" else f"{cfg.sparsity:g}"
    if point.get("imp.branches"):
        sparsity += f" +{len(point['imp.branches'])} branches"
    return [cfg.method, sparsity, str(cfg.seed), *(_value(point[k]) if k in point else "-" for k in axes)]


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value).replace(" ", "")


def _table(columns: list[str], rows: list[list[str]], right: set[str]) -> list[str]:
    """Aligned text columns, those named in ``right`` (numbers) flush right."""
    widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(columns)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if name in right else c.ljust(w)
                         for c, w, name in zip(cells, widths, columns)).rstrip()

    return [line(columns), *(line(r) for r in rows)]


def _per_method(trials: list[Trial], costs: dict[int, tuple[int, int]], samples: dict[int, int],
                order: tuple[str, ...]) -> list[str]:
    count, epochs, passes = Counter(), Counter(), Counter()
    for t in trials:
        n = samples[id(t)]
        count[t.method] += n
        epochs[t.method] += n * costs[id(t)][0]
        passes[t.method] += n * costs[id(t)][1]
    columns = ["method", "trials", "epochs", "scoring passes"]
    methods = [m for m in order if m in count] + [m for m in count if m not in order]
    rows = [[m, f"{count[m]:,}", f"{epochs[m]:,}", f"{passes[m]:,}"] for m in methods]
    rows.append(["in all", f"{sum(count.values()):,}", f"{sum(epochs.values()):,}",
                 f"{sum(passes.values()):,}"])
    return ["expected cost (drive.plan.expected_cost: training epochs, scoring sample passes)",
            *_table(columns, rows, set(columns[1:]))]
