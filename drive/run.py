"""One recorded, resumable experiment: what ``drive-sweep prune`` and a sweep trial both run.

:func:`run` ties an :class:`~drive.experiment.Experiment` to its record (:mod:`drive.record`)
and its checkpoints, with one set of resume rules:

- With checkpoints, a run continues from the last one. If its record already ended
  (finished, diverged, stopped) for the same experiment, nothing runs again: the recorded
  metrics are the result. Otherwise a record of the same experiment gets a new attempt (a
  ``start`` line with ``resumed``), and any other record is started afresh, with the history of
  the checkpoint replayed so that the record is whole.
- Without checkpoints, the record is started afresh.
- A failure before the experiment runs (data, checkpoint, model) ends the attempt ``errored``
  in the record when the record is written from the first second (``record_early``, a sweep
  trial) or already holds this experiment; otherwise (``drive-sweep prune``: bad input) nothing
  is written. An exception while it runs ends the record ``errored`` with its one-line reason,
  Ctrl-C or a signal (:class:`drive.errors.Interrupted`) ends it ``interrupted``; other stops
  (a scheduler's, a sweep's) leave the ending to whoever stopped it.

Checkpoints are taken every ``checkpoint_every`` epochs and at the end of warm-up, of pruning
and of each IMP round (:func:`wants_checkpoint`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from drive.config import ExperimentConfig
from drive.data import prepare_dataset
from drive.errors import StorageError, one_line
from drive.experiment import Experiment, Progress
from drive.record import Record, Recorder, Sink, parse_record
from drive.schema import TERMINAL
from drive.state import same_experiment


class Checkpoints(Protocol):
    """Where a run's states go and come from (a file for ``prune``, Tune's checkpoints in a
    trial)."""

    def load(self) -> dict[str, Any] | None:
        """The state to continue from, or None."""

    def save(self, state: dict[str, Any]) -> None:
        """Keep ``state`` (a copy; it may be written in the background)."""

    def close(self) -> None:
        """Finish any write in progress."""


@dataclass
class Outcome:
    """How a run ended: its metrics, and whether it ran now (False: its record had ended)."""

    metrics: dict[str, Any]
    ran: bool
    experiment: Experiment | None = None


def wants_checkpoint(p: Progress, plan: str, every: int) -> bool:
    """Every ``every`` epochs, and at the end of warm-up, of pruning and of each IMP round.

    Rewinding, IMP's fork and join and its magnitude pruning take no time to redo, so they get
    no checkpoint.
    """
    phase = p.metrics["phase"]
    if phase in ("rewind", "fork", "join") or (phase == "prune" and plan == "imp"):
        return False
    return p.boundary or (phase != "prune" and p.metrics["epochs_done"] % every == 0)


def record_experiment(experiment: Any, recorder: Recorder,
                      callback: Callable[[Progress], None] | None = None) -> dict[str, Any]:
    """Run ``experiment`` recording every line; the end as described in the module docstring."""

    def on_progress(p: Progress) -> None:
        recorder.progress(p.metrics, p.level)
        if callback is not None:
            callback(p)

    try:
        metrics = experiment.run(on_progress)
    except StorageError:
        raise
    except KeyboardInterrupt as e:  # Ctrl-C, or an Interrupted naming its signal
        recorder.end_status("interrupted", str(e) or "stopped by Ctrl-C",
                            epochs_done=getattr(experiment, "epochs_done", None))
        raise
    except Exception as e:
        recorder.end_status("errored", one_line(e))
        raise
    recorder.end(metrics)
    return metrics


def run(cfg: ExperimentConfig, *, sink: Sink | None, checkpoints: Checkpoints | None = None,
        checkpoint_every: int = 1, start: dict[str, Any] | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        record_early: bool = False) -> Outcome:
    """Run (or continue) the experiment ``cfg``, recorded in ``sink`` (None: no record).

    ``start`` holds the extra fields of the ``start`` line (provenance, trial id, selection).
    See the module docstring for the rules.
    """
    start = dict(start or {})
    previous = parse_record(sink.existing.splitlines()) if sink is not None and sink.existing else None
    same = previous is not None and same_experiment(previous.config, cfg)
    if checkpoints is not None and same and previous.status in TERMINAL:
        return Outcome(previous.metrics(), ran=False)
    recorder = Recorder("", lambda text: sink.append(text)) if sink is not None else None
    try:
        prepare_dataset(cfg.dataset, cfg.data)  # once per node, under a lock: nodes may join late
        state = checkpoints.load() if checkpoints is not None else None
    except Exception as e:
        if recorder is not None and (record_early or same):
            _failed_attempt(recorder, cfg, start, previous if same else None, e)
        raise
    try:
        if recorder is not None and record_early:
            _open(recorder, sink, cfg, start, state, previous if same and checkpoints else None)
        try:
            exp = Experiment(cfg, state)
        except Exception as e:
            if recorder is not None and record_early:
                recorder.end_status("errored", one_line(e))
            raise
        if recorder is not None and not record_early:
            _open(recorder, sink, cfg, start, state, previous if same and checkpoints else None)

        def progress(p: Progress) -> None:
            if on_progress is not None:
                on_progress(p)
            if checkpoints is not None and wants_checkpoint(p, cfg.spec.plan, checkpoint_every):
                checkpoints.save(p.state())

        metrics = (record_experiment(exp, recorder, progress) if recorder is not None
                   else exp.run(progress))
    finally:
        if checkpoints is not None:
            checkpoints.close()
    return Outcome(metrics, ran=True, experiment=exp)


def _open(recorder: Recorder, sink: Sink, cfg: ExperimentConfig, start: dict[str, Any],
          state: dict[str, Any] | None, previous: Record | None) -> None:
    """A new attempt of the record ``previous`` (this experiment's; continued from ``state``
    when there is one), or a record started afresh with the history of ``state`` replayed."""
    if previous is not None:
        resumed = None if state is None else {"epochs_done": state["epochs_done"],
                                              "history": len(state["history"])}
        recorder.start(cfg, resumed=resumed, **start)
        return
    if sink.existing:
        sink.reset()
    recorder.start(cfg, **start)
    for line in (state or {}).get("history", []):
        recorder.progress(line)
    for level in (state or {}).get("levels", []):
        recorder.write("level", **level)


def _failed_attempt(recorder: Recorder, cfg: ExperimentConfig, start: dict[str, Any],
                    previous: Record | None, error: Exception) -> None:
    """A ``start`` (keeping the history so far) and an ``errored`` end for an attempt that
    failed before its experiment existed; the error itself is what the caller raises."""
    history = previous.history if previous is not None else []
    resumed = {"epochs_done": history[-1].get("epochs_done", 0), "history": len(history)} if history else None
    try:  # storage that fails too: the original error is the one to see
        recorder.start(cfg, resumed=resumed, **start)
        recorder.end_status("errored", one_line(error))
    except OSError:
        pass
