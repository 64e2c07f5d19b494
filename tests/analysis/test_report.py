"""analysis.report: the report's tables equal the aggregated data; failures are listed."""

import json
import re

import numpy as np
import pandas as pd
import pytest

from analysis.aggregate import aggregate, headline_levels, primary_labels, speedup
from analysis.report import write_report
from analysis.results import ResultsError, ResultsWarning, load, read_saved, rows_from_metrics, tidy


def md_table(text: str, title: str) -> pd.DataFrame:
    """The first Markdown table after the heading line starting with ``title``."""
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.lstrip("# ").startswith(title))
    rows = []
    for ln in lines[start + 1:]:
        if ln.startswith("|"):
            rows.append([c.strip() for c in ln.strip("|").split(" | ")])
        elif rows:
            break
    return pd.DataFrame(rows[2:], columns=rows[0]).set_index(rows[0][0])


@pytest.fixture(scope="module")
def report(real_sweep, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    path = write_report([real_sweep.experiment, real_sweep.pruned], out)
    df = load([real_sweep.experiment, real_sweep.pruned])
    return path, path.read_text(), df, aggregate(df)


def test_report_files(report):
    path, text, df, _ = report
    out = path.parent
    for name in ("accuracy_vs_sparsity", "accuracy_vs_flops", "time_vs_imp", "samples_vs_imp",
                 "accuracy_vs_cost", "warmup_heatmap", "layer_density"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 10_000, name
        assert (out / "figures" / f"{name}.pdf").exists()
        assert f"figures/{name}.png" in text
    assert "*A method's arguments (DRIVE: its score terms)*: not drawn — no variants of a method's arguments" in text
    pd.testing.assert_frame_equal(read_saved(out / "results.parquet"), df)
    tex = (out / "tables.tex").read_text()
    assert r"\toprule" in tex and r"$\pm$" in tex and r"\label{tab:failed}" in tex


def test_accuracy_table_equals_the_aggregates(report):
    _, text, df, agg = report
    table = md_table(text, "digits_cnn on digits")
    primary = primary_labels(agg)
    primary = primary[primary["sparsity"].isin(headline_levels(agg) + [0.0])]
    assert list(table.columns) == ["0%", "50%", "90%"]  # IMP's in-between levels are not columns
    checked = 0
    for row in primary.itertuples():
        cell = table.loc[row.label, f"{100 * row.sparsity:.4g}%"]
        match = re.fullmatch(r"(\d+\.\d\d)(?: ± (\d+\.\d\d))? \((\d+)\)", cell)
        assert match, cell
        assert float(match[1]) == pytest.approx(100 * row.test_acc_mean, abs=0.005)
        if row.seeds > 1:
            assert float(match[2]) == pytest.approx(100 * row.test_acc_std, abs=0.005)
        assert int(match[3]) == row.seeds
        checked += 1
    assert checked == len(primary) == 9
    # missing stays missing: DRIVE ran only at 90%, and grasp's only trial errored
    assert table.loc["drive (T 2)", "50%"] == "—"
    assert table.loc["grasp", "90%"] == "— (errored)"
    assert "random" in table.index  # from the drive-sweep prune --out file


def test_speedup_tables_equal_imp_over_method(report):
    _, text, _, agg = report
    fast = speedup(primary_labels(agg))
    fast = fast[fast["sparsity"].isin(headline_levels(agg))]
    times = md_table(text, "Speed-up over IMP in pruning time")
    samples = md_table(text, "Speed-up over IMP in sample passes")
    for row in fast.itertuples():
        col = f"{100 * row.sparsity:.4g}%"
        expected = row.imp_prune_time_s / row.prune_time_s
        cell = times.loc[row.label, col]
        assert float(cell.rstrip("×")) == pytest.approx(expected, rel=0.06), (row.label, cell)
        if row.prune_samples == 0:
            assert samples.loc[row.label, col] == "∞"
        else:
            value = float(samples.loc[row.label, col].rstrip("×"))
            assert value == pytest.approx(row.imp_prune_samples / row.prune_samples, rel=0.06)
    assert set(times.loc["imp"]) == {"1.0×"}


def test_failed_trials_are_listed_with_their_reason(report):
    _, text, _, _ = report
    failed = md_table(text, "Trials that did not finish").reset_index()
    err = failed[failed["trial"] == "err01"].iloc[0]
    assert (err["method"], err["sparsity"], err["status"], err["progress"], err["reason"]) == (
        "grasp", "90%", "errored", "1/1 epochs", "RuntimeError: CUDA out of memory")
    running = failed[failed["trial"] == "run01"].iloc[0]
    assert (running["method"], running["sparsity"], running["seed"]) == ("snip", "90%", "2")
    assert (running["status"], running["reason"]) == ("running", "—")
    assert "18 trials (16 finished, 1 errored, 1 running)" in text


def test_report_without_imp_or_drive_variants_says_what_it_skipped(make, tmp_path):
    folder = tmp_path / "runs"
    folder.mkdir()
    for i, (method, s) in enumerate([("snip", 0.5), ("snip", 0.9), ("drive", 0.9)]):
        m = make.metrics(method, s, test_acc=0.5 + i / 10)
        make.write_record(folder, f"{method}_{s}", m)
    text = write_report([folder], tmp_path / "out", sparsity=0.5).read_text()
    assert "*Pruning time vs IMP*: not drawn — no finished IMP trial" in text
    assert "*Warm-up epochs x pruning iterations (DRIVE)*: not drawn — no warm-up/iteration variants" in text
    assert "One-level figures and tables are at sparsity 50%" in text
    assert "Speed-up over IMP" not in text.split("## Figures")[1].split("## Final")[1]
    assert "None: every trial finished." in text


def test_unreadable_records_are_named_in_the_report(real_sweep, tmp_path):
    """A trial record cut short (a full disk) is left out of every table and named in report.md,
    not only in a warning on the terminal."""
    exp = tmp_path / "exp"
    whole = next(real_sweep.experiment.glob("snip_*/metrics.jsonl")).read_bytes()
    for name, data in (("whole", whole), ("cut", whole[:40])):
        (exp / name).mkdir(parents=True)
        (exp / name / "metrics.jsonl").write_bytes(data)
    with pytest.warns(ResultsWarning):
        text = write_report(exp, tmp_path / "out").read_text()
    section = text.split("## Trial records that could not be read")[1]
    assert str(exp / "cut" / "metrics.jsonl") in section and "whole" not in section


def test_no_results_is_an_error(tmp_path):
    with pytest.raises(ResultsError, match="no trial record"):
        write_report([tmp_path], tmp_path / "out")


def test_hand_built_frame_cells(make):
    """The table cell text of a known frame: mean ± std (n), '—' where nothing ran."""
    from analysis.tables import mean_std, times, wide

    rows = []
    for i, (s, acc) in enumerate([(0.5, 0.8), (0.5, 0.9), (0.9, 0.6)]):
        rows += rows_from_metrics(make.metrics("snip", s, seed=i, test_acc=acc), trial_id=str(i),
                                  experiment="e")
    rows += rows_from_metrics(make.metrics("grasp", 0.9, test_acc=0.5), trial_id="g",
                              experiment="e")
    df = tidy(pd.DataFrame(rows))
    agg = aggregate(df)
    table = wide(agg, mean_std("test_acc"), df, agg)[("toy", "toyset")]
    assert table.loc["snip", "50%"] == f"85.00 ± {100 * np.std([0.8, 0.9], ddof=1):.2f} (2)"
    assert table.loc["snip", "90%"] == "60.00 (1)"
    assert table.loc["grasp", "50%"] == "—"
    cell = times("x")
    assert [cell(pd.Series({"x": v})) for v in (np.inf, np.nan, 150.0, 12.34, 0.5)] == [
        "∞", "—", "150×", "12.3×", "0.5×"]


def test_every_result_has_its_flops_and_the_report_shows_them(report):
    path, text, df, agg = report
    done = df[df["complete"]]
    assert done["flops"].notna().all() and done["flops_dense"].notna().all()
    assert (done["flops"] <= done["flops_dense"]).all()
    dense = done[done["plan"] == "dense"]
    assert (dense["flops"] == dense["flops_dense"]).all()
    assert "## FLOPs remaining (% of a dense forward pass; theory, per sample)" in text
    assert "## Weight storage (kB): CSR / bitmap of the kept weights, the rest dense" in text
    tex = (path.parent / "tables.tex").read_text()
    assert "FLOPs remaining" in tex


def test_a_measurement_in_the_folder_is_in_the_report(make, tmp_path):
    folder = tmp_path / "runs"
    m = make.metrics("snip", 0.9)
    make.write_record(folder, "t1", m)
    (folder / "t1" / "inference.json").write_text(json.dumps({
        "method": "snip", "sparsity": 0.9, "source": "checkpoint", "device": "cpu",
        "theory": {"flops_fraction": 0.12},
        "timings": [{"batch": 1, "dense_s": 0.002, "sparse_s": 0.004, "ratio": 2.0},
                    {"batch": 256, "dense_s": 0.2, "sparse_s": 0.1, "ratio": 0.5}]}))
    text = write_report([folder], tmp_path / "out").read_text()
    section = text.split("## Measured inference speed")[1]
    assert "| snip | 90% | checkpoint | cpu | 256 | 200 | 100 | 0.5 | 12% |" in section
