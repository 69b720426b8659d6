"""Encode samples to mp4 with PyAV: H.264 yuv420p video (even dims, exact rational fps) + AAC audio.

AAC adds encoder priming and pads the last frame; FFmpeg's mp4 muxer writes an edit list for the priming,
and ``SampleMedia`` trims decoded audio to the video duration, so decoded length ~= the written length.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import numpy as np

from iap_bench.errors import MediaError

VIDEO_CODECS = ("libx264", "h264", "libopenh264", "mpeg4")  # first one PyAV's FFmpeg can encode wins
NTSC_BASES = (24, 30, 48, 60, 120)
AAC_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000)


@dataclass(frozen=True)
class WriteInfo:
    """What was written: codecs actually used, exact fps, padded size, audio facts."""

    path: Path
    video_codec: str
    audio_codec: str | None
    fps: Fraction
    width: int
    height: int
    n_frames: int
    sample_rate: int | None
    channels: int


def as_fraction(fps: float | Fraction | int) -> Fraction:
    """Exact rational fps: 25 -> 25/1, 29.97 -> 30000/1001, 23.976 -> 24000/1001."""
    if isinstance(fps, Fraction):
        return fps
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    for k in NTSC_BASES:  # decimal spellings of NTSC rates (23.976, 29.97, 59.94) mean k * 1000 / 1001
        if abs(fps - k * 1000 / 1001) < 2e-4:
            return Fraction(k * 1000, 1001)
    return Fraction(fps).limit_denominator(1001)


@lru_cache(maxsize=1)
def video_encoder() -> str:
    """Name of the best available H.264 encoder (mpeg4 as last resort)."""
    import av

    for name in VIDEO_CODECS:
        try:
            av.codec.Codec(name, "w")
            return name
        except Exception:
            continue
    raise RuntimeError(f"none of the video encoders {VIDEO_CODECS} is available in PyAV's FFmpeg")


def pad_even(video: np.ndarray) -> np.ndarray:
    """Pad [T, H, W, 3] on the bottom/right by edge replication so H and W are even (yuv420p needs it)."""
    _, h, w, _ = video.shape
    ph, pw = h % 2, w % 2
    if not (ph or pw):
        return video
    return np.pad(video, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge")


def _check_video(video: np.ndarray) -> np.ndarray:
    v = np.asarray(video)
    if v.ndim != 4 or v.shape[-1] != 3 or v.shape[0] == 0:
        raise MediaError("bad_input", f"video must be [T, H, W, 3] with T > 0, got {v.shape}")
    if v.dtype != np.uint8:
        v = np.clip(v, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(pad_even(v))


def _check_audio(audio: np.ndarray) -> np.ndarray:
    """-> [C, N] float32 with C in (1, 2); more channels are rejected (mix down first)."""
    a = np.asarray(audio, dtype=np.float32)
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2 or a.shape[0] not in (1, 2):
        raise MediaError("bad_input", f"audio must be [N] or [C, N] with C in (1, 2), got {a.shape}")
    return np.ascontiguousarray(np.clip(a, -1.0, 1.0))


def _add_audio_stream(container, sample_rate: int, channels: int):  # noqa: ANN001, ANN202
    return container.add_stream("aac", rate=sample_rate, layout="mono" if channels == 1 else "stereo",
                                bit_rate=128_000 * channels)


def _encode_audio(container, stream, audio: np.ndarray, sample_rate: int) -> None:  # noqa: ANN001
    """Feed [C, N] float32 into an AAC stream in 1024-sample planar frames, then flush."""
    import av

    layout = "mono" if audio.shape[0] == 1 else "stereo"
    step = 1024
    for start in range(0, audio.shape[1], step):
        chunk = np.ascontiguousarray(audio[:, start:start + step])
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
        frame.sample_rate = sample_rate
        frame.pts = start
        frame.time_base = Fraction(1, sample_rate)
        for pkt in stream.encode(frame):
            container.mux(pkt)
    for pkt in stream.encode(None):
        container.mux(pkt)


def write_mp4(path: str | os.PathLike, video: np.ndarray, fps: float | Fraction, audio: np.ndarray | None = None,
              sample_rate: int | None = None, crf: int = 18) -> WriteInfo:
    """Write [T, H, W, 3] uint8 RGB (+ optional [N] / [C, N] float32 audio) as H.264 + AAC mp4."""
    import av

    v = _check_video(video)
    a = _check_audio(audio) if audio is not None else None
    if a is not None and not sample_rate:
        raise MediaError("bad_input", "audio given without sample_rate")
    if a is not None and int(sample_rate) not in AAC_RATES:  # AAC cannot carry it: resample, recorded in WriteInfo
        from iap_bench.media.audio import resample

        a = np.stack([resample(c, int(sample_rate), 48000) for c in a])
        sample_rate = 48000
    rate = as_fraction(fps)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    codec = video_encoder()
    t, h, w, _ = v.shape
    with av.open(str(path), "w", format="mp4") as container:
        vs = container.add_stream(codec, rate=rate)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.time_base = 1 / rate
        if codec == "libx264":
            vs.options = {"crf": str(crf), "preset": "veryfast"}
        else:
            vs.bit_rate = max(1_000_000, w * h * 8)
        astream = _add_audio_stream(container, int(sample_rate), a.shape[0]) if a is not None else None
        for i in range(t):
            frame = av.VideoFrame.from_ndarray(v[i], format="rgb24")
            frame.pts = i
            frame.time_base = 1 / rate
            for pkt in vs.encode(frame):
                container.mux(pkt)
        for pkt in vs.encode(None):
            container.mux(pkt)
        if astream is not None:
            _encode_audio(container, astream, a, int(sample_rate))
    return WriteInfo(path, codec, "aac" if a is not None else None, rate, w, h, t,
                     int(sample_rate) if a is not None else None, a.shape[0] if a is not None else 0)


REMUX_CODECS = {"h264", "hevc", "mpeg4", "av1", "vp9"}  # video codecs the mp4 muxer accepts as-is


def mux_mp4(video_path: str | os.PathLike, audio_path: str | os.PathLike, out: str | os.PathLike) -> WriteInfo:
    """Combine a video file with a separate audio file: remux the video stream if mp4-compatible, AAC audio."""
    import av

    from iap_bench.media.audio import resample
    from iap_bench.media.refs import read_audio_file

    audio, sr = read_audio_file(audio_path)  # [C, N]
    if audio.shape[0] > 2:
        audio = audio.mean(axis=0, keepdims=True)
    if sr not in AAC_RATES:
        audio = np.stack([resample(c, sr, 48000) for c in audio])
        sr = 48000
    audio = _check_audio(audio)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        src = av.open(str(video_path))
    except (av.FFmpegError, OSError) as e:
        raise MediaError("decode_error", f"{video_path}: {e}") from None
    with src:
        if not src.streams.video:
            raise MediaError("no_video", f"{video_path}: no video stream")
        vin = src.streams.video[0]
        if vin.codec_context.name not in REMUX_CODECS:
            src.close()
            return _reencode_with_audio(video_path, audio, sr, out)
        with av.open(str(out), "w", format="mp4") as dst:
            vout = dst.add_stream_from_template(vin)
            astream = _add_audio_stream(dst, sr, audio.shape[0])
            n = 0
            for pkt in src.demux(vin):
                if pkt.dts is None:
                    continue
                pkt.stream = vout
                dst.mux(pkt)
                n += 1
            _encode_audio(dst, astream, audio, sr)
            rate = vin.average_rate or vin.guessed_rate or Fraction(25)
            return WriteInfo(out, f"copy:{vin.codec_context.name}", "aac", Fraction(rate), vin.width, vin.height,
                             n, sr, audio.shape[0])


def _reencode_with_audio(video_path: str | os.PathLike, audio: np.ndarray, sr: int, out: Path) -> WriteInfo:
    """Fallback for codecs mp4 cannot carry: decode every frame and re-encode with write_mp4."""
    import av

    with av.open(str(video_path)) as src:
        vin = src.streams.video[0]
        rate = vin.average_rate or vin.guessed_rate or Fraction(25)
        frames = np.stack([f.to_ndarray(format="rgb24") for f in src.decode(vin)])
    return write_mp4(out, frames, Fraction(rate), audio, sr)
