"""The GPU check's output, written incrementally: ``gpu_check.json`` (every figure),
``gpu_check.md`` (tables) and ``gpu_check.log`` (every line printed, time-stamped), rewritten
after every change, so that a run killed from outside keeps what it measured so far; and each
step's own result file (:class:`Partial`), rewritten after every figure. Standard library only."""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import shlex
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.gpu_check.plan import STEPS, sizes

TOOL = "benchmarks/gpu_check"


def clean(value: Any) -> Any:
    """``value`` made strict-JSON-safe: non-finite floats as strings, tuples as lists, the rest
    that JSON cannot hold as ``str``."""
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)


def replace_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a reader never sees half a file)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_json(path: Path, data: Any) -> None:
    """``data`` as strict JSON (see :func:`clean`), written atomically."""
    replace_text(path, json.dumps(clean(data), indent=1, allow_nan=False))


def fmt(v: Any) -> str:
    """A table cell: large floats with thousands separators, others to 4 significant digits."""
    if isinstance(v, bool) or v is None:
        return "" if v is None else str(v)
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 1e4 else f"{v:.4g}"
    return str(v)


def now_utc() -> str:
    """The current time, ISO 8601 in UTC, to the second."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


class Clock:
    """Timestamps relative to the start: ``[+  12.3s 14:02:07]``."""

    def __init__(self, start: float | None = None):
        self.start = time.time() if start is None else start

    def stamp(self) -> str:
        return f"[+{time.time() - self.start:7.1f}s {datetime.datetime.now().strftime('%H:%M:%S')}]"


class Report:
    """The check's state, written as JSON, Markdown and a log after every change."""

    def __init__(self, out: Path, opts: argparse.Namespace, argv: list[str], budget: float):
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        self.clock = Clock()
        self.log_file = open(out / "gpu_check.log", "a", encoding="utf-8", buffering=1)
        self.data: dict[str, Any] = {
            "tool": TOOL, "mode": "cpu" if opts.cpu else "gpu",
            "command": "python3 -m benchmarks.gpu_check " + " ".join(shlex.quote(a) for a in argv),
            "started": now_utc(), "budget_s": budget, "finished": False, "versions": {}, "sizes": sizes(opts),
            "steps": [{"name": s.name, "what": s.what, "status": "pending", "reason": None,
                       "seconds": None, "limit_s": None, "result": {}} for s in STEPS]}
        self.lock = threading.RLock()  # also taken by the signal handler
        self.current: subprocess.Popen | None = None  # the running step's process
        self.data["out"] = str(out)

    def step(self, name: str) -> dict[str, Any]:
        """The entry of step ``name`` in the report."""
        return next(s for s in self.data["steps"] if s["name"] == name)

    def say(self, message: str) -> None:
        """Print ``message`` and append it to the log, each line time-stamped."""
        with self.lock:
            for line in message.splitlines() or [""]:
                text = f"{self.clock.stamp()} {line}"
                print(text, flush=True)
                self.log_file.write(text + "\n")

    def save(self) -> None:
        """Rewrite gpu_check.json and gpu_check.md."""
        self.data["updated"] = now_utc()
        self.data["elapsed_s"] = round(time.time() - self.clock.start, 1)
        write_json(self.out / "gpu_check.json", self.data)
        replace_text(self.out / "gpu_check.md", markdown(self.data))


class Partial:
    """A step's result, rewritten to its file after every update (kept if the step is killed)."""

    def __init__(self, path: Path):
        self.path, self.data = path, {}

    def update(self, **items: Any) -> None:
        """Set result fields and rewrite the file."""
        self.data.update(items)
        write_json(self.path, self.data)

    def add(self, key: str, row: dict[str, Any]) -> None:
        """Append ``row`` to the table ``key`` and rewrite the file."""
        self.data.setdefault(key, []).append(row)
        write_json(self.path, self.data)


def summary(data: dict[str, Any]) -> str:
    """The closing lines: every step's status, seconds, reason and headline."""
    lines = [f"== gpu_check summary ({data['mode']}, {data.get('elapsed_s', 0):.0f} s of {data['budget_s']:.0f} s) ==",
             data.get("versions", {}).get("line", "")]
    for s in data["steps"]:
        head = s["result"].get("headline") if s["result"] else None
        extra = f"  {head}" if head else ""
        why = f"  ({s['reason']})" if s["reason"] else ""
        secs = f"{s['seconds']:6.1f}s" if s["seconds"] is not None else "       "
        lines.append(f"{s['name']:20s} {s['status']:9s} {secs}{why}{extra}")
    lines.append(f"results: {data.get('out', '')}")
    return "\n".join(line for line in lines if line is not None)


def markdown(data: dict[str, Any]) -> str:
    """The report as Markdown: the steps, then each step's tables."""
    v = data.get("versions", {})
    md = [f"# gpu_check ({data['mode']}), {data['started']}", ""]
    if v.get("line"):
        md += [v["line"], ""]
    md += [f"Command: `{data['command']}`; budget {data['budget_s']:.0f} s, "
           f"{data.get('elapsed_s', 0):.0f} s elapsed{'' if data['finished'] else ' (still running or killed)'}.", "",
           "| step | status | seconds | limit | headline / reason |", "| --- | --- | --- | --- | --- |"]
    for s in data["steps"]:
        text = (s["result"] or {}).get("headline") or ""
        if s["reason"]:
            text = f"{text} ({s['reason']})" if text else s["reason"]
        md.append(f"| {s['name']} | {s['status']} | {fmt(s['seconds'])} | {fmt(s['limit_s'])} | "
                  f"{text.replace('|', '/')} |")
    for s in data["steps"]:
        md += _step_section(s)
    return "\n".join(md) + "\n"


def _step_section(s: dict[str, Any]) -> list[str]:
    """One step's Markdown: its scalar results as a list, each list of rows as a table."""
    result = s["result"] or {}
    tables = [(k, v) for k, v in result.items() if isinstance(v, list) and v and all(isinstance(r, dict) for r in v)]
    scalars = {k: (v if not isinstance(v, dict) else json.dumps(clean(v))[:400]) for k, v in result.items()
               if k != "headline" and not isinstance(v, list)}
    if not tables and not scalars:
        return []
    md = ["", f"## {s['name']}: {s['status']}", "", s["what"], ""]
    for k, val in scalars.items():
        md.append(f"- {k}: {fmt(val)}")
    for key, rows in tables:
        columns: list[str] = []
        for r in rows:
            columns += [c for c, x in r.items() if c not in columns and not isinstance(x, (list, dict))]
        if not columns:
            continue
        md += ["", f"{key}:", "", "| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
        for r in rows:
            md.append("| " + " | ".join(fmt(r.get(c)).replace("|", "/") for c in columns) + " |")
    return md
