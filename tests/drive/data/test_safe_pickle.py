"""The restricted unpickler of the CIFAR batch format."""

import pickle
import pickletools

import numpy as np
import pytest

from drive.data.safe_pickle import UnsafePickleError, dump_batch, load_batch


def globals_of(data: bytes) -> set[str]:
    return {arg.replace(" ", ".") for op, arg, _ in pickletools.genops(data) if op.name == "GLOBAL"}


def test_the_written_format_is_python2_protocol2_with_the_official_globals(tmp_path):
    entry = {"batch_label": "training batch 1 of 5", "labels": [3, 1], "filenames": ["a.png", "b.png"],
             "data": np.arange(2 * 3072, dtype=np.uint64).astype(np.uint8).reshape(2, 3072)}
    dump_batch(entry, tmp_path / "batch")
    raw = (tmp_path / "batch").read_bytes()
    assert raw.startswith(b"\x80\x02}") and b"U\x04data" in raw  # protocol 2, byte-string keys
    assert globals_of(raw) == {"numpy.core.multiarray._reconstruct", "numpy.ndarray", "numpy.dtype"}
    back = load_batch(tmp_path / "batch")
    assert back.keys() == entry.keys() and back["labels"] == [3, 1] and back["filenames"] == ["a.png", "b.png"]
    assert back["data"].dtype == np.uint8 and np.array_equal(back["data"], entry["data"])


def test_arrays_pickled_by_a_current_numpy_are_read_too(tmp_path):
    (tmp_path / "batch").write_bytes(pickle.dumps({"data": np.ones((2, 2), np.float32)}, protocol=4))
    assert load_batch(tmp_path / "batch")["data"].sum() == 4


@pytest.mark.parametrize("payload", [
    pickle.dumps(eval, protocol=2),                       # a bare global
    b"cos\nsystem\n(S'true'\ntR.",                        # protocol 0, os.system
    b"\x80\x02cbuiltins\ngetattr\nq\x00.",
    pickle.dumps(np.array([1, 2]), protocol=5),           # numpy's own pickle-5 path: not the format
])
def test_any_other_global_is_refused(tmp_path, payload):
    (tmp_path / "planted").write_bytes(payload)
    with pytest.raises(UnsafePickleError):
        load_batch(tmp_path / "planted")


def test_a_refused_global_is_named_and_nothing_runs(tmp_path):
    marker = tmp_path / "ran"
    payload = f"cos\nsystem\n(Vtouch {marker}\ntR.".encode()
    (tmp_path / "planted").write_bytes(payload)
    with pytest.raises(UnsafePickleError) as err:
        load_batch(tmp_path / "planted")
    assert err.value.global_name == "os.system" and not marker.exists()


def test_a_pickle_of_something_else_than_a_dict_is_rejected(tmp_path):
    dump_batch([1, 2], tmp_path / "list")
    with pytest.raises(pickle.UnpicklingError, match="expected a dict"):
        load_batch(tmp_path / "list")
