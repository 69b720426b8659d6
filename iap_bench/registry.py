"""A name -> class registry for generators and metrics, keyed by config name; built-ins load lazily.

Built-in entries are listed as ``name -> module`` and imported only when that name is used, so importing the
runner or the CLI never imports torch, and choosing one generator never imports the others.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps config names to constructors; ``register`` is a class decorator, ``build`` instantiates."""

    def __init__(self, kind: str, builtin: Mapping[str, str] | None = None):
        self.kind = kind
        self._lazy = dict(builtin or {})  # name -> module whose import registers it
        self._entries: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[type], type]:
        def deco(cls: type) -> type:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._entries[name] = cls
            return cls

        return deco

    def names(self) -> list[str]:
        """Every known name, loaded or not."""
        return sorted(set(self._lazy) | set(self._entries))

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in self._lazy

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def registered(self, name: str) -> Callable[..., T] | None:
        """The entry if its module is already imported (never imports anything)."""
        return self._entries.get(name)

    def __getitem__(self, name: str) -> Callable[..., T]:
        if name not in self._entries and name in self._lazy:
            importlib.import_module(self._lazy[name])
        if name not in self._entries:
            raise KeyError(f"unknown {self.kind} {name!r}; registered: {self.names()}")
        return self._entries[name]

    def get(self, name: str, default: Any = None) -> Callable[..., T] | Any:
        return self[name] if name in self else default

    def build(self, name: str, **params: Any) -> T:
        return self[name](**params)
