"""Bad command-line input: its error type, the parser that prints it as one line, argument types,
and the check that an output path can be written before any work starts."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

#: Exit code of every kind of bad input.
USAGE_ERROR = 2


class UsageError(Exception):
    """Bad input: printed as one line per problem, exit code 2."""

    def __init__(self, lines: list[str] | str):
        self.lines = [lines] if isinstance(lines, str) else list(lines)
        super().__init__("\n".join(self.lines))

    def __reduce__(self):
        return (type(self), (self.lines,))


def input_errors() -> tuple[type[Exception], ...]:
    """Every exception type that means 'the input is wrong' (each is one line)."""
    from analysis.results import ResultsError
    from drive.errors import InputError

    return (UsageError, InputError, ResultsError)


def check_writable(path: Path, field: str, folder: bool = False) -> None:
    """Fail early (before any work) when the file (or ``folder``) ``path`` cannot be written."""
    if folder and path.exists() and not path.is_dir():
        raise UsageError(f"{field}: {path} is a file; give a folder")
    if not folder and path.is_dir():
        raise UsageError(f"{field}: {path} is a folder; give a file name")
    folder = path if folder else path.parent
    created = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".drive-sweep-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise UsageError(f"{field}: cannot write to {folder} ({e.strerror or e})") from None
    finally:  # nothing is left behind by the check: a later failure must not leave empty folders
        for p in created:
            try:
                p.rmdir()
            except OSError:
                pass


class Parser(argparse.ArgumentParser):
    """argparse with the tool's one-line errors (``drive-sweep: error: ...``, exit 2)."""

    def error(self, message: str):
        print(f"drive-sweep: error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(USAGE_ERROR)


def number(text: str) -> float:
    """An argument that must be a number."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None


def batches(text: str) -> list[int]:
    """An argument of batch sizes, ``1,256``."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be batch sizes like 1,256, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"must be batch sizes of at least 1, got {text!r}")
    return values
