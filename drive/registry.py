"""Name -> entry registries (models, data sets, methods), open to user extensions.

A name is a registered one (``"resnet18"``), a built-in known by its import path (the methods:
``"grasp"`` is ``drive.methods.grasp:METHOD``, imported when first asked for), or an import path
``package.module:attribute`` of the user's, imported and used like a built-in.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from typing import Generic, TypeVar

from drive.errors import RegistryError, one_line

F = TypeVar("F")


class Registry(Generic[F]):
    """A named collection of factories (or other entries, see ``accepts``); ``kind`` ("model",
    "dataset", "method") names the config field.

    ``builtins`` maps names to the import paths of entries that are imported on first use (so
    that a lower layer can name entries defined in higher ones without importing them).
    """

    def __init__(self, kind: str, accepts: Callable[[object], bool] = callable,
                 path_hint: str = "package.module:factory",
                 builtins: Mapping[str, str] | None = None):
        self.kind = kind
        self.accepts = accepts  # what an import path must name
        self.path_hint = path_hint
        self._builtins = dict(builtins or {})
        self._factories: dict[str, F] = {}

    def register(self, name: str) -> Callable[[F], F]:
        """Decorator: ``@MODELS.register("resnet18")``."""

        def add(factory: F) -> F:
            if name in self._factories or name in self._builtins:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._factories[name] = factory
            return factory

        return add

    def names(self) -> list[str]:
        return sorted(self.in_order())

    def in_order(self) -> list[str]:
        """The registered names in registration order (built-ins first)."""
        return [*self._builtins, *(n for n in self._factories if n not in self._builtins)]

    def __contains__(self, name: str) -> bool:
        return name in self._factories or name in self._builtins or ":" in name

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def get(self, name: str) -> F:
        """The entry for ``name``; raises :class:`RegistryError` naming the allowed values."""
        if name in self._factories:
            return self._factories[name]
        if name in self._builtins:
            entry = self._resolve(self._builtins[name], builtin=True)
            self._factories[name] = entry
            return entry
        if ":" in name:
            return self._resolve(name)
        raise RegistryError(f"{self.kind}: unknown {self.kind} {name!r}; allowed: "
                            f"{', '.join(self.names())} or an import path {self.path_hint}")

    def _resolve(self, path: str, builtin: bool = False) -> F:
        module_name, _, attr = path.partition(":")
        if builtin:  # a built-in that fails to import is a bug: its traceback helps
            module = importlib.import_module(module_name)
        else:
            try:
                module = importlib.import_module(module_name)
            except ImportError as e:
                raise RegistryError(f"{self.kind}: cannot import module {module_name!r} of {path!r} ({e})") from None
            except Exception as e:  # the module itself fails as it runs (SyntaxError, a bad call)
                raise RegistryError(f"{self.kind}: importing module {module_name!r} of {path!r} failed "
                                    f"({one_line(e)})") from None
        factory = getattr(module, attr, None)
        if not self.accepts(factory):
            what = "a callable" if self.accepts is callable else f"a {self.kind}"
            raise RegistryError(f"{self.kind}: {path!r} does not name {what} in {module_name!r}")
        return factory
