"""prepare_dataset: once per data root, under a file lock, idempotent."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from drive.config import DataConfig
from drive.data import prepare_dataset
from drive.data.prepare import stamp_path
from drive.errors import DataError

FAKES = Path(__file__).resolve().parents[2] / "fakes"
NAME = "drive_test_fakes:downloading_digits"


@pytest.fixture
def events(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(FAKES))
    log = tmp_path / "events.jsonl"
    monkeypatch.setenv("DRIVE_TEST_EVENTS", str(log))
    return lambda: [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_two_processes_at_once_download_once(tmp_path, events):
    root = tmp_path / "data"
    code = ("import sys; from drive.config import DataConfig; from drive.data import prepare_dataset; "
            f"print(prepare_dataset({NAME!r}, DataConfig(root=sys.argv[1], download=True, num_workers=int(sys.argv[2]))))")
    env = {**os.environ, "DRIVE_TEST_DOWNLOAD_S": "1.5",
           "PYTHONPATH": os.pathsep.join([str(FAKES), *sys.path])}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(root), str(n)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for n in (1, 2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    # loader-only fields (num_workers) do not make it another preparation
    assert sorted(out.strip() for out, _ in outs) == ["False", "True"]
    kinds = [e["event"] for e in events()]
    assert kinds == ["download-start", "download-end", "load"]  # one process did all the work
    assert stamp_path(NAME, DataConfig(root=str(root), download=True)).is_file()


def test_prepared_once_then_skipped(tmp_path, events):
    cfg = DataConfig(root=str(tmp_path / "data"), download=True)
    assert prepare_dataset(NAME, cfg) is True
    assert prepare_dataset(NAME, cfg) is False
    assert [e["event"] for e in events()] == ["download-start", "download-end", "load"]
    other = cfg.model_copy(update={"split_seed": 1})  # another data set: prepared again, no download
    assert prepare_dataset(NAME, other) is True
    assert [e["event"] for e in events()][3:] == ["load"]


def test_a_failed_preparation_leaves_no_stamp_and_is_retried(tmp_path, events):
    cfg = DataConfig(root=str(tmp_path / "data"), download=False)
    (tmp_path / "data").mkdir()
    with pytest.raises(DataError, match="failed to load .FileNotFoundError"):
        prepare_dataset(NAME, cfg)
    assert not stamp_path(NAME, cfg).exists()
    assert prepare_dataset(NAME, cfg.model_copy(update={"download": True})) is True


def test_embedded_data_needs_no_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert prepare_dataset("digits", DataConfig()) is True
    assert not (tmp_path / "data").exists()  # nothing written for a data set without files
    with pytest.raises(DataError, match="data.root"):
        prepare_dataset("cifar10", DataConfig(root=str(tmp_path)))


def test_a_root_where_no_lock_can_be_taken_is_loaded_without_one(tmp_path, events, monkeypatch):
    class ReadOnly:  # what filelock meets on a read-only data folder
        def __init__(self, path):
            pass

        def acquire(self):
            raise PermissionError(13, "Read-only file system")

    monkeypatch.setattr("drive.data.prepare.FileLock", ReadOnly)
    root = tmp_path / "ro"
    root.mkdir()
    (root / "fake-archive").write_text("files\n")
    assert prepare_dataset(NAME, DataConfig(root=str(root))) is True
    assert [e["event"] for e in events()] == ["load"]


def test_variables_in_the_root_are_expanded_where_the_config_is_built(monkeypatch, tmp_path):
    monkeypatch.setenv("NODE_SCRATCH", str(tmp_path))
    assert DataConfig(root="$NODE_SCRATCH/data").root == f"{tmp_path}/data"
