"""Saving and loading an experiment's resumable state.

A state is a plain dict of tensors, numbers, strings, lists and dicts, so it loads with
``torch.load(..., weights_only=True)``: no pickled code runs when a checkpoint is read.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the config; one line."""


def cpu_copy(obj: Any) -> Any:
    """A deep copy with every tensor cloned to the CPU (so later training cannot change it)."""
    if torch.is_tensor(obj):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: cpu_copy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(cpu_copy(v) for v in obj)
    return obj


def save_state(state: dict[str, Any], path: str | Path) -> None:
    """Write ``state`` to ``path`` atomically (a crash never leaves half a checkpoint)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_state(path: str | Path) -> dict[str, Any]:
    """Read a state saved by :func:`save_state`, with ``weights_only=True``."""
    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint: file not found: {path}") from None
    except Exception as e:  # noqa: BLE001 - any unreadable file gets the same one-line error
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"checkpoint: cannot read {path} ({reason[:200]})") from None
    if not isinstance(state, dict) or "stage" not in state:
        raise CheckpointError(f"checkpoint: {path} is not an experiment state")
    return state
