"""What the commands do on SIGINT (Ctrl-C) and SIGTERM (``ray job stop``, Kubernetes, Slurm,
``kill``): stop, say so in one line, exit 128 + the signal's number (130, 143).

A :class:`SignalGuard` handles both signals for the whole command; the CLI installs it. Ray's
start installs SIGTERM handlers of its own (``sys.exit(15)`` while it starts, then a C++ signal
dump and abort) and its shutdown resets SIGTERM's, so both run inside :func:`held`: the signals
wait until Ray is up (or down), and the guard, installed again, gets them.

- while nothing runs yet (checks, Ray starting, the experiment folder being claimed), and in
  ``drive-sweep prune``, a signal raises :class:`drive.errors.Interrupted`, a KeyboardInterrupt:
  a launch undoes its claim, a ``prune`` run records ``interrupted``;
- while Tune runs (:func:`tune_running`), the first signal stops Tune the way its own SIGUSR1
  handler does: Tune saves the experiment state, then stops every running trial at its next
  report (a trial whose last epoch is done records its finished end first,
  :mod:`sweeps.trainable`; the driver ends the other records ``interrupted``,
  :func:`sweeps.records.finalize`). A second signal stops waiting for that (``Interrupted``);
- afterwards (the records being ended, the results written) a signal is only noted.

:func:`stopped_line` is the line the command prints then; :func:`quiet_tune` keeps the lines
that Tune prints about the same stop (its advice to call ``Tuner.restore``, metrics it cannot
fetch for trials that never reported) off the terminal. This module imports no Ray.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from drive.errors import Interrupted, signal_name
from drive.schema import STATUSES

#: The signals a command stops on.
HANDLED = (signal.SIGINT, signal.SIGTERM)
#: Tune's loggers whose lines about a stop the one line replaces, and how those lines begin.
TUNE_STOP_LINES = {
    "ray.tune.tune": ("Stop signal received", "Experiment has been interrupted"),
    # a trial that never reported (never started, or stopped before its first report) has no
    # result.json: Tune warns on every restore and at the end; the records tell the whole story
    "ray.tune.analysis.experiment_analysis": ("Failed to fetch metrics",),
}
#: Tune's line listing unfinished trials, expected (and not shown) after a stop.
INCOMPLETE = "Trials did not complete"

_current: SignalGuard | None = None


class SignalGuard:
    """The handler of SIGINT and SIGTERM while a command runs (a context manager; main thread).

    ``received`` is the first signal that arrived (None: none did); see the module docstring
    for what a signal does in each phase.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self.phase = "before"  # before | tuning | after
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> SignalGuard:
        global _current
        self._previous = {s: signal.getsignal(s) for s in HANDLED}
        self.rearm()
        _current = self
        return self

    def __exit__(self, *exc: object) -> None:
        global _current
        _current = None
        for s, handler in self._previous.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)

    def rearm(self) -> None:
        """(Re)install the handler of both signals (Ray's start replaces them)."""
        for s in HANDLED:
            signal.signal(s, self._handle)

    @property
    def exit_code(self) -> int | None:
        """128 + the signal's number, or None when no signal arrived."""
        return None if self.received is None else Interrupted(self.received).exit_code

    def _handle(self, signum: int, frame: Any) -> None:
        first = self.received is None
        if first:
            self.received = signum
        if self.phase == "after":
            return
        if self.phase == "before" or not first:
            raise Interrupted(self.received)
        self._stop_tune()

    def _stop_tune(self) -> None:
        """Ask Tune to stop as on SIGUSR1: its handler, installed while it runs, sets the event
        its loop ends on (then it saves its state and stops the trials). Before Tune listens
        (it is still starting), a thread sends the SIGUSR1 as soon as it does."""
        stop = signal.getsignal(signal.SIGUSR1)
        if callable(stop):
            stop(signal.SIGUSR1, None)
        else:
            threading.Thread(target=self._stop_when_tune_listens, daemon=True).start()

    def _stop_when_tune_listens(self) -> None:
        while self.phase == "tuning":
            if callable(signal.getsignal(signal.SIGUSR1)):
                os.kill(os.getpid(), signal.SIGUSR1)
                return
            time.sleep(0.05)


def current() -> SignalGuard | None:
    """The guard of this command, if one is installed."""
    return _current


@contextmanager
def held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back inside (Ray starting or stopping), then install the guard's
    handlers again and let them come (a signal that arrived meanwhile is handled then). Threads
    started inside keep them blocked, so the main thread's handler is the one that gets them.
    Without a guard, or off the main thread, nothing is held."""
    if _current is None or threading.current_thread() is not threading.main_thread() \
            or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED)
    try:
        yield
    finally:
        _current.rearm()
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def received() -> int | None:
    """The signal that stopped this command, or None."""
    return None if _current is None else _current.received


@contextmanager
def tune_running() -> Iterator[None]:
    """The phase in which a signal stops Tune gracefully (wrap ``Tuner.fit``); without a guard
    (the Python API), Tune's own handling is left as it is."""
    guard = _current
    if guard is None:
        yield
        return
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"  # Ctrl-C is the guard's, not Tune's
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # a handler of an earlier Tune run is stale
    guard.rearm()
    guard.phase = "tuning"
    try:
        yield
    finally:
        guard.phase = "after"


class _TuneStopFilter(logging.Filter):
    def __init__(self, starts: tuple[str, ...]):
        super().__init__()
        self.starts = starts

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith(self.starts):
            return False
        return not (received() is not None and message.startswith(INCOMPLETE))


@contextmanager
def quiet_tune() -> Iterator[None]:
    """Keep Tune's lines about a stop (:data:`TUNE_STOP_LINES`) off the terminal, and its list of
    unfinished trials once a signal stopped the sweep."""
    filters = [(logging.getLogger(name), _TuneStopFilter(starts))
               for name, starts in TUNE_STOP_LINES.items()]
    for logger, f in filters:
        logger.addFilter(f)
    try:
        yield
    finally:
        for logger, f in filters:
            logger.removeFilter(f)


def stopped_line(signum: int, counts: dict[str, int], path: str) -> str:
    """The one line a sweep stopped by ``signum`` ends with: what happened, how many trials
    stand how (``counts``: status -> trials, ``not started`` included), and the command that
    continues it."""
    order = [*STATUSES, *sorted(set(counts) - set(STATUSES))]
    states = ", ".join(f"{counts[s]} {s}" for s in order if counts.get(s)) or "no trial started"
    return (f"drive-sweep: {signal_name(signum)} stopped the sweep ({states}); every record is "
            f"ended; continue with `drive-sweep resume {path}`")


__all__ = ["HANDLED", "SignalGuard", "current", "held", "quiet_tune", "received",
           "stopped_line", "tune_running"]
