"""Metric protocol, per-sample values with failure reasons, weight specs and the metric registry."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from iap_bench.benchmark.schema import Item
from iap_bench.errors import MissingCheckpointError
from iap_bench.registry import Registry

if TYPE_CHECKING:
    from iap_bench.media.sample import SampleMedia

Direction = Literal["higher", "lower"]


@dataclass
class EvalSample:
    """What a metric sees for one generated clip: the item and its shared, decode-once media."""

    item: Item
    media: SampleMedia

    @property
    def key(self) -> str:
        return self.media.content_hash


@dataclass
class MetricValue:
    """One per-sample score, or a failure reason (then excluded from the mean)."""

    value: float | None
    failure: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def fail(cls, reason: str, **extras: Any) -> MetricValue:
        return cls(None, reason, dict(extras))


@dataclass(frozen=True)
class WeightSpec:
    """Where a model file is looked for and how to get it; resolve() gives one clear error if absent."""

    name: str
    filename: str
    how_to_get: str
    search_paths: tuple[str, ...] = ()
    env_var: str | None = None
    config_key: str = ""
    sha256: str | None = None

    def candidates(self, explicit: str | os.PathLike | None = None) -> list[Path]:
        paths: list[Path] = []
        if explicit:
            p = Path(explicit).expanduser()
            paths.append(p / self.filename if p.is_dir() else p)
        if self.env_var and os.environ.get(self.env_var):
            p = Path(os.environ[self.env_var]).expanduser()
            paths.append(p / self.filename if p.is_dir() else p)
        for d in self.search_paths:
            paths.append(Path(os.path.expandvars(d)).expanduser() / self.filename)
        return paths

    def resolve(self, explicit: str | os.PathLike | None = None) -> Path:
        searched = self.candidates(explicit)
        for p in searched:
            if p.exists():
                return p
        raise MissingCheckpointError(self.name, self.filename, searched, self.how_to_get, self.config_key)


class Metric:
    """Base class for metrics: subclasses set the class attributes and implement ``score``.

    ``views`` names what the metric reads from SampleMedia (e.g. "audio16k", "frames", "faces") so the
    media layer can prefetch them; metrics never open files themselves.
    """

    name: str = ""
    direction: Direction = "higher"
    backend: str = ""
    version: str = "1"
    views: tuple[str, ...] = ()
    splits: tuple[str, ...] = ("single", "multi")  # splits the metric applies to ("-" elsewhere)

    def load(self) -> None:
        """Load weights once per run (raise MissingCheckpointError if absent)."""

    def checkpoint_id(self) -> str:
        """Identity of the weights that produce the numbers (sha256 of the file(s))."""
        raise NotImplementedError

    def score(self, samples: Sequence[EvalSample]) -> list[MetricValue]:
        """Batched per-sample scores, one MetricValue per sample (failures carry their reason)."""
        raise NotImplementedError

    def aggregate(self, samples: Sequence[EvalSample], values: Sequence[MetricValue]) -> float | None:
        """Dataset-level value (FD-style metrics); default None means: plain mean of per-sample values."""
        return None

    def applies(self, item: Item) -> bool:
        return item.split in self.splits

    def identity(self) -> dict[str, str]:
        return {"metric": self.name, "backend": self.backend, "checkpoint": self.checkpoint_id(),
                "version": self.version}


METRICS: Registry[Metric] = Registry("metric", "iap_bench.metrics")
register_metric = METRICS.register  # config names are ``<metric>/<backend>``, e.g. ``wer/offline``


def build_metric(name: str, **params: Any) -> Metric:
    """Instantiate a registered metric backend by its config name."""
    return METRICS.build(name, **params)
