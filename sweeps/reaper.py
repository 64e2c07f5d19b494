"""Local Ray's processes end with the driver that started them, however it ends (kill -9 too).

Embedded local Ray runs its GCS, raylet, dashboard, agents and workers as processes of their
own. A driver that dies without shutting Ray down (kill -9, the OOM killer) leaves some of them
behind: ``ray::DashboardAgent`` and ``ray::RuntimeEnvAgent`` go on with parent 1, holding
memory and ports. So before the driver starts Ray, :func:`watch` starts a watcher process.
Ray's processes are known to it two ways, whatever their process group or parent: by a mark in
the environment they start with (``DRIVE_SWEEP_RAY=<token>``, :func:`marked`; every process Ray
starts inherits it), and, for those that overwrite their environment with their process title
(the agents), by the files they hold open in Ray's session folder, which the driver names to
the watcher once Ray is up (:func:`add_session`). The watcher waits for the driver to end -- its
end of a pipe closes then, however the driver ends -- and stops every such process: SIGTERM,
and SIGKILL for those alive :data:`GRACE_S` later. After a normal shutdown none is left.

Linux only (it reads ``/proc``); elsewhere no watcher is started.
Run as a script (``python reaper.py TOKEN``) this module is the watcher: it imports only the
standard library.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: The environment variable that marks the processes of one driver's Ray.
MARK = "DRIVE_SWEEP_RAY"
#: Seconds between SIGTERM and SIGKILL.
GRACE_S = 3.0

_watcher: subprocess.Popen | None = None
_token: str | None = None


def watch() -> str | None:
    """Start this process's watcher (once per process) and return its token, or None where no
    watcher can run (no ``/proc``)."""
    global _watcher, _token
    if _token is not None:
        return _token
    if not Path("/proc/self/environ").is_file():
        return None
    token = f"{os.getpid()}-{secrets.token_hex(6)}"  # the driver's pid first: never reaped
    env = {k: v for k, v in os.environ.items() if k != MARK}
    # its own session: the terminal's Ctrl-C or hang-up to the driver's group does not reach it;
    # the pipe's write end stays here (not inherited: close-on-exec) and closes when we end
    _watcher = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), token],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    _token = token
    return token


@contextmanager
def marked(token: str | None) -> Iterator[None]:
    """The processes started inside carry ``token``'s mark (Ray's, started by ``ray.init``);
    the driver's later children do not."""
    if token is None:
        yield
        return
    before = os.environ.get(MARK)
    os.environ[MARK] = token
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(MARK, None)
        else:
            os.environ[MARK] = before


def add_session(session_dir: str | None) -> None:
    """Name Ray's session folder to this process's watcher (its processes hold files there)."""
    if _watcher is None or not session_dir or _watcher.stdin is None:
        return
    try:
        _watcher.stdin.write(f"{session_dir}\n".encode())
        _watcher.stdin.flush()
    except OSError:  # the watcher is gone: nothing else to do
        pass


def ray_processes(token: str, sessions: list[str]) -> list[int]:
    """The live processes (zombies have no environment and no files) that carry ``token``'s mark
    or hold a file in one of the session folders; never the watcher, nor the driver (which
    holds files there too, and may still be ending when its pipe closes)."""
    needle = f"{MARK}={token}".encode()
    folders = tuple(f"{s.rstrip('/')}/" for s in sessions)
    spared = {str(os.getpid()), token.split("-")[0]}
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or entry in spared:
            continue
        try:
            environ = Path("/proc", entry, "environ").read_bytes()
            if needle in environ.split(b"\0") or (folders and _holds_file_in(entry, folders)):
                found.append(int(entry))
        except OSError:  # gone, or another user's
            continue
    return found


def _holds_file_in(pid: str, folders: tuple[str, ...]) -> bool:
    fds = Path("/proc", pid, "fd")
    for fd in os.listdir(fds):
        try:
            if os.readlink(fds / fd).startswith(folders):
                return True
        except OSError:
            continue
    return False


def reap(token: str, sessions: list[str], grace: float = GRACE_S) -> list[int]:
    """Stop every process of ``token``'s Ray (:func:`ray_processes`): SIGTERM, then SIGKILL for
    those alive after ``grace`` seconds. Returns the processes it signalled."""
    pids = ray_processes(token, sessions)
    _signal(pids, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and ray_processes(token, sessions):
        time.sleep(0.1)
    _signal(ray_processes(token, sessions), signal.SIGKILL)
    return pids


def _signal(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass


def _main(token: str) -> None:
    """The watcher: read the session folders the driver names until its end of stdin closes
    (the driver ended), then reap its Ray."""
    for sig in (signal.SIGINT, signal.SIGHUP):  # the terminal's, meant for the driver
        signal.signal(sig, signal.SIG_IGN)
    sessions = [line.strip() for line in sys.stdin if line.strip()]
    reap(token, sessions)


if __name__ == "__main__":
    _main(sys.argv[1])
