"""Report tables as frames of formatted cells, rendered to Markdown or LaTeX (booktabs).

Wide tables have one row per method label and one column per sparsity. A cell without a
complete result is '—', followed by why when a trial was there (running, errored, diverged):
nothing is interpolated or invented.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from analysis import methods
from analysis.aggregate import attempted_levels

MISSING = "—"
Cell = Callable[[pd.Series], str]


def pct_header(sparsity: float) -> str:
    """0.9 -> '90%'."""
    return f"{100 * sparsity:.4g}%"


def mean_std(metric: str, scale: float = 100, digits: int = 2) -> Cell:
    """Cell formatter 'mean ± std (n)' of an aggregated metric (std left out for one seed)."""
    def cell(row: pd.Series) -> str:
        mean, std = row[f"{metric}_mean"], row[f"{metric}_std"]
        if pd.isna(mean):
            return MISSING
        text = f"{scale * mean:.{digits}f}"
        if not pd.isna(std):
            text += f" ± {scale * std:.{digits}f}"
        return f"{text} ({int(row['seeds'])})"
    return cell


def times(column: str) -> Cell:
    """Cell formatter of a speed-up: '12.3×', '∞' for a free method, '—' when unknown."""
    def cell(row: pd.Series) -> str:
        x = row[column]
        if pd.isna(x):
            return MISSING
        if np.isinf(x):
            return "∞"
        return f"{x:.0f}×" if x >= 100 else f"{x:.2g}×" if x < 1 else f"{x:.1f}×"
    return cell


def storage(row: pd.Series) -> str:
    """Cell formatter of the weight storage: 'CSR kB / bitmap kB' (means over seeds)."""
    csr, bitmap = row.get("bytes_csr_mean"), row.get("bytes_bitmap_mean")
    if pd.isna(csr) or pd.isna(bitmap):
        return MISSING
    return f"{csr / 1000:,.1f} / {bitmap / 1000:,.1f}"


def count(metric: str) -> Cell:
    """Cell formatter of a mean count (sample passes): '12,345'."""
    def cell(row: pd.Series) -> str:
        x = row[metric]
        return MISSING if pd.isna(x) else f"{x:,.0f}"
    return cell


def wide(table: pd.DataFrame, cell: Cell, df: pd.DataFrame | None = None,
         agg: pd.DataFrame | None = None, column: str = "sparsity",
         header: Callable[[float], str] = pct_header) -> dict[tuple[str, str], pd.DataFrame]:
    """Per (model, dataset): label x ``column`` (sparsity) frames of formatted cells.

    ``table`` has model, dataset, method, label, ``column`` and what ``cell`` reads. With the
    tidy ``df`` and its ``agg``, the table's labels and levels that trials attempted without a
    complete result get a cell saying their status, and a method whose every trial failed
    gets its row.
    """
    cells = {(r["model"], r["dataset"], r["method"], r["label"], r[column]): cell(r)
             for _, r in table.iterrows()}
    if df is not None and agg is not None:
        labels, present = set(table["label"]), set(table["method"])
        levels = set(table[column]) or None
        for key, status in _why_missing(df, agg).items():
            if ((key[3] in labels or key[2] not in present)
                    and (levels is None or key[4] in levels)):
                cells.setdefault(key, f"{MISSING} ({status})")
    out = {}
    for model, dataset in dict.fromkeys((k[0], k[1]) for k in cells):
        keys = [k for k in cells if k[:2] == (model, dataset)]
        rows = sorted(dict.fromkeys((k[2], k[3]) for k in keys),
                      key=lambda ml: (methods.order_key(ml[0]), ml[1]))
        levels = sorted({k[4] for k in keys})
        frame = pd.DataFrame(MISSING, index=[lb for _, lb in rows],
                             columns=[header(s) for s in levels])
        for k in keys:
            frame.loc[k[3], header(k[4])] = cells[k]
        frame.index.name = "method"
        out[(model, dataset)] = frame
    return out


def _why_missing(df: pd.DataFrame, agg: pd.DataFrame) -> dict[tuple, str]:
    """(model, dataset, method, label, sparsity) -> statuses of the trials without a result."""
    tried = attempted_levels(df, agg)
    tried = tried[~tried["complete"].astype(bool)].dropna(subset=["model", "dataset"])
    return {key: ", ".join(sorted(set(rows["status"].astype(str))))
            for key, rows in tried.groupby(["model", "dataset", "method", "label", "sparsity"])}


def failed_trials(df: pd.DataFrame) -> pd.DataFrame:
    """One row per trial that did not finish: where it stopped and why."""
    cols = ["experiment", "trial", "method", "sparsity", "seed", "status", "progress", "reason"]
    bad = df[df["status"] != "finished"]
    if bad.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for (experiment, trial), t in bad.groupby(["experiment", "trial_id"], sort=False, dropna=False):
        last = t.iloc[-1]
        target = last.get("cfg.sparsity", last["sparsity"])
        done = int(t["complete"].sum())
        progress = []
        if not pd.isna(last["epochs_done"]):  # IMP's epochs run over all its rounds
            per_round = pd.isna(last["epochs"]) or last["plan"] == "imp"
            total = "" if per_round else f"/{last['epochs']}"
            progress.append(f"{last['epochs_done']}{total} epochs")
        if done:
            progress.append(f"{done} IMP level{'s' if done > 1 else ''} done")
        rows.append({
            "experiment": experiment, "trial": trial, "method": last["method"],
            "sparsity": MISSING if pd.isna(target) else pct_header(float(target)),
            "seed": MISSING if pd.isna(last["seed"]) else str(last["seed"]),
            "status": last["status"], "progress": ", ".join(progress) or MISSING,
            "reason": MISSING if pd.isna(last["reason"]) else str(last["reason"]),
        })
    return pd.DataFrame(rows, columns=cols).fillna(MISSING)


# ---- rendering ----------------------------------------------------------------------------------


def to_markdown(frame: pd.DataFrame, index: bool = True, numbers: bool = True) -> str:
    """A GitHub-flavoured Markdown table (pipes in cells are escaped); with ``numbers`` every
    column after the first is right-aligned."""
    frame = frame.reset_index() if index else frame
    esc = lambda v: str(v).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    head = "| " + " | ".join(map(esc, frame.columns)) + " |"
    right = [numbers and i > 0 for i in range(frame.shape[1])]
    align = "|" + "|".join(" ---: " if r else " --- " for r in right) + "|"
    body = ["| " + " | ".join(map(esc, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, align, *body]) + "\n"


_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
          "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}",
          "±": r"$\pm$", "—": "---", "∞": r"$\infty$", "×": r"$\times$", "·": r"$\cdot$",
          "…": r"\dots{}"}


def latex_escape(text: object) -> str:
    return "".join(_LATEX.get(ch, ch) for ch in str(text))


def to_latex(frame: pd.DataFrame, caption: str, label: str, index: bool = True,
             numbers: bool = True) -> str:
    """A booktabs ``table`` with a ``tabular`` of the frame's cells (needs booktabs)."""
    frame = frame.reset_index() if index else frame
    spec = "l" + ("r" if numbers else "l") * (frame.shape[1] - 1)
    lines = [r"\begin{table}[t]", r"\centering", r"\small",
             rf"\caption{{{latex_escape(caption)}}}", rf"\label{{{label}}}",
             rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
             " & ".join(latex_escape(c) for c in frame.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(latex_escape(v) for v in row) + r" \\"
              for row in frame.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)
