"""What ``drive-sweep --version`` prints: the package version, and the git commit of the code
when it runs from a git checkout (``-dirty`` when files were changed)."""

from __future__ import annotations

import argparse
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGE = "drive-sweeps"
#: The folder that holds ``drive/``, ``sweeps/`` and ``analysis/``: a checkout's root.
SOURCE = Path(__file__).resolve().parent.parent


def package_version() -> str:
    """The installed distribution's version ('unknown' when it is not installed)."""
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        return "unknown"


def git_commit(folder: Path = SOURCE) -> str | None:
    """The short commit hash of the checkout at ``folder``, with ``-dirty`` when a tracked file
    differs from it; None without git or outside a checkout."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()

    try:
        # only a checkout whose top is this folder: an installed copy inside some other
        # repository (a site-packages in a project's tree) is not that repository's code
        if Path(git("rev-parse", "--show-toplevel")).resolve() != folder.resolve():
            return None
        commit = git("rev-parse", "--short", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}-dirty" if dirty else commit


def version_line(folder: Path = SOURCE) -> str:
    """``drive-sweep 0.1.0 (git 1a2b3c4-dirty)``, or without the commit outside a checkout."""
    commit = git_commit(folder)
    return f"drive-sweep {package_version()}" + (f" (git {commit})" if commit else "")


class VersionAction(argparse.Action):
    """``--version``: print :func:`version_line` and exit 0 (git runs only when asked)."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(version_line())
        parser.exit()
