"""The drills of a sweep's driver stopped by a signal, on local Ray, with real signals.

SIGTERM (what `ray job stop`, Kubernetes, Slurm send) stops the driver with one line and exit
143; every record has an end; no Ray process of the sweep survives; and `resume` finishes the
sweep without training again a trial that had finished or had done its last epoch, each trial
ending with the metrics of an uninterrupted twin. kill -9 of the driver leaves no Ray process
behind, and `resume` after it prints no warning. (Ctrl-C's drill is test_resume.py's.)

The sweep: magnitude pruning on digits, a 20-epoch and a 2-epoch trial side by side. The
2-epoch trial waits before reporting its last epoch (DRIVE_SWEEP_PAUSE_ONCE) until the other has
a checkpoint, then 2 s; the signal comes then, so it is stopped between its last epoch and its
end, while the other is mid-way.
Ray's processes are found by the driver's session (:func:`session_processes`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml

from drive.record import last_status
from tests.sweeps.drills import finish, gone, start, twins, wait_for

REPO = Path(__file__).resolve().parents[2]
SWEEP = {"name": "drill", "max_concurrent": 2, "checkpoint_every": 1, "loggers": ["json"],
         "experiment": {"dataset": "digits", "model": "digits_cnn", "model_args": {"width": 0.5},
                        "device": "cpu", "method": "magnitude", "sparsity": 0.8,
                        "train": {"epochs": 3, "batch_size": 128}},
         "sweep": {"train.epochs": [20, 2]}}
FINAL = ("test_acc", "best_test_acc", "test_loss", "density", "params_remaining")
PAUSED, LONG = 2, 20  # the trial that pauses before reporting its last epoch; the other


class Record(NamedTuple):
    text: str
    lines: list[dict]

    @property
    def status(self) -> str:
        return last_status(self.text)

    def events(self, kind: str) -> list[dict]:
        return [x for x in self.lines if x["event"] == kind]


def records(path: Path) -> dict[int, Record]:
    """Trial epochs -> its record."""
    out = {}
    for f in path.glob("*/metrics.jsonl"):
        text = f.read_text()
        lines = [json.loads(x) for x in text.splitlines() if x.strip()]
        out[lines[0]["epochs"]] = Record(text, lines)
    return out


def checkpointed(path: Path, epochs: int) -> bool:
    """Whether the trial of ``epochs`` epochs has a checkpoint in its folder (so a resume
    continues it; on a loaded machine it can start seconds after the other trial)."""
    for f in path.glob("*/metrics.jsonl"):
        head, newline, _ = f.read_text().partition("\n")
        if newline and json.loads(head)["epochs"] == epochs:
            return any(f.parent.glob("checkpoint_*/*"))
    return False


def resume(path: Path, tmp: Path) -> tuple[subprocess.CompletedProcess, list[str]]:
    """``drive-sweep resume PATH`` to its end; the Ray processes of its session left after it."""
    proc = start(["resume", str(path)], tmp)
    out, err = finish(proc)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), gone(proc.pid)


@pytest.fixture(scope="module")
def twin() -> dict[int, dict]:
    """Trial epochs -> the metrics of the trial run uninterrupted."""
    return {cfg.train.epochs: metrics for cfg, metrics in twins(SWEEP)}


def ends_as_twins(after: dict[int, Record], twin: dict[int, dict]) -> None:
    for epochs, record in after.items():
        end = record.events("end")[-1]
        assert {k: end[k] for k in FINAL} == {k: twin[epochs][k] for k in FINAL}, epochs


def check_continued(lines: list[dict]) -> None:
    """A record interrupted mid-way and resumed: its second attempt continued from its
    checkpoint and trained each remaining epoch once."""
    starts = [i for i, x in enumerate(lines) if x["event"] == "start"]
    assert len(starts) == 2
    resumed = lines[starts[1]]["resumed"]["epochs_done"]
    trained = [x["epochs_done"] for x in lines[starts[1]:] if x["event"] == "epoch"]
    assert resumed >= 1 and trained == list(range(resumed + 1, lines[0]["epochs"] + 1))


def test_sigterm_stops_the_sweep_in_one_line_and_resume_trains_nothing_twice(tmp_path, twin):
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(SWEEP))
    path, marker = tmp_path / "out" / "drill", tmp_path / "paused"
    hold = Path(f"{marker}.hold")  # the paused trial waits while it exists
    hold.touch()
    proc = start(["run", "sweep.yaml", "--storage", "out"], tmp_path,
                 {"DRIVE_SWEEP_PAUSE_ONCE": f"2:{marker}"})
    wait_for(lambda: marker.exists() and checkpointed(path, LONG), proc)
    proc.send_signal(signal.SIGTERM)
    hold.unlink()  # the 2 s pause starts: the stop reaches the trial within it
    out, err = finish(proc, timeout=120)
    assert proc.returncode == 143, err[-3000:]
    assert len(err.splitlines()) == 1 and err.startswith("drive-sweep: SIGTERM stopped the sweep ("), err
    assert err.rstrip().endswith(f"every record is ended; continue with `drive-sweep resume {path}`")
    assert "Tuner.restore" not in out + err and "SIGTERM received" not in out + err
    assert gone(proc.pid) == []  # no Ray process of the sweep outlived it

    before = records(path)
    assert sorted(before) == [PAUSED, LONG], before
    assert all(r.status != "running" for r in before.values())  # every record has its end
    paused = before[PAUSED]  # stopped after its last epoch, before its end was reported
    assert paused.status == "finished" and len(paused.events("start")) == 1
    for r in before.values():  # whatever did its last epoch is finished, the rest interrupted
        done = r.events("epoch")[-1]["epochs_done"] == r.lines[0]["epochs"]
        assert r.status == ("finished" if done else "interrupted"), r.lines[-1]
    assert before[LONG].status == "interrupted"  # it was mid-way

    resumed, left = resume(path, tmp_path)
    assert resumed.returncode == 0 and resumed.stderr == "", resumed.stderr[-3000:]
    assert left == []
    after = records(path)
    assert sorted(after) == [PAUSED, LONG] and all(r.status == "finished" for r in after.values())
    assert after[PAUSED].text == paused.text  # never trained again: not a line added
    check_continued(after[LONG].lines)
    ends_as_twins(after, twin)


def test_kill_9_of_the_driver_leaves_no_ray_process_and_resume_warns_of_nothing(tmp_path, twin):
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(SWEEP))
    path = tmp_path / "out" / "drill"
    proc = start(["run", "sweep.yaml", "--storage", "out"], tmp_path)
    wait_for(lambda: any(r.status == "finished" for r in records(path).values()), proc)
    proc.kill()
    finish(proc, timeout=60)
    assert gone(proc.pid) == []  # the agents used to live on with parent 1
    finished = {e: r.text for e, r in records(path).items() if r.status == "finished"}

    resumed, left = resume(path, tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stderr == "" and left == []
    assert not {"WARNING", "ERROR", "Traceback"} & set(resumed.stdout.split()), resumed.stdout[-3000:]
    after = records(path)
    assert sorted(after) == [PAUSED, LONG] and all(r.status == "finished" for r in after.values())
    assert finished and all(after[e].text == text for e, text in finished.items())  # not re-run
    ends_as_twins(after, twin)


# ---- the parts, without a sweep -------------------------------------------------------------


def test_the_guard_raises_before_tune_stops_tune_while_it_runs_and_notes_after():
    from drive.errors import Interrupted
    from sweeps import signals

    stops = []
    with signals.SignalGuard() as guard:
        with pytest.raises(Interrupted) as info:  # nothing runs yet: the command stops at once
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
        assert (str(info.value), info.value.exit_code, guard.exit_code) == ("stopped by SIGTERM", 143, 143)
        guard.received = None
        with signals.tune_running():
            signal.signal(signal.SIGUSR1, lambda *_: stops.append("tune"))  # as Tune's, once it runs
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)
            assert stops == ["tune"] and guard.received == signal.SIGINT
            with pytest.raises(Interrupted):  # a second signal does not wait for Tune
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(1)
        os.kill(os.getpid(), signal.SIGTERM)  # after Tune: only noted
        time.sleep(0.2)
        assert guard.received == signal.SIGINT and guard.exit_code == 130
    assert signal.getsignal(signal.SIGTERM) is not guard._handle  # the previous handlers are back
    assert signals.stopped_line(signal.SIGINT, {"not started": 1, "interrupted": 2, "finished": 3},
                                "/r/s") == ("drive-sweep: Ctrl-C stopped the sweep (3 finished, 2 "
                                            "interrupted, 1 not started); every record is ended; "
                                            "continue with `drive-sweep resume /r/s`")


def test_the_watcher_stops_the_ray_processes_of_a_driver_killed_with_kill_9(tmp_path):
    """A stand-in driver starts a watcher, a marked process (as ray.init's) and one that only
    holds a file in the session folder it names (as an agent, which overwrites its environment),
    both in sessions of their own; then it is killed -9. Both go; a bystander stays."""
    session = tmp_path / "session_1"
    (session / "logs").mkdir(parents=True)
    hold = f"import time; f = open({str(session / 'logs' / 'agent.log')!r}, 'w'); time.sleep(300)"
    driver = f"""
import os, signal, subprocess, sys, time
from sweeps import reaper
token = reaper.watch()
with reaper.marked(token):
    marked = subprocess.Popen(["sleep", "300"], start_new_session=True)
agent = subprocess.Popen([sys.executable, "-c", {hold!r}], start_new_session=True)
time.sleep(0.5)
reaper.add_session({str(session)!r})
print(marked.pid, agent.pid, flush=True)
time.sleep(300)
"""
    bystander = subprocess.Popen(["sleep", "300"])
    proc = subprocess.Popen([sys.executable, "-c", driver], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    pids = [int(p) for p in proc.stdout.readline().split()]
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 10
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(p) for p in pids) and alive(bystander.pid)
    bystander.kill()


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not reaped by its parent, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_a_restored_trial_whose_checkpoint_is_gone_continues_from_the_newest_there(tmp_path):
    import pyarrow.fs as pafs
    from ray import tune

    from sweeps.trainable import STATE_FILE, StopAndRestore

    for name, state in (("checkpoint_000003", True), ("checkpoint_000004", True), ("checkpoint_000005", False)):
        (tmp_path / name).mkdir()
        if state:  # 5: a copy that never got its state
            (tmp_path / name / STATE_FILE).write_bytes(b"state")

    class Trainable:
        def restore(self, result):
            self.restored = result.checkpoint.path

    class Restoring(StopAndRestore, Trainable):
        pass

    class Result:  # what Tune hands restore(): the checkpoint its saved state names
        def __init__(self, path):
            self.checkpoint = tune.Checkpoint(str(path), filesystem=pafs.LocalFileSystem())

    trial = Restoring()
    trial.restore(Result(tmp_path / "checkpoint_000003"))  # still there: itself
    assert trial.restored == str(tmp_path / "checkpoint_000003")
    trial.restore(Result(tmp_path / "checkpoint_000002"))  # deleted since: the newest with a state
    assert trial.restored == str(tmp_path / "checkpoint_000004")
    empty = tmp_path / "other"
    empty.mkdir()
    fresh = Restoring()
    fresh.restore(Result(empty / "checkpoint_000001"))  # none left: no restore, a fresh start
    assert not hasattr(fresh, "restored")


def test_asha_never_stops_a_trial_at_its_last_step():
    from ray.tune.schedulers import TrialScheduler

    from sweeps.records import EpochASHA
    from sweeps.trainable import FINAL_STEP

    class Trial:
        def __init__(self, trial_id):
            self.trial_id = trial_id

    asha = EpochASHA(metric="val_acc", mode="max", max_t=8, grace_period=1, reduction_factor=2)
    trials = [Trial(str(i)) for i in range(3)]
    for t in trials:
        asha.on_trial_add(None, t)
    good, low = {"epochs_done": 1, "val_acc": 0.9}, {"epochs_done": 1, "val_acc": 0.1}
    assert asha.on_trial_result(None, trials[0], good) == TrialScheduler.CONTINUE
    assert asha.on_trial_result(None, trials[1], low) == TrialScheduler.STOP  # below the rung's cutoff
    assert asha.on_trial_result(None, trials[2], {**low, FINAL_STEP: True}) == TrialScheduler.CONTINUE
    assert set(asha.stops) == {"1"}  # only the stopped one gets an ASHA reason
