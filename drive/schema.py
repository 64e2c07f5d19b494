"""The result schema: every key an experiment's record and metrics hold, in one place.

Every experiment (``drive-sweep prune --out FILE`` or a sweep trial's ``metrics.jsonl``) writes
one record, a file of JSON lines (docs/results.md): a ``start`` line per attempt, an ``epoch``
line after every training epoch or pruning step, a ``level`` line per finished IMP level, and
an ``end`` line. The writer (:mod:`drive.record`), the experiment that produces the metrics
(:mod:`drive.experiment`), the sweep driver that ends records a trial could not end
(:mod:`sweeps.records`), the Ray trainable's reports and the analysis all take their keys from
here; the writer refuses a key this schema does not name.

This module imports nothing of the project beyond the errors, and neither torch nor Ray.
"""

from __future__ import annotations

from typing import Any, TypedDict

#: The record's file name inside a sweep trial's folder.
RECORD_FILE = "metrics.jsonl"
#: Version of the line format, in every ``start`` line.
VERSION = 1

#: How an experiment ended. ``running``: its last attempt has no ``end`` line (yet).
STATUSES = ("finished", "diverged", "errored", "stopped", "interrupted", "running")
#: Statuses after which an experiment is never run again (a resumed sweep skips it).
TERMINAL = ("finished", "diverged", "stopped")

#: What ran: the keys the ``start`` line, the final metrics and every tidy row agree on.
IDENTITY = ("method", "sparsity", "model", "dataset", "seed", "epochs", "warmup_epochs",
            "prune_iterations")
#: The metrics an ``epoch`` line carries when they were measured, and by which search and
#: schedulers may rank trials.
REPORTED_METRICS = ("val_acc", "val_loss", "test_acc", "test_loss", "train_acc", "train_loss")
#: A run's progress so far, in every ``epoch`` line (what a record without an end still tells).
PROGRESS = ("density", "prune_time_s", "prune_samples", "train_time_s", "epochs_done")
#: What the masks say of a network (:meth:`drive.masks.Masks.summary`).
MASK_SUMMARY = ("density", "layer_density", "params_remaining", "params_prunable",
                "collapsed_layers")
#: The costs of pruning and training (docs/results.md, "Costs").
COSTS = ("prune_time_s", "prune_samples", "train_time_s", "total_time_s")
#: What the masks buy in theory (:func:`drive.flops.count_costs`): FLOPs of one sample's forward
#: pass (2 per multiply-accumulate) and MACs, with and without the masks, and the parameter
#: bytes stored dense, as CSR and as a bitmap; per layer in ``layer_flops``.
FOOTPRINT = ("sample_shape", "flops_dense", "flops", "flops_fraction", "macs_dense", "macs",
             "flops_other", "bytes_dense", "bytes_csr", "bytes_bitmap", "layer_flops",
             "layer_flops_dense")

START = ("record", *IDENTITY, "trial_id", "resumed", "selection", "provenance", "method_info",
         "config")
EPOCH = ("phase", "level", "epoch", "branch", "train_loss", "train_acc", "lr", "test_acc",
         "test_loss", "val_acc", "val_loss", *PROGRESS)
LEVEL = ("level", "sparsity", "branch", "requested", "test_acc", "val_acc", "best_test_acc",
         *COSTS, *MASK_SUMMARY, *FOOTPRINT)
#: The final metrics of an experiment that ended by itself (``drive.experiment.run``'s dict).
FINAL = ("status", "reason", *IDENTITY, "device", "test_acc", "test_loss", "best_test_acc",
         "val_acc", "val_loss", *MASK_SUMMARY, *FOOTPRINT, "params_total", *COSTS, "eval_time_s",
         "wall_time_s", "method_metrics", "levels", "history", "method_info", "config")
#: Final metrics that the ``end`` line leaves out: the ``start`` line and the epoch lines hold them.
NOT_IN_END = ("history", "config", "method_info")
END = ("status", "reason", "stopped_by", "epochs_done",
       *(k for k in FINAL if k not in NOT_IN_END))
#: The keys of each line kind.
LINES: dict[str, tuple[str, ...]] = {"start": START, "epoch": EPOCH, "level": LEVEL, "end": END}


class Identity(TypedDict):
    """What ran (:data:`IDENTITY`)."""

    method: str
    sparsity: float
    model: str
    dataset: str
    seed: int
    epochs: int
    warmup_epochs: int
    prune_iterations: int


def identity(config: Any) -> Identity:
    """What ran, from an ``ExperimentConfig``: ``warmup_epochs`` only for a method trained
    before pruning; ``prune_iterations`` is T, IMP's rounds, or 0 for dense."""
    spec = config.spec
    return Identity(method=config.method, sparsity=config.sparsity, model=config.model,
                    dataset=config.dataset, seed=config.seed, epochs=config.train.epochs,
                    warmup_epochs=config.warmup_epochs if spec.plan == "after_warmup" else 0,
                    prune_iterations=spec.reported_iterations(config))


def unknown_keys(event: str, fields: dict[str, Any]) -> list[str]:
    """The keys of a line of kind ``event`` that the schema does not name."""
    allowed = LINES.get(event)
    return [] if allowed is None else sorted(set(fields) - set(allowed) - {"event", "time"})


__all__ = ["COSTS", "END", "FOOTPRINT", "EPOCH", "FINAL", "IDENTITY", "LEVEL", "LINES", "MASK_SUMMARY",
           "NOT_IN_END", "PROGRESS", "RECORD_FILE", "REPORTED_METRICS", "START", "STATUSES",
           "TERMINAL", "VERSION", "Identity", "identity", "unknown_keys"]
