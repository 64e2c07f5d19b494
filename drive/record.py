"""The result contract: one experiment's record, written as JSON Lines while it runs, and read
back. Its keys are those of :mod:`drive.schema`.

Every experiment, from ``drive-sweep prune --out FILE`` or a sweep trial (``metrics.jsonl`` in
its folder), writes one file, line by line, each line flushed as it is written:

- ``start``: identity (method, sparsity, model, dataset, seed, epochs, warm-up, T), the full
  resolved config, provenance, the trial id; a run that continues from a checkpoint appends a
  new ``start`` with ``resumed`` (epochs done, history length) -- an *attempt*;
- ``epoch``: after every training epoch or pruning step (``drive.experiment.Progress.metrics``);
  accuracies only when evaluated, never a placeholder;
- ``level``: an IMP level finished (its level dict);
- ``end``: ``status`` and ``reason``, plus the final metrics when the experiment itself ended.

Statuses: ``finished``, ``diverged`` (NaN/inf loss), ``errored`` (an exception; reason = its
one-line message), ``stopped`` (``stopped_by`` says who, e.g. ``asha``), ``interrupted`` (the
sweep stopped first). A record whose last attempt has no ``end`` is ``running``. See
docs/results.md. This module imports neither torch nor Ray.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drive.errors import StorageError
from drive.schema import IDENTITY, NOT_IN_END, PROGRESS, STATUSES, VERSION, identity, unknown_keys

Append = Callable[[str], None]


@dataclass
class Sink:
    """Where a record goes: ``append(text)``, the text it holds already (``""`` for none), and
    ``reset()`` to empty it (a record started afresh)."""

    append: Append
    existing: str
    reset: Callable[[], None]


def local_sink(path: str | Path) -> Sink:
    """The record at the local (or NFS) file ``path``; errors are :class:`StorageError`."""
    path = Path(path)
    try:
        existing = path.read_text(errors="replace") if path.is_file() else ""
    except OSError as e:
        raise StorageError(f"storage: cannot read {path} ({e.strerror or e})") from None
    sink = Sink(local_appender(path), existing, lambda: None)

    def reset() -> None:
        sink.append = local_appender(path, truncate=True)
        sink.existing = ""

    sink.reset = reset
    return sink


def local_appender(path: str | Path, truncate: bool = False) -> Append:
    """``append(text)`` to a local file, flushed at once; errors are :class:`StorageError`.

    A file whose last line was cut short (a crash mid-write) gets a newline first, so the next
    line stays readable.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if truncate:
            path.write_text("")
        cut = _ends_cut(path)
    except OSError as e:
        raise StorageError(f"storage: cannot write {path} ({e.strerror or e})") from None

    def append(text: str) -> None:
        nonlocal cut
        try:
            with path.open("a") as f:
                f.write("\n" + text if cut else text)
                f.flush()
            cut = False
        except OSError as e:
            raise StorageError(f"storage: cannot write {path} ({e.strerror or e})") from None

    return append


def _ends_cut(path: Path) -> bool:
    """Whether the file exists, is not empty and does not end with a newline."""
    if not path.is_file() or path.stat().st_size == 0:
        return False
    with path.open("rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) != b"\n"


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf become None (the record stays valid JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


class Recorder:
    """Writes one experiment's record line by line (see the module docstring).

    ``append`` receives each line (default: append to the local file ``path``); a sweep passes
    one that also reaches remote storage.
    """

    def __init__(self, path: str | Path, append: Append | None = None, truncate: bool = False):
        self.path = str(path)
        self._append = append or local_appender(path, truncate=truncate)

    def write(self, event: str, **fields: Any) -> None:
        """One line of kind ``event``; a key the schema (:data:`drive.schema.LINES`) does not
        name is refused (ValueError), so that no producer invents a key no reader knows."""
        unknown = unknown_keys(event, fields)
        if unknown:
            raise ValueError(f"record: a {event} line has no key {', '.join(unknown)} (drive.schema)")
        line = {"event": event, "time": round(time.time(), 3), **fields}
        self._append(json.dumps(_clean(line), separators=(",", ":")) + "\n")

    def start(self, config: Any, *, provenance: dict[str, Any] | None = None,
              trial_id: str | None = None, resumed: dict[str, int] | None = None,
              selection: dict[str, Any] | None = None) -> None:
        """The first line of an attempt: identity, resolved config, provenance."""
        self.write("start", record=VERSION, **identity(config), trial_id=trial_id,
                   resumed=resumed, selection=selection, provenance=provenance,
                   method_info=config.spec.info(), config=config.model_dump(mode="json"))

    def progress(self, metrics: dict[str, Any], level: dict[str, Any] | None = None) -> None:
        """An epoch (or pruning step) line, and a level line when an IMP level finished."""
        self.write("epoch", **metrics)
        if level is not None:
            self.write("level", **level)

    def end(self, metrics: dict[str, Any]) -> None:
        """The experiment ended by itself: its status and final metrics (no history/config)."""
        self.write("end", stopped_by=None, **{k: v for k, v in metrics.items() if k not in NOT_IN_END})

    def end_status(self, status: str, reason: str | None, stopped_by: str | None = None,
                   epochs_done: int | None = None) -> None:
        """The experiment ended without final metrics: errored, stopped or interrupted (a driver
        that ends a trial's record says how many epochs it had done)."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        extra = {} if epochs_done is None else {"epochs_done": epochs_done}
        self.write("end", status=status, reason=reason, stopped_by=stopped_by, **extra)


# ---- reading ------------------------------------------------------------------------------


@dataclass
class Record:
    """A parsed record: the first ``start``, the last attempt's ``end`` and what came between."""

    start: dict[str, Any]
    end: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    levels: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 1

    @property
    def status(self) -> str:
        return self.end.get("status", "running") if self.end else "running"

    @property
    def reason(self) -> str | None:
        return self.end.get("reason") if self.end else None

    @property
    def config(self) -> dict[str, Any]:
        return self.start.get("config") or {}

    def metrics(self) -> dict[str, Any]:
        """The experiment's metrics in the shape of ``drive.experiment.run``'s dict.

        A record without final metrics gets its identity, status, reason, the progress of its
        last epoch line (density, times, epochs done) and the levels it finished.
        """
        ident = {k: self.start.get(k) for k in IDENTITY}
        out: dict[str, Any] = {**ident, "status": self.status, "reason": self.reason}
        last = self.history[-1] if self.history else {}
        if self.end and "test_acc" in self.end:  # ended by itself: the final metrics
            out.update({k: v for k, v in self.end.items() if k not in ("event", "time")})
            out.setdefault("epochs_done", last.get("epochs_done"))
        else:
            out.update({k: last[k] for k in PROGRESS if k in last})
            out["levels"] = list(self.levels)
            if self.end:
                out["stopped_by"] = self.end.get("stopped_by")
        out.update(history=self.history, config=self.config, method_info=self.start.get("method_info"),
                   provenance=self.start.get("provenance"), selection=self.start.get("selection"),
                   trial_id=self.start.get("trial_id"), attempts=self.attempts)
        return out


#: How this module's writer begins an epoch line (lets a reader skip parsing it).
_EPOCH_PREFIX = '{"event":"epoch"'


def parse_record(lines: Iterable[bytes | str], history: bool = True) -> Record | None:
    """A :class:`Record` from the lines of a record file; None when it has no ``start`` line.

    Unparsable lines (a line cut short by a crash) are skipped. A resumed attempt replaces the
    history after its checkpoint; repeated level lines keep their last copy. With
    ``history=False`` only the last epoch line is parsed (what a table of results needs).
    """
    record: Record | None = None
    levels: dict[Any, dict[str, Any]] = {}
    last_epoch: bytes | str | None = None
    for raw in lines:
        if not history and record is not None and (
                raw.startswith(_EPOCH_PREFIX.encode()) if isinstance(raw, bytes)
                else raw.startswith(_EPOCH_PREFIX)):
            last_epoch = raw
            continue
        line = _parse(raw)
        if line is None:
            continue
        event = line.get("event")
        if event == "start":
            if record is None:
                record = Record(start=line)
            else:
                record.attempts += 1
                record.end = None
                record.history = record.history[:(line.get("resumed") or {}).get("history", 0)]
        elif record is None:
            continue
        elif event == "epoch":
            record.history.append({k: v for k, v in line.items() if k not in ("event", "time")})
        elif event == "level":
            levels[line.get("level")] = {k: v for k, v in line.items() if k not in ("event", "time")}
        elif event == "end":
            record.end = line
    if record is not None and last_epoch is not None:
        line = _parse(last_epoch)
        if line is not None:
            record.history = [{k: v for k, v in line.items() if k not in ("event", "time")}]
    if record is not None:
        ended = (record.end or {}).get("levels")
        record.levels = list(ended) if ended is not None else [
            levels[k] for k in sorted(levels, key=lambda k: (k is None, k))]
    return record


def _parse(raw: bytes | str) -> dict[str, Any] | None:
    try:
        line = json.loads(raw)
    except ValueError:
        return None
    return line if isinstance(line, dict) else None


def read_record(path: str | Path, history: bool = True) -> Record | None:
    """The record in ``path``; None when the file is not a record (no ``start`` line first).

    ``history=False`` reads the last epoch line only (see :func:`parse_record`).
    """
    path = Path(path)
    with path.open("rb") as f:
        first = f.readline()
        if not is_record_line(first):
            return None
        return parse_record([first, *f], history=history)


def is_record_line(first: bytes | str) -> bool:
    """Whether ``first`` is a record's first line (a ``start`` line with the record version)."""
    line = _parse(first)
    return line is not None and line.get("event") == "start" and "record" in line


def last_status(text: str) -> str:
    """The status of a record's text without parsing it all: ``running`` unless its last
    ``start`` or ``end`` line is an ``end``."""
    for raw in reversed(text.splitlines()):
        line = _parse(raw)
        if line is None:
            continue
        if line.get("event") == "end":
            return line.get("status", "running")
        if line.get("event") == "start":
            return "running"
    return "running"
