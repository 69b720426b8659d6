"""AID-SIM, offline backend: resemblyzer GE2E d-vector cosine to the subject's reference voice.

Single-subject: cosine(whole generated track, reference voice), as Seed-TTS-eval SIM (but a different
speaker model, with resemblyzer's VAD trimming, so values differ from the WavLM-ECAPA reference backend).
Multi-subject (METRICS.md proposal): Silero-VAD speech regions cut into 1.5 s windows (hop 0.75 s,
pieces < 1.0 s dropped); each window goes to argmax_k cos(window, ref_k); AID-SIM_k = mean cosine of
the windows assigned to k (0 if none); item = mean over k.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from iap_bench.benchmark.schema import Subject
from iap_bench.errors import MediaError
from iap_bench.metrics.base import EvalSample, Metric, MetricValue, register_metric


def window_owners(window_emb: np.ndarray, ref_emb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pure: for unit windows [W, D] and references [K, D]: each window's subject index and its cosine."""
    sims = window_emb @ ref_emb.T  # [W,K]
    owner = sims.argmax(axis=1)
    return owner, sims[np.arange(len(owner)), owner]


def assign_windows(window_emb: np.ndarray, ref_emb: np.ndarray) -> tuple[list[float], list[int]]:
    """Pure: windows [W,D] and references [K,D] (L2-normalised) -> per-subject mean cosine and counts."""
    k = ref_emb.shape[0]
    if window_emb.shape[0] == 0:
        return [0.0] * k, [0] * k
    owner, cos = window_owners(window_emb, ref_emb)
    values, counts = [], []
    for j in range(k):
        mine = cos[owner == j]
        counts.append(int(mine.size))
        values.append(float(mine.mean()) if mine.size else 0.0)
    return values, counts


@register_metric("aid_sim/offline")
class OfflineAIDSim(Metric):
    """Speaker similarity (cosine, higher is better) of generated speech to the reference voice(s)."""

    name = "aid_sim"
    direction = "higher"
    backend = "offline-resemblyzer"
    version = "1"
    views = ("audio16k",)
    worst = 0.0  # silent / speechless output: no similarity to the reference voice
    path_params = ("weights",)

    def __init__(self, weights: str | None = None, win_s: float = 1.5, hop_s: float = 0.75,
                 min_s: float = 1.0, vad: str = "silero") -> None:
        self.weights = weights
        self.win_s, self.hop_s, self.min_s = win_s, hop_s, min_s
        self.vad = vad
        self._enc = None
        self._ref_cache: dict[str, np.ndarray] = {}

    def load(self) -> None:
        if self._enc is None:
            from iap_bench.backends.speaker import SpeakerEncoder

            self._enc = SpeakerEncoder(self.weights, vad=self.vad, device=self.device)

    def weight_files(self) -> list:
        from iap_bench.backends.speaker import resemblyzer_weight_spec

        return [(resemblyzer_weight_spec(), self.weights)]

    def aux_identity(self) -> dict[str, str]:
        from iap_bench.backends.speaker import vad_identity
        from iap_bench.media.audio import resampler_identity

        return {"vad": vad_identity(self.vad), "resampler": resampler_identity(),
                "vad_config": "threshold=0.5,merge_gap=0.3,min_region=0.25"}

    def checkpoint_id(self) -> str:
        if self._enc is not None:
            return self._enc.checkpoint_sha256
        from iap_bench.backends.speaker import resemblyzer_weight_spec
        from iap_bench.hashing import file_sha256

        return file_sha256(resemblyzer_weight_spec().resolve(self.weights))

    def _reference(self, subject: Subject) -> np.ndarray:
        """Embedding of a subject's reference voice (cached by path); MediaError if unusable."""
        from iap_bench.media.refs import load_audio

        if subject.voice is None:
            raise MediaError("unbound_reference", f"{subject.anchor} has no reference voice")
        key = str(Path(subject.voice))
        if key not in self._ref_cache:
            try:
                self._ref_cache[key] = self._enc.embed(load_audio(subject.voice, 16000))
            except MediaError as e:
                raise MediaError(f"{e.reason}_in_reference", f"{key}: {e.detail}") from e
        return self._ref_cache[key]

    def score(self, samples: Sequence[EvalSample]) -> list[MetricValue]:
        self.load()
        cache: dict[tuple[str, str], Any] = {}  # same clip scored for several items: embed it once
        return [self._score_one(s, cache) for s in samples]

    def _cached(self, cache: dict[tuple[str, str], Any], sample: EvalSample, kind: str) -> Any:
        """Whole-track embedding ('track') or speech windows ('windows') of a clip, once per content hash."""
        key = (sample.media.content_hash, kind)
        if key not in cache:
            wav = sample.media.audio(16000)
            cache[key] = (self._enc.embed(wav) if kind == "track"
                          else self._enc.embed_windows(wav, self.win_s, self.hop_s, self.min_s))
        return cache[key]

    def _score_one(self, sample: EvalSample, cache: dict[tuple[str, str], Any]) -> MetricValue:
        try:
            refs = np.stack([self._reference(s) for s in sample.item.subjects])  # [K,256]
            if len(sample.item.subjects) == 1:
                return MetricValue(float(self._cached(cache, sample, "track") @ refs[0]))
            return self._score_multi(sample, self._cached(cache, sample, "windows"), refs)
        except MediaError as e:
            return MetricValue.fail(e.reason, detail=e.detail)

    def _score_multi(self, sample: EvalSample, windows: list, refs: np.ndarray) -> MetricValue:
        if not windows:
            return MetricValue.fail("no_speech", detail=f"no VAD speech window of >= {self.min_s:.1f} s",
                                    vad=self._enc.vad_name)
        values, counts = assign_windows(np.stack([w.embedding for w in windows]), refs)
        anchors = [s.anchor for s in sample.item.subjects]
        return MetricValue(float(np.mean(values)), extras={
            "per_subject": dict(zip(anchors, values)), "windows_per_subject": dict(zip(anchors, counts)),
            "n_windows": len(windows), "vad": self._enc.vad_name})
