"""Strict checkpoint-key check shared by the reference metric backends (a leaf module: no torch import).

A state dict loaded with a wrong key prefix, a missing key or a wrong shape must never run with partly random
weights: ``check_state_dict`` refuses it with one error naming the offending keys (a few, plus counts).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from iap_bench.errors import IAPBenchError

if TYPE_CHECKING:
    import torch

__all__ = ["CheckpointKeyError", "check_state_dict", "expected_shapes", "load_strict", "state_dict_problems"]

SHOW = 5  # offending keys named per category


class CheckpointKeyError(IAPBenchError):
    """A checkpoint's keys do not match the model: ``missing``, ``unexpected`` and ``mismatched`` list them."""

    def __init__(self, name: str, missing: list[str], unexpected: list[str],
                 mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]]):
        self.name = name
        self.missing, self.unexpected, self.mismatched = list(missing), list(unexpected), list(mismatched)
        super().__init__(format_problems(name, self.missing, self.unexpected, self.mismatched))


def _shape(value: Any) -> tuple[int, ...]:
    """Shape of a tensor/array (``.shape``) or of a plain shape tuple."""
    shape = getattr(value, "shape", value)
    return tuple(int(s) for s in shape)


def expected_shapes(model: Any) -> dict[str, tuple[int, ...]]:
    """Key -> shape the model expects: its ``state_dict()`` (an nn.Module) or the mapping given as is."""
    items = model.state_dict().items() if hasattr(model, "state_dict") else dict(model).items()
    return {str(k): _shape(v) for k, v in items}


def state_dict_problems(expected: Mapping[str, tuple[int, ...]], state: Mapping[str, Any]
                        ) -> tuple[list[str], list[str], list[tuple[str, tuple[int, ...], tuple[int, ...]]]]:
    """Pure: (missing keys, unexpected keys, (key, expected shape, found shape)) in sorted key order."""
    missing = sorted(k for k in expected if k not in state)
    unexpected = sorted(k for k in state if k not in expected)
    mismatched = [(k, tuple(expected[k]), _shape(state[k])) for k in sorted(expected)
                  if k in state and tuple(expected[k]) != _shape(state[k])]
    return missing, unexpected, mismatched


def _few(keys: list[str]) -> str:
    more = f", ... (+{len(keys) - SHOW} more)" if len(keys) > SHOW else ""
    return ", ".join(keys[:SHOW]) + more


def format_problems(name: str, missing: list[str], unexpected: list[str],
                    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]]) -> str:
    """Pure: one message naming the first few offending keys of each kind and how many there are."""
    lines = [f"checkpoint for {name!r} does not match the model:"]
    if missing:
        lines.append(f"  {len(missing)} missing key(s): {_few(missing)}")
    if unexpected:
        lines.append(f"  {len(unexpected)} unexpected key(s): {_few(unexpected)}")
    if mismatched:
        shown = [f"{k} (model {list(e)}, checkpoint {list(f)})" for k, e, f in mismatched]
        lines.append(f"  {len(mismatched)} shape mismatch(es): {_few(shown)}")
    return "\n".join(lines)


def check_state_dict(model: torch.nn.Module | Mapping[str, tuple[int, ...]], state: Mapping[str, Any],
                     name: str) -> None:
    """Raise CheckpointKeyError unless ``state`` has exactly the keys and shapes ``model`` expects.

    ``model`` is a ``torch.nn.Module`` or a mapping key -> shape; ``state`` maps keys to tensors/arrays.
    """
    missing, unexpected, mismatched = state_dict_problems(expected_shapes(model), state)
    if missing or unexpected or mismatched:
        raise CheckpointKeyError(name, missing, unexpected, mismatched)


def load_strict(model: torch.nn.Module, state: Mapping[str, Any], name: str) -> None:
    """Load ``state`` into ``model`` only if its keys and shapes are exactly the model's (else nothing is
    loaded and CheckpointKeyError names the offending keys)."""
    check_state_dict(model, state, name)
    model.load_state_dict(dict(state), strict=True)
