"""The analysis on the folder of a real Ray Tune sweep, checked against the raw record lines."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import ray

from analysis.report import write_report
from analysis.results import load, read_saved
from sweeps.launch import run_sweep
from sweeps.results import summarize, write_results
from sweeps.spec import load_spec


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("ray_sweep")
    spec = load_spec(tree={
        "name": "small", "storage": str(out),
        "experiment": {"dataset": "digits", "model": "digits_cnn", "model_args": {"width": 0.5},
                       "device": "cpu", "warmup_epochs": 1, "train": {"epochs": 2, "batch_size": 128}},
        "sweep": {"method": ["dense", "snip", "drive", "imp"], "sparsity": [0.5, 0.8], "seed": [0, 1],
                  "prune_iterations": [3]}})
    try:
        path = run_sweep(spec, verbose=0)
    finally:
        ray.shutdown()
    return Path(path)


def raw_finals(path: Path) -> list[dict]:
    out = []
    for f in path.glob("*/metrics.jsonl"):
        lines = [json.loads(x) for x in f.read_text().splitlines() if x.strip()]
        out += [x for x in lines if x["event"] == "end"]
    return out


def test_one_row_per_trial_and_imp_level(sweep):
    df = load(sweep)
    finals = raw_finals(sweep)
    assert len(finals) == 2 + 2 * 2 * 2 + 2  # dense, snip, drive per seed x sparsity, imp per seed
    assert (df["status"] == "finished").all()
    imp_levels = sum(len(f["levels"]) for f in finals if f["method"] == "imp")
    assert len(df) == len(finals) - 2 + imp_levels
    for f in finals:
        if f["method"] == "imp":
            rows = df[(df["method"] == "imp") & (df["seed"] == f["seed"])].sort_values("level")
            assert list(rows["test_acc"]) == [lv["test_acc"] for lv in f["levels"]]
            assert list(rows["prune_time_s"]) == [lv["prune_time_s"] for lv in f["levels"]]
            assert {0.5, 0.8} <= set(rows["sparsity"])
        else:
            row = df[(df["method"] == f["method"]) & (df["seed"] == f["seed"])
                     & (df["sparsity"] == round(f["sparsity"], 6))]
            assert len(row) == 1
            assert row["test_acc"].item() == f["test_acc"] and row["density"].item() == f["density"]
            assert row["cfg.train.epochs"].item() == 2  # the base config, not Tune's sweep point


def test_results_files_equal_the_loaded_frame(sweep):
    frame = write_results(str(sweep))
    assert len(read_saved(sweep / "results.parquet")) == len(frame)
    assert "trials: 12 finished" in summarize(frame)


def test_report_cells_equal_the_raw_results(sweep, tmp_path):
    text = write_report([sweep], tmp_path).read_text()
    finals = raw_finals(sweep)
    snip = [f["test_acc"] for f in finals if f["method"] == "snip" and f["sparsity"] == 0.8]
    row = next(line for line in text.splitlines() if line.startswith("| snip |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    expected = f"{100 * np.mean(snip):.2f} ± {100 * np.std(snip, ddof=1):.2f} (2)"
    assert expected in cells
    imp_time = [lv["prune_time_s"] for f in finals if f["method"] == "imp" for lv in f["levels"]
                if lv["sparsity"] == 0.8]
    snip_time = [f["prune_time_s"] for f in finals if f["method"] == "snip" and f["sparsity"] == 0.8]
    speedups = text[text.index("Speed-up over IMP in pruning time"):]
    row = next(line for line in speedups.splitlines() if line.startswith("| snip |"))
    value = float(re.findall(r"([\d.]+)×", row)[-1])  # the 80% column is the last
    assert value == pytest.approx(np.mean(imp_time) / np.mean(snip_time), rel=0.06)
