"""The Ray Tune function trainable: one recorded, resumable experiment per trial (:func:`drive.run.run`).

The trial writes its record (``metrics.jsonl`` in its folder, docs/results.md) from its first
second: ``start`` before anything is loaded, every epoch and IMP level, and ``end`` with
``finished``/``diverged`` and the final metrics, or ``errored`` and the one-line reason before
the exception propagates. What a trial cannot write itself (stopped by ASHA, lost with its
node, interrupted) the driver writes (:mod:`sweeps.records`).

To Tune it reports only what schedulers and searchers use: ``epochs_done`` (ASHA's time unit is
training epochs), the phase, the density and the accuracies *when evaluated* (never a
placeholder). A checkpoint (the experiment's resumable state) is taken every
``checkpoint_every`` epochs and at every phase boundary, written in the background while the next
epoch trains, and goes to Tune with the next report (the last one with the final report); a
retried or restored trial continues from ``tune.get_checkpoint()``. A trial whose record already
ended (finished, diverged, stopped) is never run again: it reports its end and returns.

Tune stops a trial (the sweep stopping on a signal, ASHA) inside its next report, where its
session exits. A trial stopped there after its last epoch has nothing left to run: it records
its finished end and reports nothing more, and the worker waits for that (:class:`StopAndRestore`),
so that a resumed sweep never trains it again. Stopped earlier, the trial writes nothing: the
driver ends its record (``stopped`` by ASHA, ``interrupted``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
import time
from pathlib import Path, PurePosixPath
from typing import Any

import pyarrow.fs as pafs
from ray import tune

from drive.errors import StorageError
from drive.experiment import Progress
from drive.run import run
from drive.schema import RECORD_FILE, REPORTED_METRICS
from drive.state import CheckpointWriter, load_state
from sweeps.storage import record_sink
from sweeps.trials import trial_config, trial_overrides

STATE_FILE = "state.pt"

#: Fault injection for tests and chaos drills: ``"<epochs_done>:<marker file>"`` makes the
#: trial's worker process die (``os._exit``) once, right after that epoch's report, as if its
#: node had been lost; the marker file records that it happened.
FAIL_ONCE_ENV = "DRIVE_SWEEP_FAIL_ONCE"
#: errno values that mean "this storage cannot take more writes": full, read-only, over quota.
STORAGE_ERRNOS = (errno.ENOSPC, errno.EROFS, errno.EDQUOT)
#: Fault injection for tests and drills: ``"<seconds>:<marker file>"`` makes the first trial to
#: reach its last step (the marker file says it did) wait that long before reporting it, so that
#: a signal sent to the driver meanwhile stops the trial between its last epoch and its end.
#: While ``<marker file>.hold`` exists (at most :data:`PAUSE_HOLD_S`) it waits first: time for
#: the drill to see the other trials reach a checkpoint before it sends the signal.
PAUSE_ONCE_ENV = "DRIVE_SWEEP_PAUSE_ONCE"
PAUSE_HOLD_S = 120.0
#: The report field by which a trial tells the driver that the storage failed.
STORAGE_ERROR = "storage_error"
#: The report field that marks the report of a trial's last step (its plan is done).
FINAL_STEP = "final_step"
#: Fields of a report to Tune besides the evaluated metrics.
REPORT_FIELDS = ("phase", "epochs_done", "density")
#: Seconds a stopped trial's worker waits for its training thread to end: time for a trial
#: stopped after its last epoch to record its end; less than the 5 s Tune gives stopped trials.
STOP_GRACE_S = 4.0


def _maybe_fail(epochs_done: int) -> None:
    spec = os.environ.get(FAIL_ONCE_ENV)
    if not spec:
        return
    at, _, marker = spec.partition(":")
    if epochs_done == int(at) and not Path(marker).exists():
        Path(marker).write_text(f"failed once after epoch {epochs_done}\n")
        os._exit(1)


def _maybe_pause(p: Progress) -> None:
    spec = os.environ.get(PAUSE_ONCE_ENV)
    if not spec or not p.done:
        return
    seconds, _, marker = spec.partition(":")
    if not Path(marker).exists():
        Path(marker).write_text(f"paused after its last step (epoch {p.metrics['epochs_done']})\n")
        hold, deadline = Path(f"{marker}.hold"), time.monotonic() + PAUSE_HOLD_S
        while hold.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(float(seconds))


def tune_report(event: str, metrics: dict[str, Any], final: bool = False) -> dict[str, Any]:
    """What Tune sees of a line: the event, progress, and the metrics that were measured; an
    IMP level and the end also carry their final scalars (and per-layer densities) for the
    trackers (TensorBoard, progress.csv, MLflow, W&B). ``final``: the report of the plan's last
    step (:data:`FINAL_STEP`; no scheduler stops a trial that has only its end left)."""
    keys = REPORT_FIELDS + REPORTED_METRICS + ("status",)
    out = {"event": event, **{k: metrics[k] for k in keys if metrics.get(k) is not None}}
    if final:
        out[FINAL_STEP] = True
    if event in ("level", "end"):
        out.update({k: v for k, v in metrics.items() if k not in out and _scalar_or_table(v)})
    return out


def _scalar_or_table(value: Any) -> bool:
    if isinstance(value, dict):
        return bool(value) and all(isinstance(v, (int, float)) for v in value.values())
    return isinstance(value, (int, float, str)) and not isinstance(value, bool)


def trial_folder(experiment_path: str) -> str:
    """This trial's folder in the experiment's storage (local, NFS or a bucket)."""
    return f"{experiment_path.rstrip('/')}/{Path(tune.get_context().get_trial_dir()).name}"


def storage_failure(error: BaseException) -> str | None:
    """The one-line reason when ``error`` means the storage cannot be written, else None."""
    if isinstance(error, StorageError):
        return str(error)
    if isinstance(error, OSError) and error.errno in STORAGE_ERRNOS:
        return f"storage: {error.strerror or error}" + (f" ({error.filename})" if error.filename else "")
    return None


def run_trial(config: dict[str, Any], *, base: dict[str, Any], methods: list[str],
              checkpoint_every: int, provenance: dict[str, Any], experiment_path: str,
              selection: dict[str, Any] | None = None) -> None:
    """Tune entry point (bind the keyword arguments with ``tune.with_parameters``).

    Storage that cannot be written (full, read-only) does not fail the trial, which would only
    burn its retries on it: the trial reports ``storage_error`` and ends, and the driver stops
    the sweep (:class:`sweeps.records.StopOnStorageError`).
    """
    try:
        _run(trial_config(base, trial_overrides(config, tuple(methods)), methods), checkpoint_every,
             provenance, experiment_path, selection)
    except (StorageError, OSError) as e:
        reason = storage_failure(e) or storage_failure(e.__context__ or e)
        if reason is None:
            raise
        tune.report({"event": "storage_error", STORAGE_ERROR: reason})


class TuneCheckpoints:
    """A trial's checkpoints (``drive.run.Checkpoints``): states written in the background into
    a temporary folder, handed to Tune with the next report (which copies them into the trial's
    storage), and the last one Tune holds to continue from."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.writer = CheckpointWriter()
        self.pending: list[str] = []  # the folder of the checkpoint being written
        self.stopped = False  # Tune stopped the trial: nothing reaches it any more
        for stale in Path(tempfile.gettempdir()).glob(f"{prefix}*"):  # left by a crashed attempt
            shutil.rmtree(stale, ignore_errors=True)

    def load(self) -> dict[str, Any] | None:
        checkpoint = tune.get_checkpoint()
        if checkpoint is None:
            return None
        with checkpoint.as_directory() as folder:
            return load_state(Path(folder) / STATE_FILE)

    def save(self, state: dict[str, Any]) -> None:
        self.writer.wait()
        self.pending.append(tempfile.mkdtemp(prefix=self.prefix))
        self.writer.submit(state, Path(self.pending[-1]) / STATE_FILE)

    def close(self) -> None:
        """Finish the write in progress (its checkpoint goes with the final report)."""
        self.writer.wait()

    def report(self, metrics: dict[str, Any]) -> None:
        """Report to Tune with the checkpoint written since the last report, if any; nothing once
        Tune stopped the trial."""
        if self.stopped:
            return
        if not self.pending:
            tune.report(metrics)
            return
        self.writer.wait()
        folder = self.pending.pop()
        try:
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))  # copies it
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def discard(self) -> None:
        """Remove what was not reported (a run that ended early)."""
        for folder in self.pending:
            with contextlib.suppress(Exception):  # the error that ended the run is the one to see
                self.writer.wait()
            shutil.rmtree(folder, ignore_errors=True)
        self.pending.clear()


def _run(cfg, checkpoint_every: int, provenance: dict[str, Any], experiment_path: str,
         selection: dict[str, Any] | None) -> None:
    trial_id = tune.get_context().get_trial_id()
    checkpoints = TuneCheckpoints(f"drive-checkpoint-{trial_id}-")

    def on_progress(p: Progress) -> None:
        _maybe_pause(p)
        try:
            checkpoints.report(tune_report("level", {**p.metrics, **p.level}, p.done) if p.level
                               else tune_report("epoch", p.metrics, p.done))
        except SystemExit:  # Tune stopped the trial: its session exits at the next report
            if not p.done:
                raise  # the driver ends the record (interrupted, or stopped by ASHA)
            checkpoints.stopped = True  # only the end is left: the run returns and records it
        _maybe_fail(p.metrics["epochs_done"])

    try:
        outcome = run(cfg, sink=record_sink(f"{trial_folder(experiment_path)}/{RECORD_FILE}"),
                      checkpoints=checkpoints, checkpoint_every=checkpoint_every,
                      start={"provenance": provenance, "trial_id": trial_id, "selection": selection},
                      on_progress=on_progress, record_early=True)
        done = outcome.experiment.epochs_done if outcome.experiment else outcome.metrics.get("epochs_done")
        checkpoints.report(tune_report("end", {**outcome.metrics, "epochs_done": done}))
    finally:
        checkpoints.discard()


class StopAndRestore:
    """Mixed into the trainable's class (``run_trial.__mixins__``, which Tune's
    ``wrap_function`` adds to the class it makes of the function).

    ``cleanup`` -- Tune stopping the trial -- stops the training thread at its next report and
    waits for it to end, up to :data:`STOP_GRACE_S` (Tune's own cleanup does not wait), so that a
    trial stopped after its last epoch records its finished end.

    ``restore`` of a checkpoint that Tune's saved state names but that no longer exists (a
    driver killed after Tune deleted it for newer ones, before Tune saved its state again)
    continues from the newest checkpoint in the trial's folder instead, or from none.
    """

    def cleanup(self) -> None:
        from ray.train._internal.session import get_session  # as FunctionTrainable.cleanup

        session = get_session()
        if session is not None and session.training_started:
            session.finish(timeout=STOP_GRACE_S)
        super().cleanup()  # type: ignore[misc]

    def restore(self, checkpoint_path: Any) -> None:
        checkpoint = getattr(checkpoint_path, "checkpoint", None)
        if checkpoint is not None and _missing(checkpoint):
            newest = newest_checkpoint(checkpoint.filesystem, str(PurePosixPath(checkpoint.path).parent))
            if newest is None:
                return  # no checkpoint left: the trial starts afresh (its record says so)
            checkpoint_path.checkpoint = newest
        super().restore(checkpoint_path)  # type: ignore[misc]


def _missing(checkpoint: tune.Checkpoint) -> bool:
    return checkpoint.filesystem.get_file_info(checkpoint.path).type == pafs.FileType.NotFound


def newest_checkpoint(fs: pafs.FileSystem, trial_folder: str) -> tune.Checkpoint | None:
    """The newest ``checkpoint_*`` folder of a trial that holds a state, or None."""
    infos = fs.get_file_info(pafs.FileSelector(trial_folder, allow_not_found=True))
    folders = sorted((i.path for i in infos if i.type == pafs.FileType.Directory
                      and i.base_name.startswith("checkpoint_")), reverse=True)
    for folder in folders:
        if fs.get_file_info(f"{folder}/{STATE_FILE}").type == pafs.FileType.File:
            return tune.Checkpoint(folder, filesystem=fs)
    return None


run_trial.__mixins__ = (StopAndRestore,)  # type: ignore[attr-defined]
