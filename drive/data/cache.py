"""Derived tensors cached in one file next to the data, written atomically.

Used for what is slow to rebuild and deterministic (Tiny ImageNet's decoded images, generated
MNIST-1D): the first process to need it builds and saves it; a concurrent reader sees either
no file, the old file or the whole new one, never a partial one.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch


def load_or_build(path: Path, matches: Callable[[dict[str, Any]], bool],
                  build: Callable[[], dict[str, Any]], what: str) -> dict[str, Any]:
    """The dict saved at ``path`` when it loads (``weights_only``) and ``matches``, else ``build()``.

    A built dict is saved to ``path`` (its folder created) through a temporary file and
    ``os.replace``. A file that cannot be read is rebuilt with a warning; one that cannot be
    written only warns (the next run builds again).
    """
    if path.is_file():
        try:
            data = torch.load(path, weights_only=True)
            if isinstance(data, dict) and matches(data):
                return data
        except Exception as e:  # a truncated or foreign file: rebuild it
            warnings.warn(f"{what} cache {path} is unreadable ({e}); rebuilding it")
    data = build()
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(data, tmp)
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        warnings.warn(f"cannot write the {what} cache {path} ({e}); it will be built again next time")
    return data
