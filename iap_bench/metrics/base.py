"""Metric protocol, per-sample values with failure reasons, metric identity and the metric registry.

A metric's identity is everything a number depends on besides the sample and the item's inputs:
(metric, backend, checkpoint sha256, params, version). ``params`` is a short hash of every constructor
parameter (defaults included, as recorded by ``build_metric``) and of ``aux_identity()`` (auxiliary models
and algorithms: VAD, landmark predictor, resampler); change any of them and the number is recomputed.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from iap_bench.benchmark.schema import Item
from iap_bench.registry import Registry
from iap_bench.weights import WeightSpec

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
    """One per-sample score, or a failure reason (the runner's failure policy decides what it counts as).

    ``transient`` marks an error that is not a property of the sample or the item (a bug, out of memory):
    it is reported but never stored, so the next run retries it.
    """

    value: float | None
    failure: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    transient: bool = False

    @classmethod
    def fail(cls, reason: str, **extras: Any) -> MetricValue:
        return cls(None, reason, dict(extras))

    @classmethod
    def error(cls, reason: str, **extras: Any) -> MetricValue:
        """A transient error: not stored, retried on the next run."""
        return cls(None, reason, dict(extras), transient=True)


def params_key(params: dict[str, Any]) -> str:
    """Pure: short, order-independent hash of a JSON-able parameter dict (part of the metric identity)."""
    blob = json.dumps(params, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


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
    # Value a fault of the generated sample (silence, no speech, no face, undecodable) scores: the metric's
    # worst value (WER 1.0, similarities 0.0). None for unbounded metrics (FD, Sync-D): such samples are
    # excluded and the leaderboard shows the coverage.
    worst: float | None = None
    # Constructor parameters that locate weight files: their content is in the checkpoint hash instead.
    path_params: tuple[str, ...] = ()
    # Set-level metrics (FD): per-sample values carry what ``aggregate`` needs in ``extras`` (value None);
    # the runner stores one aggregate per (model, split, sample set) and the leaderboard shows it.
    set_level: bool = False

    # runtime placement, set by configure(); not part of the identity (numbers must not depend on it)
    device: str = "cpu"
    threads: int = 1
    _build_params: dict[str, Any] | None = None

    def __new__(cls, *args: Any, **kwargs: Any) -> Metric:
        """Record the constructor arguments (defaults filled in) however the metric is built."""
        obj = super().__new__(cls)
        obj._build_params = bound_params(cls, kwargs, args)
        return obj

    def configure(self, device: str = "cpu", threads: int = 1) -> None:
        """Where ``load`` puts the model (cpu, cuda, cuda:N) and how many CPU threads it may use."""
        self.device, self.threads = device, int(threads)

    def load(self) -> None:
        """Load weights once per run (raise MissingCheckpointError if absent)."""

    def checkpoint_id(self) -> str:
        """Identity of the weights that produce the numbers (sha256 of the file(s))."""
        raise NotImplementedError

    def weight_files(self) -> list[tuple[WeightSpec, str | None]]:
        """Every model file this metric loads: (spec, the explicit path given for it, if any)."""
        return []

    def aux_identity(self) -> dict[str, Any]:
        """Auxiliary models and algorithms the numbers depend on (VAD, landmarks, resampler): name -> id."""
        return {}

    def params(self) -> dict[str, Any]:
        """Every constructor parameter (defaults filled in) except weight locations."""
        return {k: v for k, v in (self._build_params or {}).items() if k not in self.path_params}

    def score(self, samples: Sequence[EvalSample]) -> list[MetricValue]:
        """Batched per-sample scores, one MetricValue per sample (failures carry their reason)."""
        raise NotImplementedError

    def aggregate(self, values: Sequence[MetricValue]) -> tuple[float | None, dict[str, Any]]:
        """Dataset-level value of a ``set_level`` metric (FD) and its extras (CI, counts), computed from the
        per-sample values' ``extras`` only (as stored), so reused scores aggregate like fresh ones."""
        raise NotImplementedError(f"{self.name}/{self.backend} is not a set-level metric")

    def item_failure(self, item: Item) -> str | None:
        """Why this metric cannot score ``item`` whatever the sample (e.g. an unsupported language), or None.

        A failed generation of such an item is excluded, as a successful one would be: never penalised.
        """
        return None

    def applies(self, item: Item) -> bool:
        return item.split in self.splits

    def identity_params(self) -> dict[str, Any]:
        """What the ``params`` part of the identity hashes: parameters and auxiliary identities."""
        return {"params": self.params(), "aux": self.aux_identity()}

    def identity(self) -> dict[str, str]:
        """(metric, backend, checkpoint, params, version): the key every stored number carries."""
        return {"metric": self.name, "backend": self.backend, "checkpoint": self.checkpoint_id(),
                "params": params_key(self.identity_params()), "version": str(self.version)}


def bound_params(cls: type, params: dict[str, Any], args: Sequence[Any] = ()) -> dict[str, Any]:
    """Pure: constructor arguments of ``cls`` with defaults applied (TypeError on an unknown name)."""
    sig = inspect.signature(cls.__init__)
    bound = sig.bind(None, *args, **params)
    bound.apply_defaults()
    out = dict(bound.arguments)
    out.pop(next(iter(sig.parameters)), None)  # self
    for name, p in sig.parameters.items():
        if p.kind is inspect.Parameter.VAR_KEYWORD and name in out:
            out.update(out.pop(name))
    return out


def _builtin_metrics() -> dict[str, str]:
    from iap_bench.metrics.builtin import BUILTIN

    return BUILTIN


METRICS: Registry[Metric] = Registry("metric", _builtin_metrics())
register_metric = METRICS.register  # config names are ``<metric>/<backend>``, e.g. ``wer/offline``


def build_metric(name: str, **params: Any) -> Metric:
    """Instantiate a registered metric backend by its config name (its parameters are recorded on it)."""
    return METRICS.build(name, **params)
