"""The Ray Tune function trainable: one ``drive`` experiment per trial.

The trial writes its record (``metrics.jsonl`` in its folder, docs/results.md) from its first
second: ``start`` before anything is loaded, every epoch and IMP level, and ``end`` with
``finished``/``diverged`` and the final metrics, or ``errored`` and the one-line reason before
the exception propagates. What a trial cannot write itself (stopped by ASHA, lost with its
node, interrupted) the driver writes (:mod:`sweeps.records`).

To Tune it reports only what schedulers and searchers use: ``epochs_done`` (ASHA's time unit is
training epochs), the phase, the density and the accuracies *when evaluated* (never a
placeholder). A checkpoint (the experiment's resumable state) is taken every
``checkpoint_every`` epochs and at every phase boundary, written in the background while the next
epoch trains (:class:`drive.state.CheckpointWriter`), and goes to Tune with the next report (the
last one with the final report); a retried or restored trial continues from
``tune.get_checkpoint()``. A trial whose record already ended (finished, diverged,
stopped) is never run again: it reports its end and returns.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ray import tune

from drive.data import prepare_dataset
from drive.experiment import Experiment, Progress
from drive.record import (RECORD_FILE, REPORTED_METRICS, TERMINAL, Recorder, StorageError,
                          last_status, one_line, parse_record, record_run)
from drive.state import CheckpointWriter, load_state
from sweeps.space import trial_overrides
from sweeps.spec import trial_config
from sweeps.storage import record_sink

STATE_FILE = "state.pt"

#: Fault injection for tests and chaos drills: ``"<epochs_done>:<marker file>"`` makes the
#: trial's worker process die (``os._exit``) once, right after that epoch's report, as if its
#: node had been lost; the marker file records that it happened.
FAIL_ONCE_ENV = "DRIVE_SWEEP_FAIL_ONCE"
#: errno values that mean "this storage cannot take more writes": full, read-only, over quota.
STORAGE_ERRNOS = (errno.ENOSPC, errno.EROFS, errno.EDQUOT)
#: The report field by which a trial tells the driver that the storage failed.
STORAGE_ERROR = "storage_error"
#: Fields of a report to Tune besides the evaluated metrics.
REPORT_FIELDS = ("phase", "epochs_done", "density")


def _maybe_fail(epochs_done: int) -> None:
    spec = os.environ.get(FAIL_ONCE_ENV)
    if not spec:
        return
    at, _, marker = spec.partition(":")
    if epochs_done == int(at) and not Path(marker).exists():
        Path(marker).write_text(f"failed once after epoch {epochs_done}\n")
        os._exit(1)


def _wants_checkpoint(p: Progress, method: str, every: int) -> bool:
    """Every ``every`` epochs, and at the end of warm-up, of pruning and of each IMP round.

    Rewinding, IMP's fork and join and its magnitude pruning take no time to redo, so they get
    no checkpoint.
    """
    phase = p.metrics["phase"]
    if phase in ("rewind", "fork", "join") or (phase == "prune" and method == "imp"):
        return False
    return p.boundary or (phase != "prune" and p.metrics["epochs_done"] % every == 0)


def tune_report(event: str, metrics: dict[str, Any]) -> dict[str, Any]:
    """What Tune sees of a line: the event, progress, and the metrics that were measured; an
    IMP level and the end also carry their final scalars (and per-layer densities) for the
    trackers (TensorBoard, progress.csv, MLflow, W&B)."""
    keys = REPORT_FIELDS + REPORTED_METRICS + ("status",)
    out = {"event": event, **{k: metrics[k] for k in keys if metrics.get(k) is not None}}
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


def run_trial(config: dict[str, Any], *, base: dict[str, Any], checkpoint_every: int,
              provenance: dict[str, Any], experiment_path: str,
              selection: dict[str, Any] | None = None) -> None:
    """Tune entry point (bind the keyword arguments with ``tune.with_parameters``).

    Storage that cannot be written (full, read-only) does not fail the trial, which would only
    burn its retries on it: the trial reports ``storage_error`` and ends, and the driver stops
    the sweep (:class:`sweeps.records.StopOnStorageError`).
    """
    try:
        _run(config, base, checkpoint_every, provenance, experiment_path, selection)
    except (StorageError, OSError) as e:
        reason = storage_failure(e) or storage_failure(e.__context__ or e)
        if reason is None:
            raise
        tune.report({"event": "storage_error", STORAGE_ERROR: reason})


def _run(config: dict[str, Any], base: dict[str, Any], checkpoint_every: int,
         provenance: dict[str, Any], experiment_path: str,
         selection: dict[str, Any] | None) -> None:
    cfg = trial_config(base, trial_overrides(config))
    append, existing = record_sink(f"{trial_folder(experiment_path)}/{RECORD_FILE}")
    if existing and last_status(existing) in TERMINAL:  # a restored sweep: done already
        done = parse_record(existing.splitlines())
        tune.report(tune_report("end", done.metrics()))
        return
    recorder = Recorder("", append)
    start = {"provenance": provenance, "trial_id": tune.get_context().get_trial_id(),
             "selection": selection}
    try:
        prepare_dataset(cfg.dataset, cfg.data)  # once per node, under a lock: nodes may join late
        state = None
        checkpoint = tune.get_checkpoint()
        if checkpoint is not None:
            with checkpoint.as_directory() as folder:
                state = load_state(Path(folder) / STATE_FILE)
    except Exception as e:  # a checkpoint cut short, data gone: the record says so, not a stale end
        _record_failed_attempt(recorder, cfg, start, existing, e)
        raise
    resumed = None if state is None else {"epochs_done": state["epochs_done"],
                                          "history": len(state["history"])}
    recorder.start(cfg, resumed=resumed, **start)
    try:
        exp = Experiment(cfg, state)
    except Exception as e:
        recorder.end_status("errored", one_line(e))
        raise

    writer, pending = CheckpointWriter(), []  # the folder of the checkpoint being written
    prefix = f"drive-checkpoint-{tune.get_context().get_trial_id()}-"
    for stale in Path(tempfile.gettempdir()).glob(f"{prefix}*"):  # left by this trial's crashed attempt
        shutil.rmtree(stale, ignore_errors=True)

    def report(metrics: dict[str, Any]) -> None:
        """Report to Tune with the checkpoint written since the last report, if any."""
        if not pending:
            tune.report(metrics)
            return
        writer.wait()
        folder = pending.pop()
        try:
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))  # copies it
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def on_progress(p: Progress) -> None:
        report(tune_report("level", {**p.metrics, **p.level}) if p.level else tune_report("epoch", p.metrics))
        if _wants_checkpoint(p, cfg.method, checkpoint_every):
            pending.append(tempfile.mkdtemp(prefix=prefix))
            writer.submit(p.state(), Path(pending[0]) / STATE_FILE)  # a copy, written meanwhile
        _maybe_fail(p.metrics["epochs_done"])

    try:
        metrics = record_run(exp, recorder, on_progress)
        report(tune_report("end", {**metrics, "epochs_done": exp.epochs_done}))
    finally:
        for folder in pending:  # a run that ended early: its last checkpoint goes unreported
            with contextlib.suppress(Exception):  # the error that ended the run is the one to see
                writer.wait()
            shutil.rmtree(folder, ignore_errors=True)


def _record_failed_attempt(recorder: Recorder, cfg, start: dict[str, Any], existing: str | None,
                           error: Exception) -> None:
    """A ``start`` (keeping the history so far) and an ``errored`` end for an attempt that failed
    before its experiment existed; the error itself is what the trial raises."""
    before = parse_record(existing.splitlines()) if existing else None
    history = before.history if before is not None else []
    resumed = {"epochs_done": history[-1].get("epochs_done", 0), "history": len(history)} if history else None
    with contextlib.suppress(OSError):  # storage that fails too: the original error is the one to see
        recorder.start(cfg, resumed=resumed, **start)
        recorder.end_status("errored", one_line(error))
