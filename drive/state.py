"""Saving and loading an experiment's resumable state.

A state is a plain dict of tensors, numbers, strings, lists and dicts, so it loads with
``torch.load(..., weights_only=True)``: no pickled code runs when a checkpoint is read.

Checkpoints are lean: a tensor referenced twice in a state is copied and stored once
(:func:`cpu_copy` keeps the aliasing, and ``torch.save`` writes shared storage once), masks are
packed 8 per byte (:mod:`drive.masks`), a float tensor that is mostly zeros (a pruned layer's
weights and momentum) is stored as a bitmap of its non-zero entries plus their values
(:func:`pack_zeros`, lossless to the bit, -0.0 included), and :class:`CheckpointWriter`
serialises and writes on a background thread, so training goes on while the file is written.
"""

from __future__ import annotations

import math
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from drive.bits import pack_bits, unpack_bits
from drive.config import ExperimentConfig
from drive.errors import CheckpointError


def _map_leaves(obj: Any, is_leaf: Callable[[Any], bool], fn: Callable[[Any], Any],
                memo: dict[int, Any]) -> Any:
    """``obj`` with ``fn`` applied to every leaf inside its dicts, lists and tuples; a leaf that
    appears several times (the same object) is mapped once and the result shared."""
    if is_leaf(obj):
        if id(obj) not in memo:
            memo[id(obj)] = fn(obj)
        return memo[id(obj)]
    if isinstance(obj, dict):
        return {k: _map_leaves(v, is_leaf, fn, memo) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_map_leaves(v, is_leaf, fn, memo) for v in obj)
    return obj


def cpu_copy(obj: Any) -> Any:
    """A deep copy with every tensor cloned to the CPU (so later training cannot change it).

    A tensor that appears several times in ``obj`` is copied once and the copy shared, so the
    saved file holds it once.
    """
    return _map_leaves(obj, torch.is_tensor, lambda t: t.detach().to("cpu", copy=True), {})


_FLOATS = (torch.float64, torch.float32, torch.float16, torch.bfloat16)
_PACKED = "__zeros_packed__"  # marks a tensor stored as non-zero bitmap + values
MIN_PACKED_NUMEL = 1024  # smaller tensors are stored as they are
MAX_NONZERO_SHARE = 0.5  # packing pays when at least half the entries are zero


def pack_zeros(obj: Any) -> Any:
    """``obj`` with every mostly-zero float CPU tensor replaced by a dict of its shape, strides,
    non-zero bitmap (8 per byte) and non-zero values (and a bitmap of the negative zeros, where
    there are any), everything else as it is: :func:`unpack_zeros` restores the bits exactly."""
    return _map_leaves(obj, torch.is_tensor, _pack_tensor, {})


def _pack_tensor(t: torch.Tensor) -> Any:
    dense_layout = t.is_contiguous() or (t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last))
    if (t.dtype not in _FLOATS or t.numel() < MIN_PACKED_NUMEL or t.device.type != "cpu"
            or not dense_layout or int(torch.count_nonzero(t)) > MAX_NONZERO_SHARE * t.numel()):
        return t  # (count_nonzero reads any layout in place: a dense tensor costs one pass)
    flat = t.detach().contiguous().view(-1)
    nonzero = flat != 0
    packed = {_PACKED: True, "shape": list(t.shape), "stride": list(t.stride()),
              "nonzero": pack_bits(nonzero), "values": flat[nonzero]}
    negative_zero = torch.signbit(flat).logical_and_(nonzero.logical_not_())  # masking -w gives -0.0
    if bool(negative_zero.any()):
        packed["negative_zero"] = pack_bits(negative_zero)
    return packed


def unpack_zeros(obj: Any) -> Any:
    """The inverse of :func:`pack_zeros`: tensors in their original shape, strides and bits."""
    return _map_leaves(obj, _is_packed, _unpack_tensor, {})


def _is_packed(obj: Any) -> bool:
    return isinstance(obj, dict) and obj.get(_PACKED) is True


def _unpack_tensor(packed: dict[str, Any]) -> torch.Tensor:
    values, shape = packed["values"], packed["shape"]
    numel = math.prod(shape)
    flat = torch.zeros(numel, dtype=values.dtype)
    if "negative_zero" in packed:
        flat[unpack_bits(packed["negative_zero"], numel)] = -0.0
    flat[unpack_bits(packed["nonzero"], numel)] = values
    out = torch.empty_strided(shape, packed["stride"], dtype=values.dtype)
    return out.copy_(flat.view(shape))


def save_state(state: dict[str, Any], path: str | Path) -> None:
    """Write ``state`` (a CPU copy) to ``path`` atomically, mostly-zero tensors packed: a crash
    never leaves half a checkpoint, since it is written to ``path.tmp`` and renamed over
    ``path`` only once complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save(pack_zeros(state), tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class CheckpointWriter:
    """Writes states with :func:`save_state` on a background thread, one at a time, in order.

    ``submit`` returns at once; the state must not be changed afterwards, so pass a copy
    (``Experiment.state_dict()`` is one). A new ``submit`` first waits for the previous write,
    so at most one state is held in memory besides the live one. An error in the background
    is raised by the next ``submit`` or ``wait``; the previous checkpoint file is then intact.
    """

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._path: Path | None = None
        self._error: BaseException | None = None

    def _write(self, state: dict[str, Any], path: Path) -> None:
        try:
            save_state(state, path)
        except BaseException as e:  # noqa: BLE001 - handed to the training thread
            self._error = e

    def submit(self, state: dict[str, Any], path: str | Path) -> None:
        """Start writing ``state`` to ``path`` (after the previous write has finished)."""
        self.wait()
        self._path = Path(path)
        self._thread = threading.Thread(target=self._write, args=(state, self._path),
                                        name="checkpoint-writer", daemon=False)
        self._thread.start()

    @property
    def busy(self) -> bool:
        """A write is still in progress."""
        return self._thread is not None and self._thread.is_alive()

    def wait(self) -> Path | None:
        """Block until the pending write is on disk; return its path (None when none was)."""
        if self._thread is None:
            return None
        self._thread.join()
        path, error = self._path, self._error
        self._thread = self._path = self._error = None
        if error is not None:
            raise error
        return path

    def __enter__(self) -> CheckpointWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.wait()


def load_state(path: str | Path) -> dict[str, Any]:
    """Read a state saved by :func:`save_state`, with ``weights_only=True``."""
    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint: file not found: {path}") from None
    except Exception as e:  # noqa: BLE001 - any unreadable file gets the same one-line error
        raise CheckpointError(f"checkpoint: cannot read {path}: {why_unreadable(e)}") from None
    if not isinstance(state, dict) or "stage" not in state:
        raise CheckpointError(f"checkpoint: {path} is not an experiment state")
    try:
        return unpack_zeros(state)
    except (KeyError, TypeError, RuntimeError, ValueError) as e:
        raise CheckpointError(f"checkpoint: {path} holds a damaged packed tensor ({e})") from None


def why_unreadable(error: Exception) -> str:
    """Why ``torch.load(..., weights_only=True)`` failed, in a few plain words: torch's own
    text is a paragraph of advice on loading untrusted files without ``weights_only``."""
    text = str(error)
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if found:
        return (f"it holds a {found[1]} object, which no experiment state holds (it is loaded "
                "with weights_only=True, tensors and plain values only)")
    first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    plain = "weights_only" not in text and len(first) <= 100
    return "not a PyTorch checkpoint, or a damaged one" + (f" ({first})" if plain else "")


def check_same_experiment(saved: dict[str, Any], config: ExperimentConfig) -> None:
    """Raise :class:`CheckpointError` naming the fields in which the config a state was saved
    with differs from ``config``. Fields added since the state was saved count at their
    defaults, and where a node keeps its data files (``data.root``, ``data.download``) is not
    part of the experiment (a trial may resume on another node)."""
    saved, current = _comparable(_with_defaults(saved)), _comparable(config.model_dump(mode="json"))
    if saved != current:
        diff = sorted(k for k in saved if saved[k] != current.get(k))
        raise CheckpointError(f"checkpoint: made with a different config (differs in: {', '.join(diff)})")


def same_experiment(saved: dict[str, Any], config: ExperimentConfig) -> bool:
    """Whether a config saved with a state or a record is the experiment ``config`` (see
    :func:`check_same_experiment`)."""
    try:
        check_same_experiment(saved, config)
    except CheckpointError:
        return False
    return True


class FileCheckpoints:
    """A run's checkpoint in one file: resumed from when it exists, rewritten (in the
    background, atomically) at every checkpoint (``drive.run.Checkpoints``)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.writer = CheckpointWriter()

    def load(self) -> dict[str, Any] | None:
        return load_state(self.path) if self.path.exists() else None

    def save(self, state: dict[str, Any]) -> None:
        self.writer.submit(state, self.path)

    def close(self) -> None:
        self.writer.wait()


def _with_defaults(config: dict[str, Any]) -> dict[str, Any]:
    try:
        return ExperimentConfig.model_validate(config).model_dump(mode="json")
    except Exception:  # noqa: BLE001 - then it is compared as saved and the difference named
        return config


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    return {**config, "data": {k: v for k, v in config.get("data", {}).items() if k not in ("root", "download")}}
