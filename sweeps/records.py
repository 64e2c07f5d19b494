"""The driver's side of the result contract: the ``end`` lines a trial cannot write itself.

A trial writes its own record (:mod:`sweeps.trainable`). When ASHA stops it, its node is lost,
or the sweep stops first, the trial is in no state to say so; :class:`RecordKeeper` (a Tune
callback) and :func:`finalize` (after ``Tuner.fit``, from its ``ResultGrid``) append the end
line instead: ``stopped`` (by whom), ``errored`` (the error's last line) or ``interrupted``.

Storage that can no longer be written (read-only, full) stops the whole sweep at once instead
of letting every trial burn its retries on it (:class:`StopOnStorageError`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from drive.errors import StorageError, one_line
from drive.record import Recorder, last_status
from drive.schema import RECORD_FILE
from sweeps.storage import record_sink, trial_records
from sweeps.trainable import FINAL_STEP, STORAGE_ERRNOS, STORAGE_ERROR

INTERRUPTED = "the sweep stopped before this trial ended; `drive-sweep resume` continues it"


def record_path(experiment_path: str, trial_path: str) -> str:
    """A trial's record, from Tune's trial path (a local path, or one in the bucket of the
    experiment's ``s3://``/``gs://`` URI)."""
    scheme, sep, _ = experiment_path.partition("://")
    return f"{scheme}://{trial_path}/{RECORD_FILE}" if sep else f"{trial_path}/{RECORD_FILE}"


def _last_epochs(text: str) -> int | None:
    for raw in reversed(text.splitlines()):
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if line.get("event") == "epoch":
            return line.get("epochs_done")
    return None


def _error_line(trial: Any) -> str | None:
    """The last line of a trial's error file (the exception, as Tune recorded it)."""
    try:
        lines = [ln.strip() for ln in Path(trial.error_file).read_text(errors="replace").splitlines()
                 if ln.strip()]
    except (OSError, TypeError):
        return None
    return lines[-1][:300] if lines else None


def end_if_open(path: str, status: str, reason: str, stopped_by: str | None = None) -> bool:
    """Append an ``end`` line to the record at ``path`` when its last attempt has none."""
    sink = record_sink(path)
    if not sink.existing or last_status(sink.existing) != "running":
        return False
    Recorder(path, sink.append).end_status(status, reason, stopped_by,
                                           epochs_done=_last_epochs(sink.existing))
    return True


class EpochASHA(ASHAScheduler):
    """ASHA on training epochs (``epochs_done``) that remembers why it stopped each trial, and
    never stops one at its last step (it has only its end left: it finishes)."""

    def __init__(self, *, metric: str, mode: str, max_t: int, grace_period: int,
                 reduction_factor: float):
        super().__init__(time_attr="epochs_done", metric=metric, mode=mode, max_t=max_t,
                         grace_period=grace_period, reduction_factor=reduction_factor,
                         stop_last_trials=False)  # a trial that passes every rung finishes
        self.stops: dict[str, str] = {}

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        decision = super().on_trial_result(tune_controller, trial, result)
        if decision == TrialScheduler.STOP and result.get(FINAL_STEP):
            return TrialScheduler.CONTINUE
        if decision == TrialScheduler.STOP:
            self.stops[trial.trial_id] = (
                f"stopped by ASHA after {result['epochs_done']} epoch(s): {self._metric} "
                f"{result[self._metric]:.4g} was below its rung's cutoff")
        return decision


class RecordKeeper(tune.Callback):
    """Writes the ``end`` lines of trials stopped by the scheduler or lost with their worker,
    and holds the sweep's storage error, if any.

    Tune restores callbacks from its saved state on resume (a copy, not the object the driver
    made), so the driver finds the keeper Tune runs for an experiment with :meth:`of`, by its
    path: one keeper per running sweep, however many run in the process.
    """

    _running: dict[str, RecordKeeper] = {}

    def __init__(self, experiment_path: str, scheduler: EpochASHA | None = None):
        self.experiment_path = experiment_path
        self.scheduler = scheduler
        self.storage_error: str | None = None

    def setup(self, **info) -> None:
        RecordKeeper._running[self.experiment_path] = self

    @classmethod
    def of(cls, experiment_path: str) -> RecordKeeper:
        """The keeper of the sweep at ``experiment_path`` (a fresh one before Tune set it up)."""
        return cls._running.setdefault(experiment_path, cls(experiment_path))

    @classmethod
    def release(cls, experiment_path: str) -> None:
        """Forget the keeper of a sweep that ended."""
        cls._running.pop(experiment_path, None)

    def __getstate__(self) -> dict:  # what Tune saves: never the driver's storage error
        return {**self.__dict__, "storage_error": None}

    def _end(self, trial: Any, status: str, reason: str, stopped_by: str | None = None) -> None:
        try:
            end_if_open(record_path(self.experiment_path, trial.path), status, reason, stopped_by)
        except StorageError as e:
            self.storage_error = self.storage_error or str(e)

    def _check_storage(self, trial: Any) -> bool:
        """Whether the trial failed on storage (an error that got past the trial's own check)."""
        line = _error_line(trial)
        if line and ("StorageError" in line or any(f"[Errno {n}]" in line for n in STORAGE_ERRNOS)):
            self.storage_error = self.storage_error or line.split("StorageError: ", 1)[-1]
        return self.storage_error is not None

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info) -> None:
        reason = self.scheduler.stops.get(trial.trial_id) if self.scheduler else None
        if reason and self.storage_error is None:
            self._end(trial, "stopped", reason, stopped_by="asha")

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info) -> None:
        self._check_storage(trial)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info) -> None:
        if not self._check_storage(trial):
            self._end(trial, "errored", _error_line(trial) or "the trial failed (no error recorded)")


class StopOnStorageError(tune.Stopper):
    """Stops the whole sweep once its storage cannot be written (a trial reported it, or the
    driver could not write an end line)."""

    def __init__(self, experiment_path: str):
        self.experiment_path = experiment_path

    def __call__(self, trial_id: str, result: dict) -> bool:
        if result.get(STORAGE_ERROR):
            keeper = RecordKeeper.of(self.experiment_path)
            keeper.storage_error = keeper.storage_error or result[STORAGE_ERROR]
            return True
        return False

    def stop_all(self) -> bool:
        return RecordKeeper.of(self.experiment_path).storage_error is not None


class StorageLogFilter(logging.Filter):
    """Turns Tune's traceback for experiment state it could not save (full or read-only
    storage) into the sweep's storage error, which ends the sweep with one line."""

    LOGGER = "ray.tune.execution.experiment_state"

    def __init__(self, experiment_path: str):
        super().__init__()
        self.experiment_path = experiment_path

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        while error is not None and not (isinstance(error, OSError) and
                                         (error.errno in STORAGE_ERRNOS or
                                          any(f"errno {n}]" in str(error) for n in STORAGE_ERRNOS))):
            error = error.__cause__ or error.__context__
        if error is None:
            return True
        keeper = RecordKeeper.of(self.experiment_path)
        keeper.storage_error = keeper.storage_error or f"storage: {error.strerror or error}"
        return False


class GoneCheckpointFilter(logging.Filter):
    """Drops Tune's traceback for a checkpoint it meant to delete that is gone already: after a
    driver was killed, Tune's saved state still lists checkpoints it had deleted since (the
    state is saved now and then, checkpoints are deleted at once). The result is the one Tune
    wanted; the new checkpoint it registers is kept."""

    LOGGER = "ray.tune.execution.tune_controller"

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (isinstance(error, FileNotFoundError) and "Error handling checkpoint" in str(record.msg))


def finalize(experiment_path: str, grid: Any | None) -> None:
    """After ``Tuner.fit`` (``grid``, its ``ResultGrid``; None when it was cut short, once the
    trials were stopped): a trial that errored and every other record still open gets its end,
    ``errored`` and ``interrupted``."""
    for result in grid if grid is not None else ():
        if result.error is not None:
            end_if_open(record_path(experiment_path, result.path), "errored", one_line(result.error))
    for path in trial_records(experiment_path):  # also those of trials Tune had not listed yet
        end_if_open(path, "interrupted", INTERRUPTED)
