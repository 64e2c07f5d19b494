"""Name -> factory registries for models and data sets, open to user extensions.

A name is either a registered one (``"resnet18"``) or an import path ``package.module:factory``,
which is imported and used like a built-in.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from drive.record import one_line

F = TypeVar("F")


class RegistryError(LookupError):
    """An unknown name or an import path that does not resolve; the message is one line."""


class Registry(Generic[F]):
    """A named collection of factories (or other entries, see ``accepts``); ``kind`` ("model",
    "dataset", "method") names the config field."""

    def __init__(self, kind: str, accepts: Callable[[object], bool] = callable,
                 path_hint: str = "package.module:factory"):
        self.kind = kind
        self.accepts = accepts  # what an import path must name
        self.path_hint = path_hint
        self._factories: dict[str, F] = {}

    def register(self, name: str) -> Callable[[F], F]:
        """Decorator: ``@MODELS.register("resnet18")``."""

        def add(factory: F) -> F:
            if name in self._factories:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._factories[name] = factory
            return factory

        return add

    def names(self) -> list[str]:
        return sorted(self._factories)

    def in_order(self) -> list[str]:
        """The registered names in registration order."""
        return list(self._factories)

    def __contains__(self, name: str) -> bool:
        return name in self._factories or ":" in name

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def get(self, name: str) -> F:
        """The factory for ``name``; raises :class:`RegistryError` naming the allowed values."""
        if name in self._factories:
            return self._factories[name]
        if ":" in name:
            return self._import(name)
        raise RegistryError(f"{self.kind}: unknown {self.kind} {name!r}; allowed: "
                            f"{', '.join(self.names())} or an import path {self.path_hint}")

    def _import(self, path: str) -> F:
        module_name, _, attr = path.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:
            raise RegistryError(f"{self.kind}: cannot import module {module_name!r} of {path!r} ({e})") from None
        except Exception as e:  # the module itself fails as it runs (SyntaxError, a bad import-time call)
            raise RegistryError(f"{self.kind}: importing module {module_name!r} of {path!r} failed "
                                f"({one_line(e)})") from None
        factory = getattr(module, attr, None)
        if not self.accepts(factory):
            what = "a callable" if self.accepts is callable else f"a {self.kind}"
            raise RegistryError(f"{self.kind}: {path!r} does not name {what} in {module_name!r}")
        return factory
