"""The tidy results of a finished (or stopped) sweep: files in its folder and a terminal summary."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd

from sweeps.storage import local_copy, upload


def write_results(path: str) -> pd.DataFrame:
    """Load every trial of the sweep at ``path`` and write ``results.csv``/``results.parquet`` there."""
    from analysis.results import load, save

    frame = load([local_copy(path)])
    with tempfile.TemporaryDirectory() as tmp:
        save(frame, Path(tmp) / "results")
        for suffix in ("csv", "parquet"):
            upload(Path(tmp) / f"results.{suffix}", f"{path.rstrip('/')}/results.{suffix}")
    return frame


def summarize(frame: pd.DataFrame) -> str:
    """Trial counts by status and the mean final test accuracy (%) by method x sparsity."""
    if frame.empty:
        return "no trial results found"
    statuses = frame.drop_duplicates("trial_id")["status"].value_counts()
    lines = ["trials: " + ", ".join(f"{n} {status}" for status, n in statuses.items())]
    done = frame[frame["status"] == "finished"]
    if not done.empty:
        table = done.pivot_table(index="method", columns="sparsity", values="test_acc", aggfunc="mean")
        lines += ["mean final test accuracy (%) by method and sparsity:",
                  (100 * table).round(2).to_string(na_rep="-")]
    return "\n".join(lines)
