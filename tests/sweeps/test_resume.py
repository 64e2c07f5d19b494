"""A sweep stopped midway (Ctrl-C) labels its unfinished trials `interrupted` with their real
method, sparsity and seed, and resumed ends with every trial done exactly once."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

from sweeps.cli import main

SWEEP = {
    "name": "stopme",
    "max_concurrent": 1,
    "checkpoint_every": 1,
    "experiment": {"dataset": "digits", "model": "digits_cnn", "model_args": {"width": 0.5},
                   "device": "cpu", "method": "magnitude", "train": {"epochs": 6, "batch_size": 128}},
    "sweep": {"sparsity": [0.5, 0.8, 0.9, 0.95], "seed": [7]},
}


def finals(path: Path) -> dict[str, int]:
    """Trial folder -> number of `end` lines with status finished in its record."""
    out = {}
    for f in path.glob("*/metrics.jsonl"):
        lines = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
        out[f.parent.name] = sum(x["event"] == "end" and x["status"] == "finished" for x in lines)
    return out


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "sweeps.cli", *args]


def test_stopped_sweep_resumes_without_rerunning_finished_trials(tmp_path):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump(SWEEP))
    path = tmp_path / "out" / "stopme"
    log = (tmp_path / "run.log").open("w")
    proc = subprocess.Popen(cli("run", str(sweep), "--storage", str(tmp_path / "out")),
                            stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 240
    while time.time() < deadline and sum(finals(path).values()) < 2:
        assert proc.poll() is None, (tmp_path / "run.log").read_text()[-3000:]
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) != 0  # stopped with trials unfinished
    before = finals(path)
    done_before = {name for name, n in before.items() if n == 1}
    assert 2 <= len(done_before) < 4, before
    snapshots = {name: (path / name / "metrics.jsonl").read_bytes() for name in done_before}
    # the unfinished trials are `interrupted`, with what they really ran (Tune's params.json)
    stopped = pd.read_csv(path / "results.csv")
    stopped = stopped[stopped["status"] != "finished"]
    assert len(stopped) >= 1 and set(stopped["status"]) == {"interrupted"}
    report = tmp_path / "report"
    assert main(["report", str(path), "--out", str(report)]) == 0
    text = (report / "report.md").read_text()
    started = len(list(path.glob("*/metrics.jsonl")))  # the others never started: no record
    assert (f"{4 - started} more planned trial(s) never started" in text) == (started < 4)
    failed = text.split("## Trials that did not finish")[1]
    for row in stopped.itertuples():
        truth = json.loads((Path(row.path).parent / "params.json").read_text())["trial"]
        assert (row.method, row.sparsity, row.seed) == ("magnitude", truth["sparsity"], 7)
        assert row.reason.startswith("the sweep stopped before this trial ended")
        assert f"| magnitude | {100 * truth['sparsity']:g}% | 7 | interrupted |" in failed

    resumed = subprocess.run(cli("resume", str(path)), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    after = finals(path)
    assert len(after) == 4 and set(after.values()) == {1}, after
    for name in done_before:  # finished trials were not run again
        assert (path / name / "metrics.jsonl").read_bytes() == snapshots[name]
    table = pd.read_csv(path / "results.csv")
    assert sorted(table["sparsity"]) == [0.5, 0.8, 0.9, 0.95]
    assert (table["status"] == "finished").all()
    assert "trials: 4 finished" in resumed.stdout
