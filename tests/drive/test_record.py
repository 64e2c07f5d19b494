"""drive.record: the result contract, written line by line and read back."""

import json
import pickle

import pytest

from drive.config import build_config
from drive.errors import ConfigError, DataError, ModelError, StorageError, one_line
from drive.experiment import Experiment
from drive.record import Recorder, last_status, parse_record, read_record
from drive.run import record_experiment

FAST = {"device": "cpu", "method": "magnitude", "sparsity": 0.5, "model_args": {"width": 0.5},
        "train": {"epochs": 2, "batch_size": 128}}


def lines(path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_a_finished_run_reads_back_as_its_metrics(tmp_path):
    cfg = build_config({**FAST, "data": {"val_fraction": 0.1}})
    rec = Recorder(tmp_path / "r.jsonl")
    rec.start(cfg, provenance={"git_commit": "abc"}, trial_id="t1")
    metrics = record_experiment(Experiment(cfg), rec)
    record = read_record(tmp_path / "r.jsonl")
    assert (record.status, record.attempts, record.start["trial_id"]) == ("finished", 1, "t1")
    back = record.metrics()
    for key in ("test_acc", "val_acc", "density", "layer_density", "prune_time_s", "levels"):
        assert back[key] == metrics[key]
    assert back["history"] == metrics["history"] and back["config"] == metrics["config"]
    assert back["provenance"] == {"git_commit": "abc"} and back["epochs_done"] == 2


def test_an_exception_writes_errored_with_one_line_then_propagates(tmp_path):
    class Boom:
        def run(self, callback):
            raise ConfigError(["a.b: first problem", "c: second problem"])

    rec = Recorder(tmp_path / "r.jsonl")
    rec.start(build_config(FAST))
    with pytest.raises(ConfigError):
        record_experiment(Boom(), rec)
    end = lines(tmp_path / "r.jsonl")[-1]
    assert (end["event"], end["status"]) == ("end", "errored")
    assert end["reason"] == "ConfigError: a.b: first problem; c: second problem"


def test_a_stop_writes_nothing(tmp_path):
    class Stopped:
        def run(self, callback):
            raise SystemExit(0)  # how Tune stops a function trainable

    rec = Recorder(tmp_path / "r.jsonl")
    rec.start(build_config(FAST))
    with pytest.raises(SystemExit):
        record_experiment(Stopped(), rec)
    assert read_record(tmp_path / "r.jsonl").status == "running"


def test_a_resumed_attempt_replaces_the_history_after_its_checkpoint(tmp_path):
    path = tmp_path / "r.jsonl"
    rec = Recorder(path)
    cfg = build_config(FAST)
    rec.start(cfg)
    for done in (1, 2, 3):
        rec.progress({"phase": "train", "epochs_done": done})
    rec.end_status("interrupted", "Ctrl-C")
    assert last_status(path.read_text()) == "interrupted"
    rec.start(cfg, resumed={"epochs_done": 2, "history": 2})  # the checkpoint after epoch 2
    assert last_status(path.read_text()) == "running"
    for done in (3, 4):
        rec.progress({"phase": "train", "epochs_done": done}, level={"level": 1, "test_acc": 0.5})
    with path.open("a") as f:
        f.write('{"event": "epoch", "epochs_do')  # a line cut short by a crash
    record = read_record(path)
    assert [h["epochs_done"] for h in record.history] == [1, 2, 3, 4]
    assert (record.status, record.attempts, record.end) == ("running", 2, None)
    assert record.levels == [{"level": 1, "test_acc": 0.5}]  # repeated level lines: one level
    # a fresh restart (no checkpoint, a new writer after the crash) starts the history over
    Recorder(path).start(cfg)
    assert read_record(path).history == []


def test_files_that_are_not_records(tmp_path):
    (tmp_path / "a.json").write_text('{"event": "epoch"}\n')
    (tmp_path / "b.json").write_text("[1, 2]")
    (tmp_path / "c.json").write_text('{"event": "start"}\n')  # no record version
    assert all(read_record(tmp_path / n) is None for n in ("a.json", "b.json", "c.json"))
    assert parse_record([b"garbage", b'{"event": "epoch"}']) is None


def test_nan_is_written_as_null_so_the_file_stays_json(tmp_path):
    rec = Recorder(tmp_path / "r.jsonl")
    rec.progress({"train_loss": float("nan")}, level={"level": 1, "layer_density": {"a": float("inf"), "b": 1.0}})
    first, level = lines(tmp_path / "r.jsonl")
    assert first["train_loss"] is None and level["layer_density"] == {"a": None, "b": 1.0}


def test_the_writer_refuses_a_key_the_schema_does_not_name(tmp_path):
    rec = Recorder(tmp_path / "r.jsonl")
    with pytest.raises(ValueError, match="record: a epoch line has no key bogus"):
        rec.progress({"train_loss": 1.0, "bogus": 2})
    assert not (tmp_path / "r.jsonl").exists()  # nothing half-written


def test_unwritable_storage_is_a_storage_error(tmp_path):
    rec = Recorder(tmp_path / "r.jsonl")
    rec.write("x")
    (tmp_path / "r.jsonl").unlink()
    (tmp_path / "r.jsonl").mkdir()  # the file is gone and cannot come back: any user gets an OSError
    with pytest.raises(StorageError, match="storage: cannot write .*r.jsonl"):
        rec.write("y")


@pytest.mark.parametrize("error", [
    ConfigError(["a: one", "b: two"]), DataError("data.root: missing"), ModelError("model: unknown"),
    StorageError("storage: full"),
])
def test_errors_cross_process_boundaries_with_their_message_intact(error):
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is type(error) and str(back) == str(error)
    assert one_line(back) == one_line(error) and "\n" not in one_line(back)
