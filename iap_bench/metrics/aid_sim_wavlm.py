"""AID-SIM, reference backend: WavLM-Large + ECAPA-TDNN (UniSpeech SV), cosine as Seed-TTS-eval's SIM.

Protocol (METRICS.md §1 AID-SIM): seed-tts-eval ``cal_sim.sh`` -> UniSpeech ``verification_pair_list_v2.py
--model_name wavlm_large`` with ``wavlm_large_finetune.pth``: 16 kHz, the whole utterance (no VAD, no trimming),
score = cosine(generated speech, the subject's REFERENCE voice). The model is ``iap_bench.backends.ecapa_wavlm``,
equal to the official code number for number (tests/fixtures/golden/ecapa_wavlm.json); its checkpoint is loaded
with every key checked (the official ``strict=False`` would leave a mis-prefixed head random).

- Single-subject items: whole generated track vs the reference voice (exactly the protocol).
- Multi-subject items (METRICS.md proposal, as ``aid_sim/offline``): Silero-VAD speech regions cut into 1.5 s
  windows (hop 0.75 s, pieces < 1.0 s dropped); each window goes to argmax_k cos(window, ref_k); AID-SIM_k = mean
  cosine of the windows assigned to k (0 if none); item = mean over k.

Reading differs from verification.py only for files that are not 16 kHz mono: the shared media layer averages
channels (the official code takes the first) and resamples with soxr HQ (official: torchaudio ``Resample``).
Clips of exactly equal length are embedded in one batch, others one by one: the head has no padding mask, so
padding would change the numbers (see the backend). Generated tracks shorter than ``MIN_TRACK_S`` are ``no_speech``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from iap_bench.benchmark.schema import Subject
from iap_bench.errors import MediaError
from iap_bench.metrics.aid_sim import assign_windows, window_owners
from iap_bench.metrics.base import EvalSample, Metric, MetricValue, register_metric
from iap_bench.weights import WeightSpec

SR = 16000
MIN_TRACK_S = 0.25  # shorter generated tracks (12 WavLM frames) count as no_speech; the official code has no floor
VAD_CONFIG = "threshold=0.5,merge_gap=0.3,min_region=0.25"  # iap_bench.backends.speaker.VadConfig defaults
HOW_TO_GET = (
    "download wavlm_large_finetune.pth (~1.2 GB) from the seed-tts-eval README's SIM model link "
    "(https://drive.google.com/file/d/1-aE1NfzpRCLxA4GUxX9ITI3F9LlbtEGP/view; the same file is the 'WavLM large, "
    "Fix pre-train: No' row of microsoft/UniSpeech downstreams/speaker_verification/README.md) and put it at "
    "<weights.root>/aid_sim/wavlm_large_finetune.pth. s3prl's WavLM-Large.pt is NOT needed: the fine-tuned file "
    "carries every front-end weight")


def ecapa_weight_spec() -> WeightSpec:
    """Where ``wavlm_large_finetune.pth`` is looked for and how to get it (no pinned hash: not verified here)."""
    return WeightSpec(
        name="UniSpeech WavLM-Large ECAPA-TDNN speaker verification (Seed-TTS-eval SIM)",
        filename="wavlm_large_finetune.pth",
        how_to_get=HOW_TO_GET,
        env_var="IAP_AID_SIM_CHECKPOINT",
        config_key="params.checkpoint",
        root_subpath="aid_sim/wavlm_large_finetune.pth",
    )


@dataclass
class _Plan:
    """What one sample needs embedded: its clips (indices into the batch's clip list) and reference keys."""

    refs: list[str]
    anchors: list[str]
    clips: list[int]
    spans: list[tuple[float, float]] | None = None  # multi-subject windows (start_s, end_s); None = whole track
    extras: dict[str, Any] = field(default_factory=dict)


@register_metric("aid_sim/reference")
class ReferenceAIDSim(Metric):
    """Speaker similarity (cosine, higher is better) of generated speech to the reference voice(s)."""

    name = "aid_sim"
    direction = "higher"
    backend = "wavlm-ecapa"
    version = "1"
    views = ("audio16k",)
    worst = 0.0  # silent / speechless output: no similarity to the reference voice
    path_params = ("checkpoint",)

    def __init__(self, checkpoint: str | None = None, win_s: float = 1.5, hop_s: float = 0.75,
                 min_s: float = 1.0, vad: str = "silero") -> None:
        from iap_bench.backends.speaker import VAD_CHOICES

        if vad not in VAD_CHOICES:
            raise ValueError(f"vad must be one of {VAD_CHOICES}, got {vad!r}")
        self.checkpoint = checkpoint
        self.win_s, self.hop_s, self.min_s = win_s, hop_s, min_s
        self.vad = vad
        self._emb = None
        self._sha: str | None = None
        self._regions = None
        self._ref_cache: dict[str, np.ndarray] = {}  # reference voice (path, mtime, size) -> unit embedding

    # ---- identity and weights --------------------------------------------------------------------------
    def load(self) -> None:
        if self._emb is None:
            from iap_bench.backends.ecapa_wavlm import SpeakerEmbedder
            from iap_bench.hashing import tree_sha256

            path = ecapa_weight_spec().resolve(self.checkpoint)
            self._emb = SpeakerEmbedder(path, device=self.device)
            self._sha = tree_sha256(path)

    def weight_files(self) -> list:
        return [(ecapa_weight_spec(), self.checkpoint)]

    def checkpoint_id(self) -> str:
        if self._sha is not None:
            return self._sha
        from iap_bench.hashing import tree_sha256

        return tree_sha256(ecapa_weight_spec().resolve(self.checkpoint))

    def aux_identity(self) -> dict[str, str]:
        from iap_bench.backends.speaker import vad_identity
        from iap_bench.media.audio import resampler_identity

        return {"vad": vad_identity(self.vad), "resampler": resampler_identity(), "vad_config": VAD_CONFIG}

    # ---- inputs ----------------------------------------------------------------------------------------
    def _reference(self, subject: Subject) -> tuple[str, np.ndarray | None]:
        """(cache key, 16 kHz waveform or None if already embedded); MediaError for an unusable reference."""
        from iap_bench.media.audio import is_silent
        from iap_bench.media.refs import load_audio

        if subject.voice is None:
            raise MediaError("unbound_reference", f"{subject.anchor} has no reference voice")
        p = Path(subject.voice)
        try:
            st = p.stat()
            key = f"{p.resolve()}:{st.st_mtime_ns}:{st.st_size}"
            if key in self._ref_cache:
                return key, None
            wav = load_audio(p, SR)
        except (OSError, MediaError) as e:
            raise MediaError("bad_reference", f"{p}: {e}") from None
        if not np.all(np.isfinite(wav)) or is_silent(wav) or len(wav) < int(MIN_TRACK_S * SR):
            raise MediaError("bad_reference", f"{p}: silent, too short or non-finite reference voice")
        return key, wav

    def _detector(self) -> Any:
        """Speech-region detector as chosen (no fallback: another VAD gives other windows)."""
        if self._regions is None:
            from iap_bench.backends.speaker import make_regions

            self._regions = make_regions(self.vad)
        return self._regions

    def speech_windows(self, wav: np.ndarray) -> list[tuple[float, float]]:
        """(start_s, end_s) windows inside the VAD speech regions of a 16 kHz waveform."""
        from iap_bench.backends.speaker import VadConfig, regions_from_probs, windows_in_regions

        det = self._detector()
        regions = regions_from_probs(det.probabilities(wav), det.chunk, VadConfig())
        return windows_in_regions(regions, self.win_s, self.hop_s, self.min_s)

    # ---- scoring ---------------------------------------------------------------------------------------
    def score(self, samples: Sequence[EvalSample]) -> list[MetricValue]:
        self.load()
        clips: list[np.ndarray] = []
        index: dict[tuple[str, str, int], int] = {}  # (content hash, kind, window) -> clip index: embed once
        pending: dict[str, np.ndarray] = {}  # reference voices not embedded yet
        plans: list[_Plan | MetricValue] = []
        for s in samples:
            try:
                plans.append(self._plan(s, clips, index, pending))
            except MediaError as e:
                plans.append(MetricValue.fail(e.reason, detail=e.detail))
        keys = list(pending)
        emb = self._unit_embeddings(clips + [pending[k] for k in keys])
        for i, k in enumerate(keys):
            self._ref_cache[k] = emb[len(clips) + i]
        return [p if isinstance(p, MetricValue) else self._value(p, emb) for p in plans]

    def _unit_embeddings(self, clips: list[np.ndarray]) -> np.ndarray:
        from iap_bench.backends.ecapa_wavlm import EMB_DIM, unit

        return unit(self._emb.embed(clips)) if clips else np.zeros((0, EMB_DIM))

    def _plan(self, sample: EvalSample, clips: list[np.ndarray], index: dict[tuple[str, str, int], int],
              pending: dict[str, np.ndarray]) -> _Plan | MetricValue:
        refs = []
        for subject in sample.item.subjects:
            key, wav = self._reference(subject)
            if wav is not None:
                pending.setdefault(key, wav)
            refs.append(key)
        wav = sample.media.audio(SR)
        if len(wav) < int(MIN_TRACK_S * SR):
            return MetricValue.fail("no_speech", detail=f"{len(wav) / SR:.3f} s of audio (< {MIN_TRACK_S} s)")
        h = sample.media.content_hash
        anchors = [s.anchor for s in sample.item.subjects]
        if len(refs) == 1:
            return _Plan(refs, anchors, [self._clip(index, clips, (h, "track", 0), wav)])
        spans = self.speech_windows(wav)
        if not spans:
            return MetricValue.fail("no_speech", detail=f"no VAD speech window of >= {self.min_s:.1f} s",
                                    vad=self._detector().name)
        ids = [self._clip(index, clips, (h, f"win{self.win_s}/{self.hop_s}/{self.min_s}", i),
                          wav[int(round(s * SR)):int(round(e * SR))]) for i, (s, e) in enumerate(spans)]
        return _Plan(refs, anchors, ids, spans, {"vad": self._detector().name})

    @staticmethod
    def _clip(index: dict[tuple[str, str, int], int], clips: list[np.ndarray], key: tuple[str, str, int],
              wav: np.ndarray) -> int:
        if key not in index:
            index[key] = len(clips)
            clips.append(wav)
        return index[key]

    def _value(self, plan: _Plan, emb: np.ndarray) -> MetricValue:
        refs = np.stack([self._ref_cache[k] for k in plan.refs])
        if plan.spans is None:
            return MetricValue(float(emb[plan.clips[0]] @ refs[0]))
        windows = emb[plan.clips]
        values, counts = assign_windows(windows, refs)
        owner, cos = window_owners(windows, refs)
        anchors = plan.anchors
        return MetricValue(float(np.mean(values)), extras={
            "per_subject": dict(zip(anchors, values)), "windows_per_subject": dict(zip(anchors, counts)),
            "n_windows": len(plan.spans), **plan.extras,
            "windows": [[round(s, 3), round(e, 3), int(o), round(float(c), 6)]
                        for (s, e), o, c in zip(plan.spans, owner, cos)]})
