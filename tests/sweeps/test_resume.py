"""A sweep stopped midway by Ctrl-C (SIGINT; the drill of issue #19): one line and exit 130,
its unfinished trials `interrupted` with their real method, sparsity and seed, no Ray process
of it left; resumed, it ends with every trial done exactly once, as its uninterrupted twin."""

import json
import signal
from pathlib import Path

import pandas as pd
import yaml

from sweeps.cli import main
from tests.sweeps.drills import finish, gone, start, twins, wait_for

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


def training(path: Path) -> bool:
    """Whether a trial without an end has recorded an epoch."""
    for f in path.glob("*/metrics.jsonl"):
        lines = [json.loads(line) for line in f.read_text().splitlines() if line.strip().endswith("}")]
        if not any(x["event"] == "end" for x in lines) and any(x["event"] == "epoch" for x in lines):
            return True
    return False


def test_stopped_sweep_resumes_without_rerunning_finished_trials(tmp_path):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump(SWEEP))
    path = tmp_path / "out" / "stopme"
    proc = start(["run", str(sweep), "--storage", str(tmp_path / "out")], tmp_path)
    # two trials done and a third under way (it has trained an epoch), so that Ctrl-C meets one
    wait_for(lambda: sum(finals(path).values()) >= 2 and training(path), proc)
    proc.send_signal(signal.SIGINT)
    _, err = finish(proc, timeout=120)
    assert proc.returncode == 130, err[-3000:]  # it was 1, after three lines of Ray's warnings
    assert err.splitlines() == [f"drive-sweep: Ctrl-C stopped the sweep ({line_counts(path)}); every "
                                f"record is ended; continue with `drive-sweep resume {path}`"]
    assert gone(proc.pid) == []  # no Ray process of the sweep outlived it
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

    again = start(["resume", str(path)], tmp_path)
    out, err = finish(again)
    assert again.returncode == 0 and err == "", out[-3000:] + err[-3000:]
    assert gone(again.pid) == []
    after = finals(path)
    assert len(after) == 4 and set(after.values()) == {1}, after
    for name in done_before:  # finished trials were not run again
        assert (path / name / "metrics.jsonl").read_bytes() == snapshots[name]
    table = pd.read_csv(path / "results.csv")
    assert sorted(table["sparsity"]) == [0.5, 0.8, 0.9, 0.95]
    assert (table["status"] == "finished").all()
    assert "trials: 4 finished" in out
    twin = {cfg.sparsity: metrics for cfg, metrics in twins(SWEEP)}  # run uninterrupted
    for row in table.itertuples():
        assert (row.test_acc, row.density) == (twin[row.sparsity]["test_acc"], twin[row.sparsity]["density"])


def line_counts(path: Path) -> str:
    """How the stopped line counts the trials: finished, interrupted, never started."""
    ends = [json.loads(x)["status"] for f in path.glob("*/metrics.jsonl")
            for x in f.read_text().splitlines() if '"event":"end"' in x]
    counts = {"finished": ends.count("finished"), "interrupted": ends.count("interrupted"),
              "not started": 4 - len(ends)}
    return ", ".join(f"{n} {status}" for status, n in counts.items() if n)
