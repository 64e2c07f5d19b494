"""Aggregation over seeds and speed-up against IMP.

Only ``complete`` rows count (finished trials and the finished levels of IMP trials). Rows are
first averaged per seed (an IMP level reached by several IMP trials of the same seed counts
once), then aggregated over seeds: mean, std (ddof=1; NaN for one seed), min, max, count.

Speed-up vs IMP = mean IMP prune time / mean method prune time at the same model, data set and
sparsity (and the same for ``prune_samples``). A method that spent no sample passes (magnitude,
random) has an infinite speed-up in samples: it is reported as ``inf`` (shown as ∞), because
its cost really is nothing, not unknown. 0/0 and a missing IMP level give NaN (shown as —).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from analysis import methods
from analysis.configs import list_text, method_defaults
from analysis.results import CFG_PREFIX, method_rank

KEYS = ["model", "dataset", "method"]
#: Columns that tell variants of a method apart (besides its swept config fields, its own
#: arguments among them: :func:`swept_columns`).
VARIANTS = ["warmup_epochs", "prune_iterations", "epochs"]
METRICS = ["test_acc", "best_test_acc", "density", "flops_fraction", "flops", "bytes_csr",
           "bytes_bitmap", "prune_time_s", "train_time_s",
           "total_time_s", "prune_samples"]
STATS = ["mean", "std", "min", "max", "count"]
#: Config fields that never make a variant: covered by the tidy columns, or bookkeeping.
_NOT_SWEPT = {"method", "model", "dataset", "sparsity", "seed", "warmup_epochs", "prune_iterations",
              "train.epochs", "device", "data.root", "data.download", "data.verify",
              "data.num_workers", "imp.branches", "train.eval_batch_size", "train.eval_every"}
SHORT_NAMES = {"warmup_epochs": "warm-up", "prune_iterations": "T", "epochs": "epochs"}


def short_name(column: str) -> str:
    """How a label names a variant column: ``warm-up``, ``T``, a method argument's title
    (DRIVE's ``w``), or a config field's last part."""
    if column in SHORT_NAMES:
        return SHORT_NAMES[column]
    field = column.removeprefix(CFG_PREFIX)
    return methods.argument_label(field) or field.rsplit(".", 1)[-1]


def of_plan(names: pd.Series, *plans: str) -> pd.Series:
    """Whether each element's method has one of ``plans`` (``dense``, ``imp``, ...)."""
    return names.map(methods.plan).isin(plans)


def completed(df: pd.DataFrame) -> pd.DataFrame:
    """The rows whose numbers are final."""
    return df[df["complete"].astype(bool)]


def swept_columns(df: pd.DataFrame) -> list[str]:
    """``cfg.*`` columns that take several values within one method's complete rows
    (a swept hyperparameter such as ``cfg.train.lr``): results differing in them are not
    averaged together."""
    done = completed(df)
    cols = [c for c in df.columns
            if c.startswith(CFG_PREFIX) and c[len(CFG_PREFIX):] not in _NOT_SWEPT]
    if done.empty or not cols:
        return []
    distinct = done.groupby("method")[cols].nunique(dropna=False)
    return [c for c in cols if (distinct[c] > 1).any()]


def variant_columns(df: pd.DataFrame) -> list[str]:
    """:data:`VARIANTS` plus the swept config columns of ``df``."""
    return VARIANTS + swept_columns(df)


def aggregate(df: pd.DataFrame, metrics: Sequence[str] = METRICS,
              by: Sequence[str] | None = None) -> pd.DataFrame:
    """Aggregate complete rows over seeds.

    ``by`` defaults to model, data set, method, sparsity and :func:`variant_columns`. The result
    has one row per group, the ``by`` columns, ``<metric>_<stat>`` for every metric and stat,
    ``seeds`` (distinct seeds), ``trials`` (distinct trials) and a ``label`` naming the method
    and the variant fields that tell its rows apart (e.g. ``drive (warm-up 1, T 10)``).
    """
    by = list(by) if by is not None else KEYS + ["sparsity"] + variant_columns(df)
    metrics = list(metrics)
    done = completed(df)
    columns = by + [f"{m}_{s}" for m in metrics for s in STATS] + ["seeds", "trials", "label"]
    if done.empty:
        return pd.DataFrame(columns=columns)
    done = done.assign(**{m: pd.to_numeric(done[m], errors="coerce").astype("float64")
                          for m in metrics})
    per_seed = done.groupby(by + ["seed"], dropna=False, sort=False)[metrics].mean()
    grouped = per_seed.groupby(level=list(range(len(by))), dropna=False, sort=False)
    agg = grouped.agg(STATS)
    agg.columns = [f"{m}_{s}" for m, s in agg.columns]
    agg["seeds"] = grouped.size()
    agg["trials"] = done.groupby(by, dropna=False, sort=False)["trial_id"].nunique()
    if "chosen" in done:  # rows picked as a method's main variant (report --variant)
        agg["chosen"] = done.groupby(by, dropna=False, sort=False)["chosen"].any()
        columns.append("chosen")
    agg = agg.reset_index()
    agg["label"] = labels(agg)
    agg = agg.assign(_rank=method_rank(agg["method"]) if "method" in agg else 0)
    order = [c for c in ("model", "dataset", "_rank", "label", "sparsity") if c in agg]
    agg = agg.sort_values(order, kind="stable").drop(columns="_rank").reset_index(drop=True)
    return agg[columns]


def varying_columns(agg: pd.DataFrame) -> dict[str, list[str]]:
    """Per method, the variant columns that differ between its rows at one model, data set and
    sparsity: the fields its labels name."""
    variant = [c for c in agg.columns if c in VARIANTS or c.startswith(CFG_PREFIX)]
    point = [c for c in ("model", "dataset", "sparsity") if c in agg]
    return {method: [c for c in variant
                     if (rows.groupby(point, dropna=False)[c].nunique(dropna=False) > 1).any()]
            for method, rows in agg.groupby("method", sort=False)}


def labels(agg: pd.DataFrame) -> pd.Series:
    """Method name plus the variant fields that differ between a method's rows at one point."""
    if "method" not in agg:
        return pd.Series("all", index=agg.index)
    out = agg["method"].astype(str).map(methods.display_name)
    for method, varying in varying_columns(agg).items():
        if varying:
            rows = agg[agg["method"] == method]
            parts = rows[varying].apply(
                lambda r: ", ".join(f"{short_name(c)} {_text(r[c])}" for c in varying), axis=1)
            out.loc[rows.index] = f"{methods.display_name(method)} (" + parts + ")"
    return out


def attempted_levels(df: pd.DataFrame, agg: pd.DataFrame) -> pd.DataFrame:
    """Every row of ``df`` matched to its label in ``agg``: model, dataset, method, label,
    sparsity, status, complete. Incomplete rows say where a level was attempted, so a line
    must not bridge it and a table cell can say why it is empty."""
    keys = ["model", "dataset", "method"]
    cols = keys + ["label", "sparsity", "status", "complete"]
    varying = varying_columns(agg) if not agg.empty else {}
    parts = [df.loc[~df["method"].isin(list(varying))].assign(label=lambda f: f["method"])[cols]]
    for method, columns in varying.items():  # a method without results keeps its name
        labelled = agg.loc[agg["method"] == method, keys + columns + ["label"]].drop_duplicates()
        rows = df.loc[df["method"] == method, keys + columns + cols[4:]]
        parts.append(rows.merge(labelled, on=keys + columns)[cols])
    return pd.concat(parts).dropna(subset=["sparsity"]).drop_duplicates()


def headline_levels(table: pd.DataFrame) -> list[float]:
    """The sparsity levels a sweep aimed at: those of methods other than IMP and dense (IMP
    passes through many in-between levels on its way); all levels when there are no others."""
    others = table.loc[~of_plan(table["method"], "imp", "dense"), "sparsity"].dropna()
    return sorted(set(others if len(others) else table["sparsity"].dropna()))


def primary_at(agg: pd.DataFrame, sparsity: float) -> pd.DataFrame:
    """The rows of ``agg`` at one sparsity, one label per method: the method's primary label
    (over all levels) when it has that level, else its most complete label there."""
    here = agg[agg["sparsity"] == sparsity]
    chosen = primary_labels(agg)
    chosen = chosen[chosen["sparsity"] == sparsity]
    rest = here[~here["method"].isin(chosen["method"])]
    return pd.concat([chosen, primary_labels(rest)]) if not rest.empty else chosen


def default_sparsity(agg: pd.DataFrame) -> float | None:
    """The sparsity for one-level figures: the non-zero level with the most method variants
    (ties: the highest), or None without pruned results."""
    pruned = agg[(agg["sparsity"] > 0) & ~of_plan(agg["method"], "dense")]
    if pruned.empty:
        return None
    count = pruned.groupby("sparsity")["label"].nunique().reset_index()
    return float(count.sort_values(["label", "sparsity"]).iloc[-1]["sparsity"])


def _text(v: object) -> str:
    if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
        return "—"
    if isinstance(v, str) and v.startswith("["):  # a list field, as JSON text
        return list_text(v) or v
    return f"{v:g}" if isinstance(v, float) else str(v)


def primary_labels(agg: pd.DataFrame) -> pd.DataFrame:
    """Per model, data set and method, the label drawn when one line per method is wanted: the
    variant picked with ``report --variant`` (a ``chosen`` column), else the one whose varying
    settings match the method's defaults most (so an ablation folder mixed into a report never
    changes a method's headline), then the one covering the most sparsity levels, then the most
    seeds, then the longest warm-up (DRIVE's premise: train before ranking), then by name. Never
    chosen by accuracy: that would select on the test set."""
    if agg.empty:
        return agg
    keys = ["model", "dataset", "method", "label"]
    cover = agg.groupby(keys, dropna=False).agg(
        levels=("sparsity", "nunique"), seeds=("seeds", "sum"),
        warmup=("warmup_epochs", "max")).reset_index()
    first = agg.drop_duplicates(keys).set_index(keys)
    varying = varying_columns(agg)
    cover["defaults"] = [_default_matches(first.loc[tuple(k)], varying.get(k[2], []), k[2])
                         for k in cover[keys].itertuples(index=False)]
    cover["chosen"] = (agg.groupby(keys, dropna=False)["chosen"].any().values
                       if "chosen" in agg else False)
    cover = cover.sort_values(["chosen", "defaults", "levels", "seeds", "warmup", "label"],
                              ascending=[False, False, False, False, False, True])
    best = cover.drop_duplicates(["model", "dataset", "method"])[["model", "dataset", "label"]]
    return agg.merge(best, on=["model", "dataset", "label"])


def _default_matches(row: pd.Series, columns: Sequence[str], method: str) -> int:
    """How many of a variant's varying settings equal the method's defaults."""
    defaults = method_defaults(method)
    return sum(1 for c in columns if c in defaults and _same(row[c], defaults[c]))


def _same(value: object, default: object) -> bool:
    if isinstance(default, (int, float)) and not isinstance(default, bool):
        try:
            return float(value) == float(default)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return False
    if isinstance(value, str) and isinstance(default, str) and default.startswith("["):
        return list_text(value) == list_text(default)  # lists as JSON text: [1, 1] == [1.0, 1.0]
    return str(value) == str(default)


def speedup(agg: pd.DataFrame) -> pd.DataFrame:
    """Speed-up of every pruning method over IMP (see the module docstring).

    Takes :func:`aggregate`'s output. Returns model, dataset, method, label, sparsity,
    ``prune_time_s``/``prune_samples`` (the method's means), ``imp_prune_time_s``/
    ``imp_prune_samples`` and ``speedup_time``/``speedup_samples``; the dense baseline (no
    pruning) is left out. With several IMP variants the primary one is the reference.
    """
    cols = ["model", "dataset", "method", "label", "sparsity", "prune_time_s", "prune_samples",
            "imp_prune_time_s", "imp_prune_samples", "speedup_time", "speedup_samples"]
    if agg.empty:
        return pd.DataFrame(columns=cols)
    imp = primary_labels(agg[of_plan(agg["method"], "imp")])
    imp = imp[["model", "dataset", "sparsity", "prune_time_s_mean", "prune_samples_mean"]].rename(
        columns={"prune_time_s_mean": "imp_prune_time_s",
                 "prune_samples_mean": "imp_prune_samples"})
    out = agg[~of_plan(agg["method"], "dense")].rename(
        columns={"prune_time_s_mean": "prune_time_s", "prune_samples_mean": "prune_samples"})
    out = out.merge(imp, on=["model", "dataset", "sparsity"], how="left")
    out["speedup_time"] = ratio(out["imp_prune_time_s"], out["prune_time_s"])
    out["speedup_samples"] = ratio(out["imp_prune_samples"], out["prune_samples"])
    return out[cols]


def ratio(num: pd.Series, den: pd.Series) -> pd.Series:
    """num / den with x/0 = inf for x > 0 and NaN for 0/0 or missing values."""
    num, den = num.astype("float64"), den.astype("float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        out = num / den
    return out.where(~((num == 0) & (den == 0)))
