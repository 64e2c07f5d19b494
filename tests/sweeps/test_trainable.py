"""sweeps.trainable: what a trial writes when an attempt fails before its experiment exists."""

import contextlib
from types import SimpleNamespace

import pytest

from drive.errors import CheckpointError
from drive.record import read_record
from sweeps import trainable
from sweeps.cli import main


class _Checkpoint:
    """What ``tune.get_checkpoint()`` gives a restored trial: a folder holding ``state.pt``."""

    def __init__(self, folder):
        self.folder = folder

    @contextlib.contextmanager
    def as_directory(self):
        yield str(self.folder)


def test_a_checkpoint_cut_short_ends_the_attempt_errored_in_the_record(tmp_path, monkeypatch):
    """A resumed sweep whose trial checkpoint was cut short (a full disk, a copy that stopped):
    the attempt used to fail before writing anything, leaving the record's old end (say
    `interrupted`, "resume continues it") as the trial's status; now its record says errored
    and why, and keeps the history so far."""
    base = {"method": "snip", "dataset": "digits", "device": "cpu", "train": {"epochs": 2}}
    state = tmp_path / "ck" / "state.pt"
    record = tmp_path / "exp" / "snip_t1" / "metrics.jsonl"
    assert main(["prune", "--quiet", "--method", "snip", "--device", "cpu", "--epochs", "2",
                 "--checkpoint", str(state), "--out", str(record)]) == 0
    state.write_bytes(state.read_bytes()[:2000])
    lines = record.read_text().splitlines()
    record.write_text("\n".join(lines[:-1]) + "\n")  # the run's end never written: it was killed
    history = read_record(record).history
    reports = []
    monkeypatch.setattr(trainable, "tune", SimpleNamespace(
        get_checkpoint=lambda: _Checkpoint(state.parent),
        get_context=lambda: SimpleNamespace(get_trial_id=lambda: "t1",
                                            get_trial_dir=lambda: str(record.parent)),
        report=lambda metrics, checkpoint=None: reports.append(metrics)))
    with pytest.raises(CheckpointError, match="checkpoint: cannot read"):
        trainable.run_trial({"trial": {"method": "snip"}}, base=base, methods=["snip"], checkpoint_every=1,
                            provenance={}, experiment_path=str(tmp_path / "exp"))
    after = read_record(record)
    assert after.end["status"] == "errored"
    assert after.end["reason"].startswith(f"CheckpointError: checkpoint: cannot read {state}")
    assert after.attempts == 2 and after.history == history and len(history) == 3 and reports == []
