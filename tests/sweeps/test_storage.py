"""Storage that cannot be written: refused before anything runs, or (filling up mid-sweep) the
sweep stops with one line, no trial burns its retries on it, and the records stay readable."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from drive.record import read_record
from sweeps.cli import main
from sweeps.storage import record_sink

SWEEP = {"name": "full", "max_concurrent": 2, "checkpoint_every": 1, "keep_checkpoints": 100,
         "retries": 3,
         # full width: enough checkpoint bytes (packed: ~0.4 MB each at 50%) to fill the 4 MiB disk
         "experiment": {"dataset": "digits", "model": "digits_cnn",
                        "device": "cpu", "method": "magnitude", "train": {"epochs": 5, "batch_size": 128}},
         "sweep": {"sparsity": [0.5, 0.8, 0.9]}}


def read_only(folder: Path) -> bool:
    """Make ``folder`` unwritable for this user (root: immutable); False when impossible."""
    folder.chmod(0o555)
    if os.geteuid() == 0 and shutil.which("chattr"):
        subprocess.run(["chattr", "+i", str(folder)], check=False, capture_output=True)
    probe = folder / "probe"
    try:
        probe.write_text("")
    except OSError:
        return True
    probe.unlink()
    return False


def test_read_only_storage_is_refused_before_anything_runs(tmp_path, capsys):
    store = tmp_path / "ro"
    store.mkdir()
    if not read_only(store):
        pytest.skip("cannot make a read-only folder here")
    try:
        sweep = tmp_path / "s.yaml"
        sweep.write_text(yaml.safe_dump({**SWEEP, "storage": str(store)}))
        assert main(["run", str(sweep)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"drive-sweep: error: storage: cannot write to {store} (")
        assert not (store / "full").exists()
    finally:
        subprocess.run(["chattr", "-i", str(store)], check=False, capture_output=True)
        store.chmod(0o755)


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB file system (tmpfs; needs root), unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a small file system needs root")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_storage_filling_up_stops_the_sweep_with_one_line(small_disk, tmp_path):
    sweep = tmp_path / "s.yaml"
    sweep.write_text(yaml.safe_dump({**SWEEP, "storage": str(small_disk)}))
    run = subprocess.run([sys.executable, "-m", "sweeps.cli", "run", str(sweep)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 2, run.stderr[-3000:]
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("drive-sweep: error: storage: ") and "No space left on device" in last
    assert "the sweep stopped and the results written so far are intact" in last
    assert "Traceback" not in run.stderr
    records = [read_record(p) for p in (small_disk / "full").glob("*/metrics.jsonl")]
    assert records and all(r is not None for r in records)  # every record still parses
    assert all(r.attempts == 1 for r in records)  # no trial was retried on a full disk
    assert all(r.start["method"] == "magnitude" for r in records)


def test_remote_records_rewrite_the_object_and_repair_a_cut_line(tmp_path):
    path = f"file://{tmp_path}/exp/t1/metrics.jsonl"
    sink = record_sink(path)
    assert sink.existing == ""
    sink.append('{"event": "start", "record": 1}\n')
    (tmp_path / "exp" / "t1" / "metrics.jsonl").open("a").write('{"event": "epo')  # a crash
    record_sink(path).append('{"event": "end", "status": "finished"}\n')
    lines = (tmp_path / "exp" / "t1" / "metrics.jsonl").read_text().splitlines()
    assert lines == ['{"event": "start", "record": 1}', '{"event": "epo', '{"event": "end", "status": "finished"}']
    assert read_record(tmp_path / "exp" / "t1" / "metrics.jsonl").status == "finished"
