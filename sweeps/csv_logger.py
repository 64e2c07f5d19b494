"""``progress.csv`` with every metric: Tune's CSV logger with columns that grow."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from ray.tune.logger import LoggerCallback
from ray.tune.utils import flatten_dict


class AllMetricsCSVCallback(LoggerCallback):
    """``progress.csv`` in every trial folder with every metric any report had.

    Tune's CSVLoggerCallback fixes the columns at the first report, so the final metrics of a
    trial (reported last, with other keys than the epochs) never reach its file. Here a report
    with new keys rewrites the file with the wider header (a handful of times per trial: first
    epoch, IMP levels, final); every other report is appended.
    """

    FILE = "progress.csv"

    def __init__(self) -> None:
        self._columns: dict[Any, list[str]] = {}

    def log_trial_result(self, iteration: int, trial: Any, result: dict[str, Any]) -> None:
        trial.init_local_path()
        path = Path(trial.local_path) / self.FILE
        row = flatten_dict({k: v for k, v in result.items() if k != "config"}, delimiter="/")
        columns = self._columns.get(trial)
        if columns is None:  # a restored trial continues its file
            columns = self._columns[trial] = _header(path)
        new = [k for k in row if k not in columns]
        if new or not path.exists():
            rows = _rows(path)
            columns += new
            with path.open("w", newline="") as f:
                writer = csv.DictWriter(f, columns)
                writer.writeheader()
                writer.writerows(rows + [row])
        else:
            with path.open("a", newline="") as f:
                csv.DictWriter(f, columns).writerow(row)

    def log_trial_end(self, trial: Any, failed: bool = False) -> None:
        self._columns.pop(trial, None)


def _header(path: Path) -> list[str]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return next(csv.reader(f), [])


def _rows(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))
