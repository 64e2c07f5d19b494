"""`drive-sweep report` on a folder where one trial's record cannot be read."""

from __future__ import annotations

from sweeps.cli import main


def test_an_unreadable_record_is_one_warning_line_and_named_in_the_report(tmp_path, capsys):
    exp = tmp_path / "exp"
    whole = exp / "snip_trial" / "metrics.jsonl"
    assert main(["prune", "--quiet", "--method", "snip", "--epochs", "1", "--device", "cpu",
                 "--out", str(whole)]) == 0
    cut = exp / "cut_trial" / "metrics.jsonl"
    cut.parent.mkdir()
    cut.write_bytes(whole.read_bytes()[:40])  # a disk that filled up during the first line
    capsys.readouterr()
    assert main(["report", str(exp), "--out", str(tmp_path / "report")]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"drive-sweep: warning: {cut}")
    text = (tmp_path / "report" / "report.md").read_text()
    assert str(cut) in text.split("## Trial records that could not be read")[1]
