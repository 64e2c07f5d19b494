"""The tidy results of a finished (or stopped) sweep: files in its folder and a terminal summary."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd

from sweeps.storage import exists, load_results, upload


def write_results(path: str) -> pd.DataFrame:
    """Load every trial of the sweep at ``path`` and write ``results.csv``/``results.parquet`` there."""
    from analysis.results import save

    frame = load_results([path])
    with tempfile.TemporaryDirectory() as tmp:
        save(frame, Path(tmp) / "results")
        for suffix in ("csv", "parquet"):
            upload(Path(tmp) / f"results.{suffix}", f"{path.rstrip('/')}/results.{suffix}")
    return frame


#: Statuses of a sweep that ended as planned: it exits 0 (ASHA stopping a trial is the plan).
AS_PLANNED = ("finished", "diverged", "stopped")


def trial_counts(frame: pd.DataFrame, expected: int | None = None) -> dict[str, int]:
    """Trials by status; ``not started`` = ``expected`` minus the trials with a record."""
    counts = frame.drop_duplicates(["experiment", "trial_id"])["status"].value_counts().to_dict()
    if expected is not None and expected > sum(counts.values()):
        counts["not started"] = expected - sum(counts.values())
    return counts


def exit_code(counts: dict[str, int]) -> int:
    """0 when every trial ended as planned (finished, diverged, stopped by ASHA), else 1."""
    return 0 if set(counts) <= set(AS_PLANNED) else 1


def summarize(frame: pd.DataFrame, expected: int | None = None) -> str:
    """Trial counts by status and the mean final test accuracy (%) of every method variant at
    the sparsities the sweep aimed at (IMP's in-between levels are in the files)."""
    from analysis.aggregate import aggregate, headline_levels

    counts = trial_counts(frame, expected)
    if not counts:
        return "no trial results found"
    lines = ["trials: " + ", ".join(f"{n} {status}" for status, n in counts.items())]
    if frame.empty:
        return lines[0]
    agg = aggregate(frame)
    if not agg.empty:
        agg = agg[agg["sparsity"].isin(headline_levels(agg) + [0.0])]
        table = agg.pivot_table(index="label", columns="sparsity", values="test_acc_mean", sort=False)
        table.columns = [f"{100 * s:g}%" for s in table.columns]
        lines += ["mean final test accuracy (%) over seeds:",
                  (100 * table).round(2).to_string(na_rep="-")]
    return "\n".join(lines)


def never_started(paths: list[str], frame: pd.DataFrame) -> int:
    """Trials that the sweeps at ``paths`` planned (their ``sweep.yaml``) and that left no record."""
    from sweeps.launch import SPEC_FILE, expected_trials
    from sweeps.spec import SweepError

    missing = 0
    for path in paths:
        if not exists(f"{path.rstrip('/')}/{SPEC_FILE}"):
            continue  # records or folders of them, not one sweep
        name = path.rstrip("/").rsplit("/", 1)[-1]
        started = frame.loc[frame["experiment"] == name, "trial_id"].nunique()
        try:
            missing += max(0, expected_trials(path) - started)
        except SweepError:  # a sweep.yaml the tool can no longer read: nothing to say
            continue
    return missing
