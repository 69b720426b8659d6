"""Generator adapter protocol and registry: every model (ours, rivals, precomputed, cascade) plugs in here."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from iap_bench.benchmark.schema import Item
from iap_bench.registry import Registry


@dataclass(frozen=True)
class Capabilities:
    """What an adapter can honour; the runner records unsupported items as failures, never silently."""

    multi_subject: bool = True
    multi_view: bool = True
    voice_reference: bool = True


@dataclass
class GeneratedSample:
    """One generated clip: either decoded arrays or an already-encoded file (``source``).

    video: [T, H, W, 3] uint8 RGB; audio: [N] or [C, N] float32 in [-1, 1].
    """

    fps: float
    sample_rate: int
    video: np.ndarray | None = None
    audio: np.ndarray | None = None
    source: Path | None = None  # an existing mp4 (with audio) to copy instead of encoding arrays
    source_audio: Path | None = None  # a separate audio file to mux with ``source`` video
    info: dict[str, Any] = field(default_factory=dict)  # adapter-specific facts for the sidecar


@runtime_checkable
class Generator(Protocol):
    """Load once, then generate one item at a time with a seed."""

    name: str
    capabilities: Capabilities

    def load(self) -> None:
        """Load weights/resources once per run; raise MissingCheckpointError with a clear message."""

    def generate(self, item: Item, seed: int) -> GeneratedSample:
        """Generate (or fetch) the sample for one item."""

    def describe(self) -> dict[str, Any]:
        """Config and checkpoint identity written to every sample's sidecar."""


GENERATORS: Registry[Generator] = Registry("generator", {
    "cascade": "iap_bench.generators.cascade",
    "iap": "iap_bench.generators.iap",
    "precomputed": "iap_bench.generators.precomputed",
})
register_generator = GENERATORS.register


def default_label(name: str, description: dict[str, Any]) -> str:
    """Row name of a generator config without an explicit label: its name plus a hash of its full config,
    so two configurations never share a leaderboard row (``cascade@1f2e3d4c``)."""
    import hashlib
    import json

    blob = json.dumps(description, sort_keys=True, default=str)
    return f"{name}@{hashlib.sha256(blob.encode()).hexdigest()[:8]}"


def build_generator(name: str, **params: Any) -> Generator:
    """Instantiate a registered adapter by its config name with its config params."""
    return GENERATORS.build(name, **params)
