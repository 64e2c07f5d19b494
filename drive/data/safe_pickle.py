"""Reading (and, for tests and benchmarks, writing) the CIFAR "python version" batch files
without running pickled code.

The official archives hold Python 2 pickles (protocol 2) of plain dicts: byte-string keys,
byte-string and list values, and numpy arrays. Their only globals are
``numpy.core.multiarray._reconstruct``, ``numpy.ndarray`` and ``numpy.dtype``. A plain
``pickle.load`` of a file planted under ``data.root`` runs whatever callable the file names
(``os.system`` ...); :func:`load_batch` allows those three globals and nothing else, so such a
file is refused before any of its code runs.
"""

from __future__ import annotations

import pickle
import struct
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct

#: Every global the official CIFAR-10/100 batch files use (numpy 2 spells the first one
#: ``numpy._core``; files written by a current numpy name it that way).
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle names a global outside :data:`ALLOWED_GLOBALS`; nothing of it was run."""

    def __init__(self, module: str, name: str):
        super().__init__(f"{module}.{name}")
        self.global_name = f"{module}.{name}"


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals of the CIFAR batch format."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(module, name) from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not part of the CIFAR format")


def load_batch(path: str | Path) -> dict[str, Any]:
    """Read one CIFAR batch or meta file: a dict with str keys (Python 2 strings are decoded
    as latin-1, as torchvision does).

    Raises:
        UnsafePickleError: the file names any other global (no code of it has run).
        pickle.UnpicklingError, EOFError, ValueError, ...: the file is not a valid pickle.
    """
    with open(path, "rb") as f:
        data = RestrictedUnpickler(f, encoding="latin1").load()
    if not isinstance(data, dict):
        raise pickle.UnpicklingError(f"expected a dict, found {type(data).__name__}")
    return data


class _Python2Pickler(pickle._Pickler):
    """Protocol 2 as Python 2's cPickle wrote it: str and bytes as byte strings, arrays through
    ``numpy.core.multiarray._reconstruct``."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_byte_string(self, obj: str | bytes) -> None:
        data = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[str] = _save_byte_string
    dispatch[bytes] = _save_byte_string

    def save_global(self, obj: Any, name: str | None = None) -> None:
        if obj is _reconstruct:
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
        else:
            super().save_global(obj, name)


def dump_batch(data: dict[str, Any], file: str | Path | BinaryIO) -> None:
    """Write ``data`` in the on-disk format of the official CIFAR archives (test data sets and
    benchmarks use it to make files that :func:`load_batch` and torchvision both read)."""
    if isinstance(file, (str, Path)):
        with open(file, "wb") as f:
            _Python2Pickler(f, protocol=2).dump(data)
    else:
        _Python2Pickler(file, protocol=2).dump(data)
