"""A name -> class registry, used for generators and metrics (keyed by their config name)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Registry(dict[str, Callable[..., T]], Generic[T]):
    """Maps config names to constructors; ``register`` is a class decorator, ``build`` instantiates."""

    def __init__(self, kind: str, builtin_module: str):
        super().__init__()
        self.kind = kind
        self.builtin_module = builtin_module  # imported before lookup: registers the built-in entries

    def register(self, name: str) -> Callable[[type], type]:
        def deco(cls: type) -> type:
            if name in self:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self[name] = cls
            return cls

        return deco

    def build(self, name: str, **params: Any) -> T:
        import importlib

        importlib.import_module(self.builtin_module)
        if name not in self:
            raise KeyError(f"unknown {self.kind} {name!r}; registered: {sorted(self)}")
        return self[name](**params)
