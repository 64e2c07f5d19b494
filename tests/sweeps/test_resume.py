"""A sweep stopped midway (Ctrl-C) and resumed ends with every trial done exactly once."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

SWEEP = {
    "name": "stopme",
    "max_concurrent": 1,
    "checkpoint_every": 1,
    "experiment": {"dataset": "digits", "model": "digits_cnn", "model_args": {"width": 0.5},
                   "device": "cpu", "method": "magnitude", "train": {"epochs": 6, "batch_size": 128}},
    "sweep": {"sparsity": [0.5, 0.8, 0.9, 0.95], "seed": [0]},
}


def finals(path: Path) -> dict[str, int]:
    """Trial folder -> number of `final` lines in its result.json."""
    out = {}
    for f in path.glob("*/result.json"):
        out[f.parent.name] = sum(json.loads(line)["event"] == "final"
                                 for line in f.read_text().splitlines() if line.strip())
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
    snapshots = {name: (path / name / "result.json").read_bytes() for name in done_before}

    resumed = subprocess.run(cli("resume", str(path)), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    after = finals(path)
    assert len(after) == 4 and set(after.values()) == {1}, after
    for name in done_before:  # finished trials were not run again
        assert (path / name / "result.json").read_bytes() == snapshots[name]
    table = pd.read_csv(path / "results.csv")
    assert sorted(table["sparsity"]) == [0.5, 0.8, 0.9, 0.95]
    assert (table["status"] == "finished").all()
    assert "trials: 4 finished" in resumed.stdout
