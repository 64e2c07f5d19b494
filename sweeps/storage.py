"""Reading and writing sweep files on local folders, NFS, S3 or GCS through pyarrow's filesystems
(the same layer Ray Tune uses for its storage path)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import pyarrow.fs as pafs

from drive.errors import StorageError
from drive.record import Sink, local_sink
from drive.schema import RECORD_FILE
from sweeps.spec import REMOTE_SCHEMES, SweepError

if TYPE_CHECKING:  # pandas only where results are loaded: a dry run needs none of it
    import pandas as pd

#: Files of a trial folder that the analysis needs (no checkpoints).
RESULT_FILES = (RECORD_FILE,)


def _fs(path: str) -> tuple[pafs.FileSystem, str]:
    if path.startswith(REMOTE_SCHEMES):
        return pafs.FileSystem.from_uri(path)
    return pafs.LocalFileSystem(), str(Path(path).expanduser().resolve())


def write_text(path: str, text: str) -> None:
    fs, p = _fs(path)
    fs.create_dir(p.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(p) as f:
        f.write(text.encode())


def read_text(path: str) -> str:
    fs, p = _fs(path)
    if fs.get_file_info(p).type != pafs.FileType.File:
        raise FileNotFoundError(path)
    with fs.open_input_stream(p) as f:
        return f.read().decode()


def experiment_exists(path: str) -> bool:
    """Whether ``path`` already holds a sweep (its spec or Tune's experiment state)."""
    fs, p = _fs(path)
    if fs.get_file_info(p).type != pafs.FileType.Directory:
        return False
    names = [info.base_name for info in fs.get_file_info(pafs.FileSelector(p))]
    return any(n == "sweep.yaml" or n.startswith("experiment_state") for n in names)


def check_free(path: str) -> None:
    """Refuse (one ``name:`` line) an experiment folder that already holds a sweep."""
    if experiment_exists(path):
        raise SweepError([f"name: {path} already holds a sweep; continue it with "
                          f"`drive-sweep resume {path}` or choose another --name"])


def ensure_writable(path: str) -> None:
    """Fail with one ``storage:`` line before any work when files cannot be written in the
    folder ``path`` (created when missing; nothing is left in it)."""
    probe = f"{path.rstrip('/')}/.drive-sweep-write-test-{os.getpid()}"
    fs, folder = _fs(path)
    created = [] if path.startswith(REMOTE_SCHEMES) else _missing_parents(Path(folder))
    try:
        write_text(probe, "")
        fs.delete_file(_fs(probe)[1])
        for made in created:  # leave no trace: the folders come back when the sweep starts
            made.rmdir()
    except OSError as e:
        raise SweepError([f"storage: cannot write to {path} ({_first_line(e)})"]) from None


def _missing_parents(folder: Path) -> list[Path]:
    """``folder`` and its ancestors that do not exist yet, deepest first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def _first_line(e: OSError) -> str:
    return e.strerror or (str(e).splitlines()[0] if str(e) else type(e).__name__)


def claim(path: str, text: str, name: str) -> bool:
    """Create ``<path>/<name>`` holding ``text`` unless it exists; True when this call made it.

    Atomic on local folders and NFS (exclusive create), so of two launches with the same name
    exactly one goes ahead; on object stores (S3, GCS) it is a check, then a write.
    """
    target = f"{path.rstrip('/')}/{name}"
    try:
        if path.startswith(REMOTE_SCHEMES):
            fs, p = _fs(target)
            if fs.get_file_info(p).type != pafs.FileType.NotFound:
                return False
            write_text(target, text)
            return True
        Path(path).mkdir(parents=True, exist_ok=True)
        with open(target, "x") as f:
            f.write(text)
        return True
    except FileExistsError:
        return False
    except OSError as e:
        raise SweepError([f"storage: cannot write to {path} ({_first_line(e)})"]) from None


def remove_claim(path: str, name: str) -> None:
    """Undo :func:`claim` (a launch that failed before Tune started leaves no folder)."""
    fs, p = _fs(f"{path.rstrip('/')}/{name}")
    try:
        fs.delete_file(p)
        folder = p.rsplit("/", 1)[0]
        if not fs.get_file_info(pafs.FileSelector(folder)):
            fs.delete_dir(folder)
    except OSError:
        pass


def record_sink(path: str) -> Sink:
    """The record at ``path``: local folders and NFS append to the file; object stores (S3,
    GCS) rewrite the object with every line (a record is small). Write errors are
    :class:`~drive.errors.StorageError`."""
    if not path.startswith(REMOTE_SCHEMES):
        return local_sink(Path(path).expanduser())
    try:
        existing = read_text(path)
    except FileNotFoundError:
        existing = ""
    except OSError as e:
        raise StorageError(f"storage: cannot read {path} ({_first_line(e)})") from None
    text = [existing if not existing or existing.endswith("\n") else existing + "\n"]

    def write() -> None:
        try:
            write_text(path, "".join(text))
        except OSError as e:
            raise StorageError(f"storage: cannot write {path} ({_first_line(e)})") from None

    def append(line: str) -> None:
        text.append(line)
        write()

    def reset() -> None:
        text[:] = []
        sink.existing = ""
        write()

    sink = Sink(append, existing, reset)
    return sink


def is_remote(path: str) -> bool:
    """Whether ``path`` is an object-store or other URI rather than a local (or NFS) folder."""
    return str(path).startswith(REMOTE_SCHEMES)


def trial_records(path: str) -> list[str]:
    """The record of every trial folder in the experiment folder ``path`` (local or a URI)."""
    fs, root = _fs(path)
    prefix = path.rstrip("/") if is_remote(path) else root
    records = []
    for info in fs.get_file_info(pafs.FileSelector(root, allow_not_found=True)):
        if (info.type == pafs.FileType.Directory and
                fs.get_file_info(f"{info.path}/{RECORD_FILE}").type == pafs.FileType.File):
            records.append(f"{prefix}/{info.base_name}/{RECORD_FILE}")
    return sorted(records)


def exists(path: str) -> bool:
    """Whether ``path`` (a local path or a URI) is a file or a folder."""
    fs, p = _fs(path)
    return fs.get_file_info(p).type != pafs.FileType.NotFound


@contextmanager
def local_copy(path: str) -> Iterator[Path]:
    """A local folder with the experiment's result files: ``path`` itself when local; else a
    temporary copy of every trial's result files (no checkpoints), deleted on leaving the
    context. The copy has the experiment folder's own name, so the results read from it carry
    that name (the ``experiment`` column)."""
    if not is_remote(path):
        yield Path(path).expanduser().resolve()
        return
    fs, root = _fs(path)
    root = root.rstrip("/")
    with tempfile.TemporaryDirectory(prefix="drive-sweep-results-") as tmp:
        target = Path(tmp) / (PurePosixPath(root).name or "experiment")
        target.mkdir()
        for info in fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True)):
            if info.type == pafs.FileType.File and info.base_name in RESULT_FILES:
                dest = target / info.path[len(root):].lstrip("/")
                dest.parent.mkdir(parents=True, exist_ok=True)
                with fs.open_input_stream(info.path) as f:
                    dest.write_bytes(f.read())
        yield target


def load_results(paths: list[str]) -> pd.DataFrame:
    """``analysis.results.load`` of local experiment folders and URIs (``s3://...``) alike; the
    ``path`` column of a remote trial holds its URI, not the temporary copy it was read from."""
    from analysis.results import load

    with ExitStack() as stack:
        copies = {p: stack.enter_context(local_copy(p)) for p in paths}
        frame = load(list(copies.values()))
        for uri, copy in copies.items():
            if is_remote(uri):
                frame["path"] = frame["path"].str.replace(str(copy), uri.rstrip("/"), n=1, regex=False)
    return frame


def upload(local_file: Path, path: str) -> None:
    """Copy a local file to ``path`` (a no-op when that is the same local file)."""
    fs, p = _fs(path)
    if isinstance(fs, pafs.LocalFileSystem) and Path(p) == local_file.resolve():
        return
    fs.create_dir(p.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(p) as f:
        f.write(local_file.read_bytes())
