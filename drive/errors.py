"""Every error the tool raises on purpose, in one place.

An :class:`InputError` means "the input is wrong" (a config field, a file, a path, a name): its
``str()`` is one line per problem, each naming the field at fault, and the command line prints
those lines and exits 2 before anything is written. The others end a run for a reason the record
states (:class:`ScoreError`, :class:`Diverged`). Every error pickles with its message intact,
since errors cross process boundaries (Ray trials).

An :class:`Interrupted` is Ctrl-C or a signal that asked a run to stop.

This module imports nothing of the project and no third-party package.
"""

from __future__ import annotations

import signal


def one_line(error: BaseException, limit: int = 300) -> str:
    """``Type: message`` on one line (a multi-line message joined with ``; ``), at most ``limit``."""
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    text = f"{type(error).__name__}: {'; '.join(lines)}" if lines else type(error).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


class InputError(Exception):
    """Bad input: ``str()`` is one line per problem (``field: what is allowed``)."""

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))

    def __reduce__(self):  # picklable with every line intact
        return (type(self), (self.problems,))


class ConfigError(InputError, ValueError):
    """An invalid experiment configuration."""


class RegistryError(InputError, LookupError):
    """An unknown name or an import path that does not resolve."""


class _OneLine(InputError, ValueError):
    """An input error whose message is squeezed onto one line."""

    def __init__(self, message: list[str] | str):
        lines = [message] if isinstance(message, str) else list(message)
        super().__init__([" ".join(line.split()) for line in lines])


class DataError(_OneLine):
    """A data set that cannot be loaded; the line starts with the field at fault
    (``data.root: ...``, ``dataset: ...``)."""


class ModelError(_OneLine):
    """A model that cannot be built (``model: ...`` or ``model_args: ...``)."""


class CheckpointError(InputError, ValueError):
    """A checkpoint that cannot be read or does not fit the config."""


class StorageError(InputError, OSError):
    """A record or a sweep's storage that cannot be written; the line names the path."""

    def __init__(self, problems: list[str] | str):
        InputError.__init__(self, problems)

    def __str__(self) -> str:
        return "\n".join(self.problems)


class ScoreError(ValueError):
    """A method produced a score that cannot be ranked (NaN or infinite); one line naming the
    method and the layer. Ends the run as ``errored``."""

    def __reduce__(self):
        return (type(self), (str(self),))


def signal_name(signum: int) -> str:
    """How a stop signal is named to a user: ``Ctrl-C`` for SIGINT, else ``SIGTERM`` etc."""
    return "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or a signal (``signum``) stopped a run. A KeyboardInterrupt, so that whatever lets
    Ctrl-C through lets it through too; ``str()`` (``stopped by SIGTERM``) is the reason the
    record gives, and a command exits with :attr:`exit_code`."""

    def __init__(self, signum: int = signal.SIGINT):
        self.signum = int(signum)
        super().__init__(f"stopped by {signal_name(self.signum)}")

    @property
    def exit_code(self) -> int:
        """128 + the signal's number, as shells report a process the signal ended (130, 143)."""
        return 128 + self.signum

    def __reduce__(self):
        return (type(self), (self.signum,))


class Diverged(RuntimeError):
    """The training loss became NaN or infinite. Ends the run as ``diverged``."""

    def __reduce__(self):
        return (type(self), (str(self),))


__all__ = ["CheckpointError", "ConfigError", "DataError", "Diverged", "InputError", "Interrupted",
           "ModelError", "RegistryError", "ScoreError", "StorageError", "one_line", "signal_name"]
