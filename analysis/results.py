"""Result records -> one tidy pandas DataFrame (docs/results.md, "The tidy table").

:func:`load` reads records, the one result file every experiment writes (``drive.record``): a
sweep's experiment folder (each trial's ``metrics.jsonl``, found recursively), a record written
by ``drive-sweep prune --out`` and folders of them. It reads nothing else (none of Ray Tune's
own files), needs no running Ray, and reads sweeps that are still running or partly failed:
every trial that started is listed, with its real method, sparsity and seed.

One row per trial and reported sparsity level. An IMP trial gives one row per level it
finished. ``complete`` marks rows whose numbers are final (a finished trial, or an IMP level
that finished its training); only those are aggregated. A trial that did not finish
(``errored``, ``stopped``, ``interrupted``, ``running``) keeps one extra row with NaN
accuracies that shows where it stopped, with its ``reason``.

``layer_density`` is JSON text (``{"layer": density, ...}`` in model order) so that it survives
CSV and parquet; :func:`layer_frame` explodes it into a long frame.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis import methods
from analysis.configs import resolve_config
from drive.record import read_record
from drive.schema import IDENTITY, PROGRESS, RECORD_FILE

#: The tidy columns before the flattened config (``cfg.*``), in order.
COLUMNS = (
    "experiment", "trial_id", "status", "reason", "complete", "method", "method_label", "plan",
    "model", "dataset", "seed", "sparsity", "density", "params_remaining", "params_prunable",
    "warmup_epochs", "prune_iterations", "level", "epochs", "epochs_done", "test_acc",
    "best_test_acc", "val_acc", "prune_time_s", "train_time_s", "total_time_s", "prune_samples",
    "collapsed_layers", "layer_density", "flops", "flops_dense", "flops_fraction", "macs",
    "bytes_dense", "bytes_csr", "bytes_bitmap", "layer_flops", "layer_flops_dense", "selection",
    "method_info", "path",
)
INT_COLUMNS = ("seed", "params_remaining", "params_prunable", "warmup_epochs", "prune_iterations",
               "level", "epochs", "epochs_done", "prune_samples", "collapsed_layers", "flops",
               "flops_dense", "macs", "bytes_dense", "bytes_csr", "bytes_bitmap")
FLOAT_COLUMNS = ("sparsity", "density", "test_acc", "best_test_acc", "val_acc", "prune_time_s",
                 "train_time_s", "total_time_s", "flops_fraction")
#: Per-layer columns kept as JSON text (``{"layer": value, ...}`` in model order).
LAYER_COLUMNS = ("layer_density", "layer_flops", "layer_flops_dense")
CFG_PREFIX = "cfg."
SPARSITY_DECIMALS = 6
#: Suffixes of files in a folder that may hold a record (a sweep trial's is metrics.jsonl).
RECORD_SUFFIXES = (".jsonl", ".json")


class ResultsError(ValueError):
    """A path holds no readable results; ``str()`` is one line naming it."""


class ResultsWarning(UserWarning):
    """A trial's record that cannot be read (empty, cut short, malformed): left out, one line."""


# ---- one experiment's metrics -> rows -----------------------------------------------------------


def rows_from_metrics(metrics: Mapping[str, Any], *, config: Mapping[str, Any] | None = None,
                      **extra: Any) -> list[dict[str, Any]]:
    """Tidy rows of one experiment's metrics (``drive.experiment.run``'s dict, or a record's
    ``Record.metrics()``): its finished IMP levels, its headline, or where it stopped.

    ``extra`` (e.g. ``experiment``, ``trial_id``, ``path``) is added to every row. ``config``
    (nested or dotted) is used when ``metrics`` carries none.
    """
    methods.learn([(metrics.get("method"), metrics.get("method_info"))])
    cfg = resolve_config(metrics.get("config") or config or {})
    status = metrics.get("status") or "running"
    base = {**extra, "status": status, "reason": metrics.get("reason"),
            "selection": _selection_text(metrics.get("selection"))}
    levels = list(metrics.get("levels") or [])
    rows = [_row({**metrics, **lv, "prune_iterations": lv.get("level")}, cfg, base, complete=True)
            for lv in levels]
    if status == "finished":
        if not rows:
            rows.append(_row(metrics, cfg, base, complete=True))
    elif "test_acc" in metrics:  # diverged: the numbers it reported, never aggregated
        rows.append(_row(metrics, cfg, base, complete=False))
    else:  # ended without final metrics: where it stopped, without accuracies
        stopped = {k: metrics[k] for k in IDENTITY if metrics.get(k) is not None}
        stopped.update({k: metrics[k] for k in PROGRESS if metrics.get(k) is not None})
        stopped["method_info"] = metrics.get("method_info")
        rows.append(_row(stopped, cfg, base, complete=False))
    return rows


def _selection_text(selection: Mapping[str, Any] | None) -> str | None:
    """``optuna+asha on val_acc`` (what ranked the trials), None for a grid."""
    if not selection:
        return None
    return f"{'+'.join(selection.get('by') or [])} on {selection.get('metric')}"


def _row(src: Mapping[str, Any], cfg: Mapping[str, Any], base: Mapping[str, Any],
         complete: bool) -> dict[str, Any]:
    def pick(key: str, cfg_key: str | None = None) -> Any:
        value = src.get(key)
        return cfg.get(cfg_key or key) if value is None else value

    method = pick("method")
    known = methods.info(method)
    plan = known.plan
    iterations = pick("prune_iterations")
    if iterations is None and plan not in ("imp", "dense"):
        iterations = known.iterations
    layers = src.get("layer_density")
    collapsed = src.get("collapsed_layers")
    row = {
        **base, "complete": complete, "method": method, "method_label": known.label,
        "plan": plan, "model": pick("model"),
        "dataset": pick("dataset"), "seed": pick("seed"), "sparsity": _round(pick("sparsity")),
        "density": src.get("density"), "params_remaining": src.get("params_remaining"),
        "params_prunable": src.get("params_prunable"),
        # warm-up means something only after a warm-up (DRIVE): others get 0, no spurious variants
        "warmup_epochs": pick("warmup_epochs") if plan == "after_warmup" else 0,
        "prune_iterations": iterations if plan != "dense" else 0,
        "level": src.get("level") if plan == "imp" else None,
        "epochs": pick("epochs", "train.epochs"), "epochs_done": src.get("epochs_done"),
        **{k: src.get(k) for k in ("test_acc", "best_test_acc", "val_acc", "prune_time_s",
                                   "train_time_s", "total_time_s", "prune_samples")},
        "collapsed_layers": None if collapsed is None else len(collapsed),
        "layer_density": None if not layers else json.dumps(layers),
        **{k: src.get(k) for k in ("flops", "flops_dense", "flops_fraction", "macs", "bytes_dense",
                                   "bytes_csr", "bytes_bitmap")},
        **{k: json.dumps(src[k]) if src.get(k) else None for k in ("layer_flops", "layer_flops_dense")},
        "method_info": _info_text(src.get("method_info")),
    }
    row.update({CFG_PREFIX + k: json.dumps(v) if isinstance(v, list) else v
                for k, v in cfg.items()})
    return row


def _info_text(raw: Any) -> str | None:
    """A record's ``method_info`` as JSON text (it survives CSV and parquet)."""
    if raw is None or isinstance(raw, str):
        return raw
    return json.dumps(raw, sort_keys=True)


def _round(x: Any) -> float | None:
    return None if x is None else round(float(x), SPARSITY_DECIMALS)


# ---- files ----------------------------------------------------------------------------------


def _read_record(path: Path, experiment: str, trial_id: str,
                 expected: bool = False) -> list[dict[str, Any]] | None:
    """Rows of one record file, or None when the file is not a record.

    ``expected``: the file is a trial's record by its name (``metrics.jsonl``), so one that
    cannot be read is left out with a :class:`ResultsWarning` rather than silently.
    """
    try:
        record = read_record(path, history=False)  # a table needs the last epoch only
        if record is None:
            if expected:
                _warn(f"{path}: not a record (empty, cut short before its start line, or "
                      "another file); its trial is left out")
            return None
        return rows_from_metrics(record.metrics(), experiment=experiment,
                                 trial_id=record.start.get("trial_id") or trial_id, path=str(path))
    except OSError as e:
        if expected:
            _warn(f"{path}: cannot be read ({e.strerror or e}); its trial is left out")
        return None
    except (TypeError, ValueError, KeyError, AttributeError) as e:  # a line of the wrong shape
        _warn(f"{path}: malformed record ({type(e).__name__}: {e}); its trial is left out")
        return None


def _warn(message: str) -> None:
    warnings.warn(message, ResultsWarning, stacklevel=3)


def _read_path(root: Path) -> list[dict[str, Any]]:
    if root.is_file():
        rows = _read_record(root, root.parent.name, root.stem)
        if rows is None:
            raise ResultsError(f"{root}: not a result record (drive-sweep prune --out, or a "
                               f"sweep trial's {RECORD_FILE})")
        return rows
    rows: list[dict[str, Any]] = []
    for path in sorted(root.rglob("*")):
        if path.suffix not in RECORD_SUFFIXES or not path.is_file():
            continue
        if path.name == RECORD_FILE:  # a sweep trial: <experiment>/<trial>/metrics.jsonl
            folder = path.parent
            rows += _read_record(path, folder.parent.name if folder != root else root.parent.name,
                                 folder.name, expected=True) or []
        else:
            rows += _read_record(path, path.parent.name, path.stem) or []
    return rows


def load(paths: str | Path | Iterable[str | Path]) -> pd.DataFrame:
    """Read experiment folders, record files or folders of them into one tidy frame.

    Raises :class:`ResultsError` when a path does not exist. A folder without results gives an
    empty frame (with the tidy columns).
    """
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    rows: list[dict[str, Any]] = []
    for p in map(Path, paths):
        if not p.exists():
            raise ResultsError(f"{p}: no such file or folder")
        rows += _read_path(p)
    return tidy(pd.DataFrame.from_records(rows))


#: The file name under which a measured inference speed (``drive-sweep bench-model --out``) is
#: shown by the report when it lies in an experiment folder.
MEASUREMENT_FILE = "inference.json"


def load_measurements(paths: str | Path | Iterable[str | Path]) -> pd.DataFrame:
    """Every ``inference.json`` under ``paths``: one row per measurement and batch size
    (method, sparsity, source, device, batch, dense and sparse ms, sparse/dense, FLOPs left)."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    rows = []
    for root in map(Path, paths):
        files = [root] if root.is_file() and root.name == MEASUREMENT_FILE else sorted(root.rglob(MEASUREMENT_FILE)) if root.is_dir() else []
        for path in files:
            try:
                m = json.loads(path.read_text())
                for t in m["timings"]:
                    rows.append({"method": m["method"], "sparsity": m["sparsity"], "source": m["source"],
                                 "device": m["device"], "batch": t["batch"],
                                 "dense_ms": 1e3 * t["dense_s"], "sparse_ms": 1e3 * t["sparse_s"],
                                 "ratio": t["ratio"], "flops_left": m["theory"]["flops_fraction"],
                                 "path": str(path)})
            except (OSError, ValueError, KeyError, TypeError) as e:
                _warn(f"{path}: not a measurement ({type(e).__name__}); left out")
    return pd.DataFrame(rows, columns=["method", "sparsity", "source", "device", "batch", "dense_ms",
                                       "sparse_ms", "ratio", "flops_left", "path"])


def method_rank(names: pd.Series) -> pd.Series:
    """The position of every element's method in tables and figures (built-ins in their
    order, the others after them by name)."""
    order = methods.order(names.dropna())
    return names.map(lambda m: order.index(m) if m in order else len(order))


def tidy(df: pd.DataFrame) -> pd.DataFrame:
    """Columns in order, with their dtypes, rows sorted (also restores a frame read from CSV)."""
    df = df.copy()
    for col in COLUMNS:
        if col not in df:
            df[col] = None
    cfg_cols = sorted(c for c in df.columns if c.startswith(CFG_PREFIX))
    df = df[list(COLUMNS) + cfg_cols]
    for col in INT_COLUMNS:
        df[col] = pd.to_numeric(df[col], errors="coerce").round().astype("Int64")
    for col in FLOAT_COLUMNS:
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
    df["sparsity"] = df["sparsity"].round(SPARSITY_DECIMALS)
    df["complete"] = df["complete"].fillna(False).astype(bool)
    for col in ("experiment", "trial_id", "status", "reason", "method", "method_label", "plan",
                "model", "dataset", *LAYER_COLUMNS, "selection", "method_info", "path"):
        df[col] = df[col].astype("string")
    for col in cfg_cols:
        df[col] = _one_type(df[col])
    methods.learn(zip(df["method"], df["method_info"]))
    _fill_method_columns(df)
    df = df.assign(_rank=method_rank(df["method"]))
    df = df.sort_values(["experiment", "model", "dataset", "_rank", "method", "sparsity", "seed",
                         "trial_id"], na_position="last", kind="stable")
    return df.drop(columns="_rank").reset_index(drop=True)


def _fill_method_columns(df: pd.DataFrame) -> None:
    """``method_label`` and ``plan`` of rows that lack them (a frame built by hand)."""
    for col, attr in (("method_label", "label"), ("plan", "plan")):
        missing = df[col].isna() & df["method"].notna()
        if missing.any():
            df.loc[missing, col] = [getattr(methods.info(m), attr) for m in df.loc[missing, "method"]]


def _one_type(values: pd.Series) -> pd.Series:
    """A config column with one type (parquet needs it) and the same dtype after a CSV trip."""
    present = [v for v in values if not _is_null(v)]
    kinds = {type(v) for v in present}
    if not present:
        return pd.Series([None] * len(values), index=values.index, dtype=object)
    if kinds <= {int, float} or all(hasattr(v, "dtype") and v.dtype.kind in "iuf" for v in present):
        return pd.to_numeric(values, errors="coerce")
    if kinds == {bool} or all(hasattr(v, "dtype") and v.dtype.kind == "b" for v in present):
        return values.astype("boolean")
    return values.map(lambda v: None if _is_null(v) else str(v)).astype("string")


def _is_null(v: Any) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))


# ---- export and helpers ---------------------------------------------------------------------


def save(df: pd.DataFrame, out: str | Path) -> tuple[Path, Path]:
    """Write ``df`` as CSV and parquet: ``out`` is an existing folder (``results.*`` in it) or a
    file stem (``.csv``/``.parquet`` suffixes are replaced)."""
    out = Path(out)
    stem = (out / "results" if out.is_dir()
            else out.with_suffix("") if out.suffix in (".csv", ".parquet") else out)
    stem.parent.mkdir(parents=True, exist_ok=True)
    csv, parquet = stem.with_suffix(".csv"), stem.with_suffix(".parquet")
    df.to_csv(csv, index=False)
    df.to_parquet(parquet, index=False)
    return csv, parquet


def read_saved(path: str | Path) -> pd.DataFrame:
    """Read a frame written by :func:`save` (CSV or parquet) back with the tidy dtypes."""
    path = Path(path)
    df = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    return tidy(df)


def layer_frame(df: pd.DataFrame, extra: Sequence[str] = ()) -> pd.DataFrame:
    """One row per (tidy row, layer): the tidy row's keys (and the ``extra`` columns) plus
    ``layer``, ``layer_index`` (model order), ``layer_density``, and the layer's FLOPs left and
    dense (``layer_flops``, ``layer_flops_dense``; NaN where a record has none)."""
    keys = ["experiment", "trial_id", "status", "complete", "method", "method_label", "plan",
            "model", "dataset", "seed", "sparsity", "level", "warmup_epochs", "prune_iterations",
            "epochs", *extra]
    parsed = [json.loads(t) if isinstance(t, str) else {} for t in df["layer_density"].tolist()]
    out = df[keys].iloc[np.repeat(np.arange(len(df)), [len(p) for p in parsed])]
    out = out.reset_index(drop=True)
    out["layer"] = pd.array([n for p in parsed for n in p], dtype="string")
    out["layer_index"] = np.array([i for p in parsed for i in range(len(p))], dtype=int)
    out["layer_density"] = np.array([v for p in parsed for v in p.values()], dtype=float)
    for col in ("layer_flops", "layer_flops_dense"):
        per = [json.loads(t) if isinstance(t, str) else {} for t in df[col].tolist()]
        out[col] = np.array([f.get(n, np.nan) for p, f in zip(parsed, per) for n in p], dtype=float)
    return out
