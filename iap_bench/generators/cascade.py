"""The ``cascade`` generator: an offline classical baseline (TTS + landmark lip animation), no learned generator.

Per item: each subject gets the installed flite/festival voice nearest to its reference voice by a classical
statistic (mean/std of MFCCs and median/IQR of log-F0 over voiced frames, z-scored over the catalogue plus the
reference, Euclidean; distinct voices per subject by Hungarian matching). No learned speaker model is involved,
so the voice choice is independent of the resemblyzer encoder that the offline AID-SIM metric scores with. The
script's turns are spoken in order with pauses; each subject's first reference view is framed into a panel whose
mouth opens with that subject's own speech envelope; panels sit side by side so all faces are in frame and only
the current speaker's mouth moves. The audio defines the clip length, padded to at least ``item.duration_s``
(speech is never cut, so WER stays meaningful). The seed drives only the head-motion jitter; TTS and lip motion
are deterministic. It is the default embedded generator. It is not a floor on every metric: pasting the reference
photo makes its VID-SIM close to an upper bound and clean TTS makes WER an easy target; its AID-SIM is that of the
nearest stock voice by a classical statistic.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from iap_bench.benchmark.schema import Item, Subject
from iap_bench.errors import MediaError
from iap_bench.generators import animate, tts
from iap_bench.generators.base import Capabilities, GeneratedSample, register_generator


@dataclass(frozen=True)
class CascadeConfig:
    """Output format and turn-taking of the cascade baseline."""

    fps: float = 25.0
    size: tuple[int, int] = (384, 384)  # [W, H] of one subject's panel; multi-subject canvas = [n*W, H]
    sample_rate: int = 16000
    pause_s: float = 0.35  # silence between turns
    lead_in_s: float = 0.25  # silence before the first turn
    tail_s: float = 0.3  # silence kept after the last turn
    voice_match: str = "nearest"  # "nearest" (classical MFCC/log-F0 distance) or a fixed voice, e.g. "flite:slt"
    distinct_voices: bool = True  # multi-subject: give every subject a different voice (least total distance)
    line_rms: float = 0.08  # every spoken line is normalised to this RMS (engines differ in level)


@dataclass(frozen=True)
class PlacedLine:
    """One spoken turn on the timeline: who, the first sample, and the waveform [N] at the output rate."""

    anchor: str
    start: int
    wav: np.ndarray

    @property
    def end(self) -> int:
        return self.start + len(self.wav)


def normalise_line(wav_n: np.ndarray, target_rms: float, peak: float = 0.95) -> np.ndarray:
    """Scale a line to ``target_rms`` without exceeding ``peak``: [N] float32."""
    rms = float(np.sqrt(np.mean(wav_n.astype(np.float64) ** 2))) if wav_n.size else 0.0
    if rms < 1e-6:
        raise MediaError("silent", "TTS produced a silent line")
    gain = min(target_rms / rms, peak / float(np.abs(wav_n).max()))
    return (wav_n * gain).astype(np.float32)


def place_turns(lines: list[tuple[str, np.ndarray]], sample_rate: int, lead_in_s: float,
                pause_s: float) -> list[PlacedLine]:
    """Lay spoken lines end to end with a pause between turns (speakers take turns, no overlap)."""
    placed: list[PlacedLine] = []
    cursor = int(round(lead_in_s * sample_rate))
    for anchor, wav in lines:
        placed.append(PlacedLine(anchor, cursor, wav))
        cursor += len(wav) + int(round(pause_s * sample_rate))
    return placed


def clip_frames(placed: list[PlacedLine], sample_rate: int, fps: float, min_duration_s: float,
                tail_s: float) -> int:
    """Number of video frames T: covers all speech plus the tail, and at least ``min_duration_s``."""
    speech_end_s = max((p.end for p in placed), default=0) / sample_rate
    return int(math.ceil(max(min_duration_s, speech_end_s + tail_s) * fps - 1e-9))


def mix_track(placed: list[PlacedLine], n_samples: int, anchor: str | None = None) -> np.ndarray:
    """Sum of the placed lines (only ``anchor``'s when given) on a [n_samples] float32 timeline."""
    out = np.zeros(n_samples, dtype=np.float32)
    for p in placed:
        if anchor is None or p.anchor == anchor:
            seg = p.wav[: max(0, n_samples - p.start)]
            out[p.start:p.start + len(seg)] += seg
    return out


def assign_voices(distances: dict[str, dict[str, float]], distinct: bool) -> dict[str, tuple[str, float]]:
    """Voice per subject from distances {anchor: {voice: d}} (lower is nearer): the nearest each, or, when
    ``distinct`` and there are enough voices, the distinct voices of least total distance (Hungarian matching).
    Ties go to the voice name that sorts first."""
    from scipy.optimize import linear_sum_assignment

    anchors = list(distances)
    voices = sorted(next(iter(distances.values()))) if distances else []
    if not distinct or len(anchors) < 2 or len(voices) < len(anchors):
        return {a: min(((v, distances[a][v]) for v in voices), key=lambda vd: vd[1]) for a in anchors}
    cost = np.array([[distances[a][v] for v in voices] for a in anchors], dtype=np.float64)  # [S, V]
    rows, cols = linear_sum_assignment(cost)
    return {anchors[r]: (voices[c], float(cost[r, c])) for r, c in zip(rows, cols)}


@register_generator("cascade")
class CascadeGenerator:
    """Classical TTS (installed voice nearest by MFCC/log-F0 statistics) + landmark-warp lip animation."""

    name = "cascade"
    capabilities = Capabilities(multi_subject=True, multi_view=True, voice_reference=True)

    def __init__(self, fps: float = 25.0, size: tuple[int, int] | list[int] = (384, 384), sample_rate: int = 16000,
                 pause_s: float = 0.35, lead_in_s: float = 0.25, tail_s: float = 0.3, voice_match: str = "nearest",
                 distinct_voices: bool = True, line_rms: float = 0.08, voices: list[str] | None = None,
                 voice_cache_dir: str | None = str(tts.DEFAULT_CACHE_DIR)):
        w, h = (int(v) for v in size)
        self.cfg = CascadeConfig(float(fps), (w, h), int(sample_rate), float(pause_s), float(lead_in_s),
                                 float(tail_s), str(voice_match), bool(distinct_voices), float(line_rms))
        self.anim_cfg = animate.AnimateConfig()
        self.voice_names = list(voices) if voices else None
        self.voice_cache_dir = Path(voice_cache_dir).expanduser() if voice_cache_dir else None
        self.bank: tts.VoiceBank | None = None
        self._ref_distances: dict[str, dict[str, float]] = {}  # reference voice path -> {voice: distance}

    # ---------------------------------------------------------------- loading
    def load(self) -> None:
        """Catalogue the installed voices and measure each once (the voice bank, cached on disk); idempotent."""
        if self.bank is not None:
            return
        installed = tts.installed_voices()
        chosen = [v for v in installed if self.voice_names is None
                  or v.name in self.voice_names or v.voice_id in self.voice_names]
        if not chosen:
            raise FileNotFoundError(f"cascade: none of voices={self.voice_names} is installed; "
                                    f"installed: {[v.name for v in installed]}")
        nearest = self.cfg.voice_match == "nearest"
        bank = tts.VoiceBank(chosen, self.voice_cache_dir, load_features=nearest)  # a fixed voice needs none
        if not nearest:
            bank.voice(self.cfg.voice_match)  # fail at load time on an unknown fixed voice
        self.bank = bank

    def describe(self) -> dict[str, Any]:
        """Config and identity of every component that shapes the output."""
        self.load()
        assert self.bank is not None
        cfg = asdict(self.cfg)
        cfg["size"] = list(self.cfg.size)
        return {
            "name": self.name,
            "params": cfg,
            "animate": asdict(self.anim_cfg),
            "tts_voices": [v.name for v in self.bank.voices],
            "tts_engines": tts.engine_versions(),
            "voice_matcher": tts.matcher_description() if self.cfg.voice_match == "nearest" else {"method": "fixed"},
        }

    # ---------------------------------------------------------------- generation
    def generate(self, item: Item, seed: int) -> GeneratedSample:
        """Speak the item's script with matched voices and animate every subject's reference face."""
        self.load()
        if item.language != "en" or any(tts.has_cjk(t.text) for t in item.script):
            raise MediaError("tts_language_unsupported", f"cascade: no installed TTS voice speaks {item.language}")
        if not item.script:
            raise MediaError("bad_input", f"cascade: item {item.id} has an empty script")
        cfg = self.cfg
        voices = self._match_voices(item)
        lines = [(t.anchor, self._speak(t.text, voices[t.anchor]["voice"])) for t in item.script]
        placed = place_turns(lines, cfg.sample_rate, cfg.lead_in_s, cfg.pause_s)
        n_frames = clip_frames(placed, cfg.sample_rate, cfg.fps, item.duration_s, cfg.tail_s)
        n_samples = int(round(n_frames / cfg.fps * cfg.sample_rate))
        audio_n = mix_track(placed, n_samples)  # [N]
        panels = [self._animate_subject(s, mix_track(placed, n_samples, s.anchor), n_frames, seed)
                  for s in item.subjects]
        video = np.concatenate(panels, axis=2)  # [T, H, n*W, 3]
        info = {
            "voices": voices,
            "tts_engines": tts.engine_versions(),
            "speech_s": round(max(p.end for p in placed) / cfg.sample_rate, 3),
            "turns": [{"anchor": p.anchor, "start_s": round(p.start / cfg.sample_rate, 3),
                       "end_s": round(p.end / cfg.sample_rate, 3)} for p in placed],
            "reference_views_used": 1,
            "failures": [],
        }
        return GeneratedSample(fps=cfg.fps, sample_rate=cfg.sample_rate, video=video, audio=audio_n, info=info)

    def _speak(self, text: str, voice_name: str) -> np.ndarray:
        """One line at the output rate, loudness-normalised: [N] float32."""
        assert self.bank is not None
        wav = tts.synthesize_at(text, self.bank.voice(voice_name), self.cfg.sample_rate)
        return normalise_line(wav, self.cfg.line_rms)

    def _match_voices(self, item: Item) -> dict[str, dict[str, Any]]:
        """{anchor: {voice, distance, match, method, distances}}: nearest installed voices (distinct per subject)
        by the classical matcher, or the fixed voice."""
        assert self.bank is not None
        if self.cfg.voice_match != "nearest":
            name = self.bank.voice(self.cfg.voice_match).name
            return {s.anchor: {"voice": name, "distance": None, "match": "fixed"} for s in item.subjects}
        distances = {s.anchor: self._reference_distances(s) for s in item.subjects}
        chosen = assign_voices(distances, self.cfg.distinct_voices)
        return {s.anchor: {"voice": chosen[s.anchor][0], "distance": round(chosen[s.anchor][1], 4),
                           "match": "nearest", "method": f"{tts.FEATURE_METHOD}/v{tts.FEATURE_VERSION}",
                           "distances": {k: round(x, 4) for k, x in sorted(distances[s.anchor].items())}}
                for s in item.subjects}

    def _reference_distances(self, subject: Subject) -> dict[str, float]:
        """Distance of the subject's reference voice to every bank voice (cached per reference file)."""
        assert self.bank is not None
        key = str(subject.voice)
        if key not in self._ref_distances:
            if subject.voice is None or not Path(subject.voice).is_file():
                self._ref_distances[key] = self.bank.distances(_reference_voice(subject))  # its clear error
            else:
                feats = self.bank.reference_features(Path(subject.voice), lambda: _reference_voice(subject))
                self._ref_distances[key] = self.bank.distances_to(feats)
        return self._ref_distances[key]

    def _animate_subject(self, subject: Subject, track_n: np.ndarray, n_frames: int, seed: int) -> np.ndarray:
        """Talking panel [T, H, W, 3] of one subject driven by its own speech track [N]."""
        from iap_bench.media.faces import detect_faces
        from iap_bench.media.refs import load_image

        if not subject.faces:
            raise MediaError("bad_reference", f"cascade: subject {subject.anchor} has no bound reference face")
        image = load_image(subject.faces[0])
        faces = detect_faces(image)
        if not faces:
            raise MediaError("bad_reference", f"cascade: no face found in reference {subject.faces[0]}")
        cfg = self.cfg
        panel, lm = animate.frame_portrait(image, faces[0].bbox, faces[0].landmarks, cfg.size,
                                           self.anim_cfg.face_frac)
        env_t = animate.speech_envelope(track_n, cfg.sample_rate, cfg.fps, n_frames)
        motion_t4 = animate.head_motion(n_frames, cfg.fps, np.random.default_rng([seed, subject.index]))
        return animate.animate_panel(panel, lm, env_t, motion_t4, self.anim_cfg)


def _reference_voice(subject: Subject) -> np.ndarray:
    """The subject's bound reference voice at the feature rate (16 kHz) [N] (clear error when unbound)."""
    from iap_bench.media.refs import load_audio

    if subject.voice is None:
        raise MediaError("bad_reference", f"cascade: subject {subject.anchor} has no bound reference voice "
                                      "(voice_match=nearest needs one; set a fixed voice name instead)")
    return np.asarray(load_audio(subject.voice, tts.FEATURE_SR), dtype=np.float32)
