"""FD: audio Fréchet distance of a model's generated set to the items' ground-truth set (set-level).

Protocol: hkchengrex/av-benchmark @050a5cd (METRICS.md §1). Every clip is mono, minus its mean, at the
embedder's rate and cut to ``audio_length`` (5 s, harness choice) as ``AudioDataset`` does; ``score`` stores
per sample the generated clip's and its item's ground-truth embeddings (base64 float32 in ``extras``);
``aggregate`` stacks one split's embeddings and computes the reference Fréchet distance (scipy ``sqrtm``),
with a 95 % interval from resampling items (gen and ground truth of the same items together).

- ``fd/reference``: FD-VGG, VGGish 128-d per 0.96 s example, all examples of all clips (the paper's FD).
- ``fd_passt/reference``: FD-PaSST, 768-d per clip (10 s padded input, 32 kHz).
- ``fd_pann/reference``: FD-PANN, Cnn14 16 kHz 2048-d per clip.

With ~100 clips the 768/2048-d covariances are rank deficient and values are large (tens to thousands):
only FD-VGG has the paper's magnitude.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from iap_bench.benchmark.schema import Item
from iap_bench.errors import MediaError
from iap_bench.metrics.base import EvalSample, Metric, MetricValue, register_metric
from iap_bench.metrics.frechet import (
    FrechetError,
    bootstrap_multiplicities,
    decode_embeddings,
    encode_embeddings,
    frechet_distance,
    item_resampler,
    shifted_percentile_interval,
)

PROTOCOL = "av-benchmark@050a5cd: mono, mean-subtracted, cut to audio_length; np.cov; scipy sqrtm (eps 1e-6)"


def collect_pairs(values: Sequence[MetricValue]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Pure: (generated, ground-truth) embeddings of every successful value that carries both (non-empty)."""
    out = []
    for v in values:
        if v.failure is None and isinstance(v.extras, dict) and "emb" in v.extras and "ref" in v.extras:
            gen, ref = decode_embeddings(v.extras["emb"]), decode_embeddings(v.extras["ref"])
            if len(gen) and len(ref):
                out.append((gen, ref))
    return out


def set_frechet(pairs: Sequence[tuple[np.ndarray, np.ndarray]], n_boot: int = 1000, seed: int = 0
                ) -> tuple[float | None, dict[str, Any]]:
    """Pure: FD of the stacked generated vs ground-truth embeddings of ``pairs`` (one per item) and extras.

    The point value is the reference formula; the interval comes from ``n_boot`` item resamples computed
    with the exact fast form (``frechet.item_resampler``), re-centred by the bootstrap bias. ``fd_svd`` is the
    fast form on the full set (equal to the point value unless the reference needed its eps offset).
    """
    gen = [p[0] for p in pairs]
    ref = [p[1] for p in pairs]
    dim = int(gen[0].shape[1]) if gen else 0
    extras: dict[str, Any] = {"n_clips": len(pairs), "n_boot": int(n_boot), "dim": dim,
                              "n_gen_vectors": int(sum(len(g) for g in gen)),
                              "n_ref_vectors": int(sum(len(r) for r in ref)),
                              "ci_low": None, "ci_high": None}
    if len(pairs) < 2:
        return None, {**extras, "reason": f"fewer than 2 clips ({len(pairs)})"}
    try:
        point = frechet_distance(np.concatenate(gen), np.concatenate(ref))
    except FrechetError as e:
        return None, {**extras, "reason": f"frechet: {e}"}
    res = item_resampler(gen, ref)
    extras["fd_svd"] = res.fd(np.ones(len(pairs), dtype=np.int64))
    if n_boot > 0:
        boots = res.fd_many(bootstrap_multiplicities(len(pairs), n_boot, seed))
        extras["ci_low"], extras["ci_high"] = shifted_percentile_interval(boots, point)
        extras["boot_bias"] = float(np.mean(boots) - point)
        extras["ci_method"] = "item bootstrap, 95% percentile interval shifted by the bootstrap bias"
    return point, extras


class _AudioFD(Metric):
    """Shared set-level FD protocol; subclasses name the embedder (``kind``) and its rate."""

    direction = "lower"
    version = "1"
    worst = None  # unbounded: a sample without usable audio is excluded (coverage shows it)
    set_level = True
    path_params = ("checkpoint",)
    kind = ""

    def __init__(self, checkpoint: str | None = None, audio_length: float = 5.0, n_boot: int = 1000,
                 seed: int = 0) -> None:
        self.checkpoint = checkpoint
        self.audio_length = float(audio_length)
        self.n_boot = int(n_boot)
        self.seed = int(seed)
        self._emb = None
        self._ckpt_id: str | None = None
        self._ref_cache: dict[str, np.ndarray] = {}

    # ---- identity / weights ----
    def _spec(self):  # noqa: ANN202
        from iap_bench.backends.audio_embed import EMBEDDERS

        return EMBEDDERS[self.kind][1]()

    def weight_files(self) -> list:
        return [(self._spec(), self.checkpoint)]

    def checkpoint_id(self) -> str:
        if self._ckpt_id is None:
            from iap_bench.hashing import tree_sha256

            self._ckpt_id = tree_sha256(self._spec().resolve(self.checkpoint))
        return self._ckpt_id

    def aux_identity(self) -> dict[str, str]:
        from iap_bench.media.audio import resampler_identity

        return {"resampler": resampler_identity(), "protocol": PROTOCOL}

    def load(self) -> None:
        if self._emb is None:
            from iap_bench.backends.audio_embed import make_embedder

            self._emb = make_embedder(self.kind, self.checkpoint, self.device)

    def item_failure(self, item: Item) -> str | None:
        return None if item.ground_truth_audio is not None else "no_ground_truth"

    # ---- scoring ----
    @property
    def sample_rate(self) -> int:
        from iap_bench.backends.audio_embed import EMBEDDERS

        return EMBEDDERS[self.kind][0].sample_rate

    def _prepare(self, wave: np.ndarray) -> np.ndarray:
        from iap_bench.backends.audio_embed import prepare_waveform

        return prepare_waveform(wave, self.sample_rate, self.audio_length)

    def _generated(self, sample: EvalSample) -> np.ndarray | MetricValue:
        """The prepared generated clip, or the failure that excludes it."""
        try:
            wave = sample.media.audio(self.sample_rate)
        except MediaError as e:
            if e.reason != "silent":
                return MetricValue.fail(e.reason, detail=e.detail)
            # silence is the model's output and must count against it: embedded as digital silence of the
            # clip's length (excluding it, as an unbounded metric's faults are, would flatter the model)
            wave = np.zeros(int(round(sample.media.duration_s * self.sample_rate)), np.float32)
        x = self._prepare(wave)
        if x.size < self._emb.min_samples:
            return MetricValue.fail("too_short", detail=f"{x.size} samples < {self._emb.min_samples}")
        return x

    def _reference(self, item: Item) -> np.ndarray | MetricValue:
        """The prepared ground-truth clip of ``item``, or why it is unusable (excluded)."""
        from iap_bench.media.refs import load_audio

        if item.ground_truth_audio is None:
            return MetricValue.fail("no_ground_truth")
        try:
            wave = load_audio(item.ground_truth_audio, self.sample_rate)
        except MediaError as e:
            return MetricValue.fail("bad_reference", detail=f"{item.ground_truth_audio}: {e}")
        x = self._prepare(wave)
        if not np.isfinite(x).all() or x.size < self._emb.min_samples:
            return MetricValue.fail("bad_reference", detail=f"{item.ground_truth_audio}: non-finite or too short")
        return x

    def score(self, samples: Sequence[EvalSample]) -> list[MetricValue]:
        self.load()
        out: list[MetricValue | None] = [None] * len(samples)
        gen_waves: dict[str, np.ndarray] = {}
        ref_waves: dict[str, np.ndarray] = {}
        keys: dict[int, tuple[str, str]] = {}
        for i, s in enumerate(samples):
            ref = self._reference(s.item)
            if isinstance(ref, MetricValue):
                out[i] = ref
                continue
            gen = self._generated(s)
            if isinstance(gen, MetricValue):
                out[i] = gen
                continue
            gk, rk = s.media.content_hash, str(Path(s.item.ground_truth_audio))
            gen_waves.setdefault(gk, gen)
            if rk not in self._ref_cache:
                ref_waves.setdefault(rk, ref)
            keys[i] = (gk, rk)
        names = [("g", k) for k in gen_waves] + [("r", k) for k in ref_waves]
        embs = self._emb.embed([gen_waves[k] if t == "g" else ref_waves[k] for t, k in names]) if names else []
        got = dict(zip(names, embs))
        self._ref_cache.update({k: got[("r", k)] for k in ref_waves})
        for i, (gk, rk) in keys.items():
            out[i] = MetricValue(None, None, extras={"emb": encode_embeddings(got[("g", gk)]),
                                                     "ref": encode_embeddings(self._ref_cache[rk])})
        return out  # type: ignore[return-value]

    def aggregate(self, values: Sequence[MetricValue]) -> tuple[float | None, dict[str, Any]]:
        return set_frechet(collect_pairs(values), n_boot=self.n_boot, seed=self.seed)


@register_metric("fd/reference")
class VggishFD(_AudioFD):
    """FD-VGG (the paper's FD): VGGish 128-d examples, 16 kHz."""

    name = "fd"
    backend = "vggish"
    views = ("audio16k",)
    kind = "vggish"


@register_metric("fd_passt/reference")
class PasstFD(_AudioFD):
    """FD-PaSST: hear21passt PaSST-S 768-d features, 32 kHz, 10 s input."""

    name = "fd_passt"
    backend = "passt-s-f128-ap476"
    views = ("audio32k",)
    kind = "passt"


@register_metric("fd_pann/reference")
class PannFD(_AudioFD):
    """FD-PANN: Cnn14 16 kHz 2048-d embedding."""

    name = "fd_pann"
    backend = "cnn14-16k"
    views = ("audio16k",)
    kind = "cnn14"
