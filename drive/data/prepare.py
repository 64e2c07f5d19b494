"""Preparing a data set where the trial runs: once per node, under a file lock.

A sweep prepares its data sets on the driver before Ray starts (so bad data fails fast), but on
a cluster a GPU node may join at any time and run several trials at once. Each trial therefore
calls :func:`prepare_dataset` first: the first trial on a node downloads and checks the files
while the others wait on a lock in ``data.root``, then find a stamp saying it is done and go on.
The lock is an OS file lock (``filelock``), released when its holder dies, so a node lost in the
middle of a download leaves nothing stuck; on a ``data.root`` shared by several nodes (NFS) it
also serialises them where the file system supports locks.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from filelock import FileLock

from drive.config import DataConfig
from drive.data.api import load_dataset

#: Stamps and locks live here, inside ``data.root``.
STATE_DIR = ".drive-sweeps"
#: Fields that change how batches are served, not which files are read or checked.
_LOADER_ONLY = {"augment", "crop_padding", "pad_mode", "flip", "on_device", "num_workers"}


def stamp_path(name: str, cfg: DataConfig) -> Path:
    """The stamp file that marks ``name`` with this data config as prepared under its root."""
    fields = {k: v for k, v in cfg.model_dump(mode="json").items() if k not in _LOADER_ONLY}
    digest = hashlib.sha256(json.dumps([name, fields], sort_keys=True).encode()).hexdigest()[:16]
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:60]
    return Path(cfg.root).expanduser() / STATE_DIR / f"{slug}-{digest}.prepared"


def prepare_dataset(name: str, cfg: DataConfig | None = None) -> bool:
    """Download (when ``cfg.download``) and check a data set once under ``cfg.root``.

    Idempotent and safe to call from many processes at once: one loads the data set (every
    download and check that loading does, and derived files such as Tiny ImageNet's tensor
    cache), the others wait for it and return. A data set whose root does not exist and is not
    to be downloaded (the embedded ``digits``, ``synthetic``) is simply loaded once.

    Returns:
        True when this call did the work, False when the data set was already prepared.

    Raises:
        DataError: as :func:`drive.data.load_dataset`; no stamp is written then.
    """
    cfg = cfg or DataConfig()
    stamp = stamp_path(name, cfg)
    if stamp.is_file():
        return False
    try:
        if not (stamp.parents[1].is_dir() or cfg.download):
            raise FileNotFoundError  # nothing on disk to share or race for
        stamp.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(stamp.with_suffix(".lock"))
        lock.acquire()
    except OSError:  # no root to download into, or a read-only one: nobody can write there either
        load_dataset(name, cfg)
        return True
    try:
        if stamp.is_file():
            return False
        load_dataset(name, cfg)
        stamp.write_text(json.dumps({"dataset": name, "pid": os.getpid()}) + "\n")
        return True
    finally:
        lock.release()
