"""The ``precomputed`` generator: points the harness at samples another tool already wrote to disk.

Layouts: one mp4 (video + audio) per item via ``pattern``, or a video file plus a separate audio file via
``audio_pattern`` (the runner muxes them). A missing file raises MediaError("missing_sample"), which the
runner records as that item's failure.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

from iap_bench.benchmark.schema import Item
from iap_bench.errors import MediaError
from iap_bench.generators.base import Capabilities, GeneratedSample, register_generator


def probe_rates(path: Path) -> tuple[float, int]:
    """(video fps, audio sample rate) from container headers, without decoding; 0 for a missing stream.

    Raises MediaError("empty") for a 0-byte file, MediaError("decode_error") for anything FFmpeg cannot open.
    """
    import av

    try:
        empty = Path(path).stat().st_size == 0
    except OSError:
        empty = False  # missing / unreadable: av.open reports it as decode_error
    if empty:
        raise MediaError("empty", f"{path}: file is empty (0 bytes)")
    try:
        with av.open(str(path), metadata_errors="ignore") as c:
            fps = 0.0
            if c.streams.video:
                vs = c.streams.video[0]
                rate = vs.average_rate or vs.guessed_rate
                fps = float(Fraction(rate)) if rate else 0.0
            sr = c.streams.audio[0].codec_context.sample_rate if c.streams.audio else 0
            return fps, int(sr)
    except (av.FFmpegError, OSError, ValueError) as e:
        raise MediaError("decode_error", f"{path}: {e}") from None


@register_generator("precomputed")
class PrecomputedGenerator:
    """Reads ``samples_dir / pattern.format(item_id=...)``; generates nothing, so the seed is ignored."""

    name = "precomputed"
    capabilities = Capabilities(multi_subject=True, multi_view=True, voice_reference=True)

    def __init__(self, samples_dir: str | Path, pattern: str = "{item_id}.mp4", audio_pattern: str | None = None,
                 label: str | None = None):
        if samples_dir in (None, "", "???"):
            raise ValueError("precomputed generator needs generator.params.samples_dir")
        self.samples_dir = Path(samples_dir).expanduser()
        self.pattern = pattern
        self.audio_pattern = audio_pattern
        self.label = label

    def load(self) -> None:
        """Check the samples folder exists (a clear error up front instead of one failure per item)."""
        if not self.samples_dir.is_dir():
            raise FileNotFoundError(f"precomputed samples_dir does not exist: {self.samples_dir}")

    def path_for(self, item: Item, pattern: str) -> Path:
        """The file a pattern names for an item (fields: item_id, split)."""
        return self.samples_dir / pattern.format(item_id=item.id, split=item.split)

    def generate(self, item: Item, seed: int) -> GeneratedSample:
        """Return the existing sample for ``item`` (fps / sample rate read from the headers)."""
        video = self.path_for(item, self.pattern)
        if not video.is_file():
            raise MediaError("missing_sample", str(video))
        audio = None
        if self.audio_pattern:
            audio = self.path_for(item, self.audio_pattern)
            if not audio.is_file():
                raise MediaError("missing_sample", str(audio))
        fps, sr = probe_rates(video)
        if audio is not None:
            sr = probe_rates(audio)[1]
        info = {"precomputed_video": str(video), "precomputed_audio": str(audio) if audio else None}
        return GeneratedSample(fps=fps, sample_rate=sr, source=video, source_audio=audio, info=info)

    def item_identity(self, item: Item) -> dict[str, Any]:
        """Content hashes of an item's source file(s): a file replaced in place is a new sample."""
        from iap_bench.hashing import file_sha256

        out: dict[str, Any] = {}
        for kind, pattern in (("video", self.pattern), ("audio", self.audio_pattern)):
            if pattern:
                p = self.path_for(item, pattern)
                out[kind] = file_sha256(p, fresh=True) if p.is_file() else None
        return out

    def describe(self) -> dict[str, Any]:
        """Adapter identity for the sidecar and leaderboard (label = the model name shown)."""
        return {"generator": self.name, "label": self.label, "samples_dir": str(self.samples_dir),
                "pattern": self.pattern, "audio_pattern": self.audio_pattern}
