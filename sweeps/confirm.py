"""A sweep of more than :data:`CONFIRM_ABOVE` trials starts only when the user says so:
``--yes``, or ``y`` at a prompt when stdin is a terminal. A grid that big is more often an axis
too many than a plan, and it would claim the cluster for days."""

from __future__ import annotations

import sys
from typing import TextIO

from sweeps.spec import SweepError

#: Trials a sweep may have without a confirmation.
CONFIRM_ABOVE = 1000


def confirm_size(total: int, yes: bool = False, stdin: TextIO | None = None,
                 stderr: TextIO | None = None) -> None:
    """Return when the sweep of ``total`` trials may start; ask on a terminal, else refuse.

    Raises:
        SweepError: one line with the count and how to go on (``--yes`` or ``--dry-run``).
    """
    if total <= CONFIRM_ABOVE or yes:
        return
    stdin = sys.stdin if stdin is None else stdin
    stderr = sys.stderr if stderr is None else stderr
    if stdin is not None and stdin.isatty():
        stderr.write(f"drive-sweep: the sweep has {total:,} trials; start them all? [y/N] ")
        stderr.flush()
        if stdin.readline().strip().lower() in ("y", "yes"):
            return
    raise SweepError([f"sweep: {total:,} trials, more than {CONFIRM_ABOVE:,} are started only "
                      "when confirmed; add --yes to start them, or --dry-run to list them first"])
