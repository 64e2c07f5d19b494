"""Checkpoint files: atomic writes, the background writer, one copy per tensor."""

import subprocess
import sys
import textwrap

import pytest
import torch

from drive.state import CheckpointWriter, cpu_copy, load_state, pack_zeros, save_state, unpack_zeros


def test_a_tensor_referenced_twice_is_copied_and_saved_once(tmp_path):
    w = torch.randn(256, 256)
    state = cpu_copy({"stage": 0, "init": {"w": w}, "rewind": {"w": w}, "other": w.clone()})
    assert state["init"]["w"] is state["rewind"]["w"] and state["other"] is not state["init"]["w"]
    assert state["init"]["w"].data_ptr() != w.data_ptr()  # a copy, not the live tensor
    save_state(state, tmp_path / "s.pt")
    size = (tmp_path / "s.pt").stat().st_size
    assert 2 * w.numel() * 4 < size < 2.1 * w.numel() * 4  # two copies on disk, not three
    loaded = load_state(tmp_path / "s.pt")
    assert torch.equal(loaded["init"]["w"], w) and torch.equal(loaded["rewind"]["w"], w)


def test_the_writer_writes_in_the_background_what_was_submitted(tmp_path):
    live = torch.zeros(1000)
    with CheckpointWriter() as writer:
        writer.submit(cpu_copy({"stage": 1, "w": live}), tmp_path / "a.pt")
        live.add_(1)  # training goes on: the submitted copy is not affected
        writer.submit(cpu_copy({"stage": 2, "w": live}), tmp_path / "a.pt")  # waits for the first
        assert writer.wait() == tmp_path / "a.pt"
        assert writer.wait() is None and not writer.busy
    state = load_state(tmp_path / "a.pt")
    assert state["stage"] == 2 and torch.equal(state["w"], torch.ones(1000))
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]


def test_a_failed_write_leaves_the_previous_checkpoint_and_raises_on_the_training_thread(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    save_state({"stage": 1, "w": torch.ones(3)}, path)

    def half_written(obj, f):
        open(f, "wb").write(b"PK\x03\x04 half a zip")
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", half_written)
    writer = CheckpointWriter()
    writer.submit({"stage": 2, "w": torch.zeros(3)}, path)
    with pytest.raises(OSError, match="No space"):
        writer.wait()
    assert load_state(path)["stage"] == 1 and [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_a_process_killed_while_writing_leaves_the_previous_checkpoint(tmp_path):
    """A crash mid-write (the process dies) never leaves a partial checkpoint under the name."""
    path = tmp_path / "k.pt"
    save_state({"stage": 1, "w": torch.ones(3)}, path)
    script = textwrap.dedent(f"""
        import os, torch
        from drive.state import CheckpointWriter
        def dying_save(obj, f):
            open(f, "wb").write(b"PK\\x03\\x04 half a zip")
            os._exit(3)
        torch.save = dying_save
        CheckpointWriter().submit({{"stage": 2, "w": torch.zeros(3)}}, {str(path)!r})
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 3, done.stderr
    assert load_state(path)["stage"] == 1


def test_mostly_zero_tensors_are_stored_packed_and_come_back_bit_for_bit(tmp_path):
    torch.manual_seed(0)
    sparse = torch.randn(64, 32, 3, 3).contiguous(memory_format=torch.channels_last)
    sparse[torch.rand(sparse.shape) < 0.9] = 0.0
    sparse[:8] *= torch.where(sparse[:8] == 0, -1.0, 1.0)  # negative zeros, as masking makes them
    dense, small = torch.randn(4096), torch.zeros(10)
    state = {"stage": 0, "w": sparse, "again": sparse, "dense": dense, "small": small,
             "half": torch.zeros(4096, dtype=torch.bfloat16), "ints": torch.zeros(4096, dtype=torch.long)}
    packed = pack_zeros(state)
    assert isinstance(packed["w"], dict) and packed["again"] is packed["w"]
    assert packed["dense"] is dense and packed["small"] is small and packed["ints"] is state["ints"]
    save_state(state, tmp_path / "s.pt")
    assert (tmp_path / "s.pt").stat().st_size < 0.25 * sparse.numel() * 4 + 3 * 4096 * 4
    back = load_state(tmp_path / "s.pt")
    for key in ("w", "dense", "small", "half", "ints"):
        assert back[key].dtype == state[key].dtype and back[key].stride() == state[key].stride()
        assert torch.equal(back[key].reshape(-1).view(torch.uint8), state[key].reshape(-1).view(torch.uint8))
    assert torch.equal(back["w"], sparse) and back["w"].is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(torch.signbit(back["w"]), torch.signbit(sparse)) and torch.signbit(sparse[:8]).any()
    assert back["again"] is back["w"]
    assert torch.equal(unpack_zeros(pack_zeros(state))["half"], state["half"])
