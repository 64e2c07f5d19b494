"""``drive-sweep report``: experiment folders -> figures, ``report.md``, ``tables.tex`` and the
tidy ``results.csv``/``results.parquet``.

A figure the data cannot support (no IMP -> no speed-up; no DRIVE variants -> no heatmap) is
skipped with a note in ``report.md``. Missing methods and levels stay missing in every table.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from analysis import methods, plots
from analysis.aggregate import (
    aggregate,
    default_sparsity,
    headline_levels,
    primary_labels,
    speedup,
)
from analysis.configs import list_text
from analysis.plots.ablation import SCHEDULE, fixed_rows, held_columns, schedule_method
from analysis.results import ResultsError, ResultsWarning, load, load_measurements, save
from analysis.tables import (
    MISSING,
    count,
    failed_trials,
    mean_std,
    pct_header,
    storage,
    times,
    to_latex,
    to_markdown,
    wide,
)
from drive.schema import RECORD_FILE

STATUS_ORDER = ("finished", "diverged", "stopped", "errored", "interrupted", "running")


@dataclass
class FigureSpec:
    name: str
    title: str
    draw: Callable[[pd.DataFrame, float | None], Figure]


def _at(sparsity: float | None) -> float:
    if sparsity is None:
        raise plots.NoData("no pruned result to choose a sparsity from")
    return sparsity


FIGURES = [
    FigureSpec("accuracy_vs_sparsity", "Accuracy vs sparsity",
               lambda df, s: plots.accuracy_vs_sparsity(df)),
    FigureSpec("accuracy_vs_flops", "Accuracy vs FLOPs remaining (theory)",
               lambda df, s: plots.accuracy_vs_flops(df)),
    FigureSpec("time_vs_imp", "Pruning time vs IMP",
               lambda df, s: plots.cost_vs_imp(df, cost="prune_time_s")),
    FigureSpec("samples_vs_imp", "Pruning cost (sample passes) vs IMP",
               lambda df, s: plots.cost_vs_imp(df, cost="prune_samples")),
    FigureSpec("accuracy_vs_cost", "Accuracy vs pruning cost (Pareto view)",
               lambda df, s: plots.accuracy_vs_cost(df, _at(s))),
    FigureSpec("warmup_heatmap", "Warm-up epochs x pruning iterations (DRIVE)",
               lambda df, s: plots.warmup_heatmap(df, _at(s))),
    FigureSpec("method_arguments", "A method's arguments (DRIVE: its score terms)",
               lambda df, s: plots.method_arguments(df)),
    FigureSpec("layer_density", "Per-layer density (layer collapse)",
               lambda df, s: plots.layer_density(df, _at(s))),
]


def choose_variants(df: pd.DataFrame, choices: Iterable[str]) -> pd.DataFrame:
    """Mark the rows of each ``METHOD:FIELD=VALUE`` choice (``report --variant``) as their
    method's main variant (a ``chosen`` column); FIELD is a tidy column (``warmup_epochs``,
    ``prune_iterations``) or a config field (``train.lr``, ``drive.weights``; a list value as
    YAML, ``[1, 0, 1]``, or comma-separated, ``1,0,1``). Raises :class:`ResultsError` (one line)
    for a choice that names no rows."""
    df = df.assign(chosen=False)
    for choice in choices:
        method, _, setting = choice.partition(":")
        field, _, value = setting.partition("=")
        column = field if field in df else f"cfg.{field}"
        if not (method and field and value) or column not in df:
            raise ResultsError(f"--variant: {choice!r} must be METHOD:FIELD=VALUE with FIELD a "
                               "column of results.csv or a config field, e.g. drive:warmup_epochs=3")
        rows = (df["method"] == method) & (df[column].astype(str).map(_setting) == _setting(value))
        if column in df and pd.api.types.is_numeric_dtype(df[column]):
            try:
                rows = (df["method"] == method) & (df[column] == float(value))
            except ValueError:
                pass
        if not rows.any():
            raise ResultsError(f"--variant: no {method} trial has {field} = {value}")
        df.loc[rows, "chosen"] = True
    return df


def _setting(text: str) -> str:
    """A setting as comparable text: a list (JSON, YAML or comma-separated) as ``1,0,1``."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        return list_text(text.replace("'", '"')) or text
    return text


def write_report(paths: str | Path | Iterable[str | Path], out_dir: str | Path,
                 sparsity: float | None = None, frame: pd.DataFrame | None = None,
                 variants: Iterable[str] = (), never_started: int = 0,
                 unreadable: Iterable[str] = ()) -> Path:
    """Write the report of the experiment folders/metrics files ``paths`` into ``out_dir``.

    ``sparsity`` picks the level of the one-level figures (cost view, heatmap, layers); by
    default the level with the most methods. ``frame``: the tidy results of ``paths`` when
    already loaded (e.g. from object storage). ``variants``: ``METHOD:FIELD=VALUE`` choices of
    a method's main line (:func:`choose_variants`; by default the variant closest to the
    method's default settings). ``never_started``: trials the sweeps planned that have no
    record (an interrupted sweep), said in the summary. ``unreadable``: the warnings of trial
    records that could not be read when ``frame`` was loaded (listed in the report; when the
    report loads ``paths`` itself it collects them). Returns the path of ``report.md``. Raises
    :class:`~analysis.results.ResultsError` when no trial is found.
    """
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    unreadable = list(unreadable)
    if frame is None:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResultsWarning)
            df = load(paths)
        for w in caught:
            if issubclass(w.category, ResultsWarning):
                unreadable.append(str(w.message))
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    else:
        df = frame
    if df.empty:
        raise ResultsError(f"EXPERIMENT_DIR: no trial record (a sweep trial's {RECORD_FILE} or a "
                           f"prune --out record) in {', '.join(map(str, paths))}")
    variants = list(variants)
    if variants:
        df = choose_variants(df, variants)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save(df, out / "results")
    agg = aggregate(df)
    chosen = round(float(sparsity), 6) if sparsity is not None else default_sparsity(agg)

    md = [f"# Pruning report\n\nSources: {', '.join(f'`{p}`' for p in paths)}\n",
          _summary(df, chosen, never_started), *_selection_note(df), "## Figures\n"]
    for spec in FIGURES:
        try:
            fig = spec.draw(df, chosen)
        except plots.NoData as why:
            md.append(f"- *{spec.title}*: not drawn — {why}.\n")
            continue
        plots.save_figure(fig, out / "figures", spec.name)
        md.append(f"### {spec.title}\n\n![{spec.title}](figures/{spec.name}.png)\n"
                  f"([PDF](figures/{spec.name}.pdf))\n")

    tex = ["% Tables of the pruning report; needs \\usepackage{booktabs}.\n"]
    for title, label, tables in _tables(df, agg, chosen):
        md.append(f"## {title}\n")
        for (model, dataset), frame in tables.items():
            md.append(f"### {model} on {dataset}\n\n{to_markdown(frame)}")
            tex.append(to_latex(frame, f"{title}: {model} on {dataset}.",
                                f"tab:{label}:{model}:{dataset}"))
    measured = load_measurements(paths)
    if not measured.empty:
        md.append("## Measured inference speed (`drive-sweep bench-model`)\n")
        md.append("Forward pass of the pruned network, dense-masked against a real sparse execution "
                  "(CSR); sparse/dense < 1 means the sparse execution is faster. FLOPs left is the "
                  "theory; the time is what this machine measured.\n\n")
        shown = measured.drop(columns="path").assign(
            sparsity=measured["sparsity"].map(pct_header), dense_ms=measured["dense_ms"].map("{:.4g}".format),
            sparse_ms=measured["sparse_ms"].map("{:.4g}".format), ratio=measured["ratio"].map("{:.3g}".format),
            flops_left=measured["flops_left"].map(lambda f: f"{100 * f:.3g}%"))
        md.append(to_markdown(shown, index=False, numbers=False))
    failed = failed_trials(df)
    md.append("## Trials that did not finish (errored, diverged, stopped, interrupted, running)\n")
    md.append(to_markdown(failed, index=False, numbers=False) if not failed.empty
              else "None: every trial finished.\n")
    if not failed.empty:
        tex.append(to_latex(failed, "Trials that did not finish.", "tab:failed", index=False,
                            numbers=False))
    if unreadable:
        md.append("## Trial records that could not be read (left out of every table)\n")
        md.append("".join(f"- {message}\n" for message in unreadable))
    (out / "tables.tex").write_text("\n".join(tex))
    report = out / "report.md"
    report.write_text("\n".join(md))
    return report


def _selection_note(df: pd.DataFrame) -> list[str]:
    """A warning when search or a scheduler ranked trials by a test metric (opted in)."""
    chosen = sorted({s for s in df["selection"].dropna().astype(str) if " on test_" in s})
    if not chosen:
        return []
    return [f"**Selected on the test set.** Trials were ranked by {', '.join(chosen)} "
            "(`search.allow_test_selection: true`): the test accuracies below are optimistically "
            "biased, not held-out results.\n"]


def _summary(df: pd.DataFrame, chosen: float | None, never_started: int = 0) -> str:
    trials = df.drop_duplicates(["experiment", "trial_id"])
    by_status = trials["status"].value_counts()
    order = sorted(by_status.index, key=lambda s: (STATUS_ORDER.index(s) if s in STATUS_ORDER
                                                   else len(STATUS_ORDER), s))
    statuses = ", ".join(f"{by_status[s]} {s}" for s in order)
    level = MISSING if chosen is None else pct_header(chosen)
    if never_started:
        statuses += (f"; {never_started} more planned trial(s) never started: `drive-sweep resume` "
                     "runs them")
    return (f"{len(trials)} trials ({statuses}), {len(df)} rows "
            f"({int(df['complete'].sum())} with final results). Accuracy is the final top-1 test "
            f"accuracy in %, mean ± std over seeds with the number of seeds in parentheses; "
            f"'{MISSING}' marks a missing result (with the status of trials that did not "
            f"finish). One-level figures and tables are at sparsity {level}. Tidy data: "
            f"[results.csv](results.csv), [results.parquet](results.parquet); LaTeX: "
            f"[tables.tex](tables.tex).\n")


def _tables(df: pd.DataFrame, agg: pd.DataFrame, chosen: float | None
            ) -> list[tuple[str, str, dict[tuple[str, str], pd.DataFrame]]]:
    """(title, LaTeX label, per model/data set frames) of every table the data supports.

    The main tables show each method's primary variant at the sweep's headline levels (IMP's
    in-between levels are in results.csv and the figures); other variants get their own table.
    """
    primary = primary_labels(agg)
    main = primary[primary["sparsity"].isin(headline_levels(agg) + [0.0])]
    out = [("Final test accuracy (%) by method and sparsity", "accuracy",
            wide(main, mean_std("test_acc"), df, agg)),
           ("FLOPs remaining (% of a dense forward pass; theory, per sample)", "flops",
            wide(main, mean_std("flops_fraction", digits=1))),
           ("Weight storage (kB): CSR / bitmap of the kept weights, the rest dense", "storage",
            wide(main, storage)),
           ("Pruning time (s) by method and sparsity", "prune-time",
            wide(main, mean_std("prune_time_s", scale=1, digits=3))),
           ("Pruning cost (forward+backward sample passes, mean)", "prune-samples",
            wide(main, count("prune_samples_mean")))]
    fast = speedup(main)
    if fast["imp_prune_time_s"].notna().any():
        out += [("Speed-up over IMP in pruning time (IMP time / method time)", "speedup-time",
                 wide(fast, times("speedup_time"))),
                ("Speed-up over IMP in sample passes (∞: the method uses none)",
                 "speedup-samples", wide(fast, times("speedup_samples")))]
    others = agg[~agg["label"].isin(primary["label"])]
    if not others.empty:
        out.append(("Final test accuracy (%) of the other variants (ablations)", "variants",
                    wide(others, mean_std("test_acc"))))
    if chosen is not None:
        method = schedule_method(df[df["sparsity"] == chosen])
        heat = _schedule_table(df, chosen, method) if method else {}
        if heat:
            out.append((f"{methods.label(method)} accuracy (%) by warm-up epochs (rows) and "
                        f"pruning iterations T at sparsity {pct_header(chosen)}", "schedule", heat))
    return out


def _schedule_table(df: pd.DataFrame, sparsity: float, method: str) -> dict[tuple[str, str], pd.DataFrame]:
    """The heatmap's numbers as tables (empty when the method's schedule was not varied)."""
    rows, _ = fixed_rows(df[df["sparsity"] == sparsity], method, SCHEDULE,
                         held_columns(df, method, SCHEDULE))
    if rows.empty or rows[SCHEDULE].drop_duplicates().shape[0] < 2:
        return {}
    agg = aggregate(rows, metrics=["test_acc"], by=["model", "dataset"] + SCHEDULE)
    agg = agg.assign(method=method, label=[f"warm-up {w}" for w in agg["warmup_epochs"]])
    tables = wide(agg, mean_std("test_acc"), column="prune_iterations", header=lambda t: f"T={t}")
    for frame in tables.values():
        frame.index.name = "warm-up epochs"
    return tables
