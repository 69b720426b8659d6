"""One generated sample, decoded once (video + audio in a single PyAV pass); derived views cached lazily.

Views (frames at any fps/size, mono audio at any rate, faces) are computed on first request under a per-sample
lock, so they may be requested from worker threads. Native frames are kept in RAM as RGB uint8 for the sample's
lifetime (call ``release()`` to drop everything). Returned arrays are read-only because they are shared.

Audio alignment: the audio track is shifted by its start-time offset to the video and trimmed to the video
duration (AAC pads its last frame), so ``len(audio(sr)) == round(duration_s * sr)`` for a muxed mp4.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from iap_bench.errors import MediaError
from iap_bench.hashing import file_sha256
from iap_bench.media.audio import check_audio, resample, to_mono
from iap_bench.media.faces import FaceDetections, detect_on_frames

DECODE_COUNTS: Counter[str] = Counter()  # container decode passes keyed by str(path); tests assert == 1

Size = int | tuple[int, int] | None


@dataclass
class Decoded:
    """Everything one decode pass yields; derived views are computed from this."""

    frames: np.ndarray | None  # [T, H, W, 3] uint8 RGB, None when there is no video stream
    frame_times: np.ndarray  # [T] float64 seconds from the video start
    fps: float
    audio: np.ndarray | None  # [C, N] float32 at audio_sr, None when there is no audio stream
    audio_sr: int


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def _norm_size(size: object) -> Size:
    """Hashable size key: None, a short-side int, or a (W, H) tuple (accepts lists / numpy ints)."""
    if size is None:
        return None
    if isinstance(size, int | np.integer):
        return int(size)
    w, h = size  # type: ignore[misc]
    return int(w), int(h)


def resize_frames(frames: np.ndarray, size: Size) -> np.ndarray:
    """[T, H, W, 3] -> resized with INTER_AREA; int size = short side (aspect kept), tuple = (W, H)."""
    if size is None:
        return frames
    h, w = frames.shape[1:3]
    if isinstance(size, int):
        s = size / min(h, w)
        tw, th = (size, max(1, round(h * s))) if w <= h else (max(1, round(w * s)), size)
    else:
        tw, th = int(size[0]), int(size[1])
    if (tw, th) == (w, h):
        return frames
    out = np.empty((frames.shape[0], th, tw, 3), dtype=np.uint8)
    for i, f in enumerate(frames):
        out[i] = cv2.resize(f, (tw, th), interpolation=cv2.INTER_AREA)
    return out


def resample_indices(frame_times: np.ndarray, duration_s: float, fps: float) -> np.ndarray:
    """Nearest native frame for each output timestamp k / fps, k < round(duration_s * fps); pure function."""
    n_out = max(1, int(round(duration_s * fps)))
    t = np.arange(n_out) / fps
    right = np.clip(np.searchsorted(frame_times, t), 1, len(frame_times) - 1) if len(frame_times) > 1 else None
    if right is None:
        return np.zeros(n_out, dtype=np.int64)
    left = right - 1
    pick_left = (t - frame_times[left]) <= (frame_times[right] - t)
    return np.where(pick_left, left, right).astype(np.int64)


def _layout(stream) -> str:  # noqa: ANN001
    return "mono" if stream.codec_context.channels == 1 else "stereo"


def decode_container(path: Path) -> Decoded:
    """One demux/decode pass over video + audio; raises MediaError(decode_error|empty)."""
    import av

    try:
        empty = Path(path).stat().st_size == 0  # FFmpeg would call it "invalid data"
    except OSError:
        empty = False  # missing / unreadable: av.open reports it as decode_error
    if empty:
        raise MediaError("empty", f"{path}: file is empty (0 bytes)")
    DECODE_COUNTS[str(path)] += 1
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.FFmpegError, OSError, ValueError) as e:
        raise MediaError("decode_error", f"{path}: {e}") from None
    try:
        with container:
            vs = container.streams.video[0] if container.streams.video else None
            aus = container.streams.audio[0] if container.streams.audio else None
            if vs is None and aus is None:
                raise MediaError("empty", f"{path}: no audio or video stream")
            streams = [s for s in (vs, aus) if s is not None]
            if vs is not None:
                vs.thread_type = "AUTO"
                from iap_bench.threads import current_threads

                if current_threads():  # FFmpeg's decoder threads follow eval.threads (one place)
                    vs.codec_context.thread_count = current_threads()
            resampler = None
            if aus is not None:
                sr = aus.codec_context.sample_rate
                resampler = av.AudioResampler(format="fltp", layout=_layout(aus), rate=sr)
            frames: list[np.ndarray] = []
            vtimes: list[float] = []
            chunks: list[np.ndarray] = []
            a_start: float | None = None
            for packet in container.demux(*streams):
                for frame in packet.decode():
                    if packet.stream is vs:
                        frames.append(frame.to_ndarray(format="rgb24"))
                        vtimes.append(float(frame.time) if frame.time is not None else np.nan)
                    else:
                        if a_start is None and frame.time is not None:
                            a_start = float(frame.time)
                        chunks.extend(o.to_ndarray() for o in resampler.resample(frame))
            if resampler is not None:
                chunks.extend(o.to_ndarray() for o in resampler.resample(None))
            fps = _stream_fps(vs, vtimes) if vs is not None else 0.0
            audio_sr = aus.codec_context.sample_rate if aus is not None else 0
    except av.FFmpegError as e:
        raise MediaError("decode_error", f"{path}: {e}") from None
    if not frames and not any(c.size for c in chunks):
        raise MediaError("empty", f"{path}: zero frames and no audio samples")
    times = _frame_times(vtimes, fps)
    video = np.stack(frames) if frames else None
    audio = np.concatenate(chunks, axis=1).astype(np.float32) if aus is not None and chunks else None
    if aus is not None and audio is None:
        audio = np.zeros((1, 0), np.float32)
    if audio is not None and video is not None:
        v_start = float(np.nanmin(vtimes)) if vtimes and not np.all(np.isnan(vtimes)) else 0.0
        audio = _align_audio(audio, audio_sr, (a_start or 0.0) - v_start, len(frames) / fps)
    return Decoded(video, times, fps, audio, audio_sr)


def _stream_fps(vs, vtimes: list[float]) -> float:  # noqa: ANN001
    """Native fps: the stream's average rate, else the median frame spacing, else 25."""
    rate = vs.average_rate or vs.guessed_rate
    if rate:
        return float(Fraction(rate))
    t = np.asarray(vtimes, dtype=np.float64)
    d = np.diff(t[~np.isnan(t)])
    return float(1.0 / np.median(d)) if d.size and np.median(d) > 0 else 25.0


def _frame_times(vtimes: list[float], fps: float) -> np.ndarray:
    """Frame timestamps from the video start (seconds); CFR positions when timestamps are missing/unsorted."""
    t = np.asarray(vtimes, dtype=np.float64)
    if t.size == 0:
        return t
    if np.any(np.isnan(t)) or np.any(np.diff(t) <= 0):
        return np.arange(t.size) / fps
    return t - t[0]


def _align_audio(audio: np.ndarray, sr: int, offset_s: float, duration_s: float) -> np.ndarray:
    """Shift [C, N] audio so sample 0 is at the first video frame, then trim to the video duration."""
    shift = int(round(offset_s * sr))
    if shift > 0:
        audio = np.pad(audio, ((0, 0), (shift, 0)))
    elif shift < 0:
        audio = audio[:, -shift:]
    n = int(round(duration_s * sr))
    return audio[:, :n] if audio.shape[1] > n else audio


class SampleMedia:
    """A generated sample file with decode-once, lazily derived and cached views (thread-safe)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.RLock()
        self._hash: str | None = None
        self._decoded: Decoded | None = None
        self._error: MediaError | None = None
        self._frames: dict[tuple[float | None, Size], np.ndarray] = {}
        self._audio: dict[int, np.ndarray] = {}
        self._mono_native: np.ndarray | None = None
        self._faces: dict[int, FaceDetections] = {}
        self.loaded_in_thread: str | None = None  # name of the thread that ran load() (pool diagnostics)

    def __repr__(self) -> str:
        state = "error" if self._error else "decoded" if self._decoded else "lazy"
        return f"SampleMedia({str(self.path)!r}, {state})"

    # ---- loading -------------------------------------------------------------------------------------
    def load(self) -> SampleMedia:
        """Hash + decode now (idempotent); failures are stored and re-raised by every view, never here."""
        with self._lock:
            self.loaded_in_thread = threading.current_thread().name
            try:
                _ = self.content_hash
            except MediaError:
                return self
            try:
                self._decode()
            except MediaError:
                pass
            return self

    @property
    def error(self) -> MediaError | None:
        """The stored decode failure, if any (None before decoding or when decoding succeeded)."""
        return self._error

    def _decode(self) -> Decoded:
        with self._lock:
            if self._error is not None:
                raise self._error
            if self._decoded is None:
                try:
                    if not self.path.is_file():
                        raise MediaError("decode_error", f"{self.path}: file not found")
                    if self.path.stat().st_size == 0:
                        raise MediaError("empty", f"{self.path}: file is empty")
                    self._decoded = decode_container(self.path)
                except MediaError as e:
                    self._error = e
                    raise
                except Exception as e:  # an unexpected decoder failure is still a per-sample reason
                    self._error = MediaError("decode_error", f"{self.path}: {type(e).__name__}: {e}")
                    raise self._error from e
            return self._decoded

    def release(self) -> None:
        """Drop decoded data and cached views (the hash and any error are kept)."""
        with self._lock:
            self._decoded = None
            self._frames.clear()
            self._audio.clear()
            self._faces.clear()
            self._mono_native = None

    # ---- facts ---------------------------------------------------------------------------------------
    @property
    def content_hash(self) -> str:
        """sha256 of the file bytes (MediaError decode_error if the file cannot be read)."""
        with self._lock:
            if self._hash is None:
                try:
                    self._hash = file_sha256(self.path)
                except OSError as e:
                    self._error = self._error or MediaError("decode_error", f"{self.path}: {e.strerror or e}")
                    raise self._error from None
            return self._hash

    def _video(self) -> Decoded:
        d = self._decode()
        if d.frames is None:
            raise MediaError("no_video", f"{self.path}: no video stream")
        return d

    @property
    def has_audio(self) -> bool:
        return self._decode().audio is not None

    @property
    def fps(self) -> float:
        return self._video().fps

    @property
    def n_frames(self) -> int:
        d = self._decode()
        return 0 if d.frames is None else int(d.frames.shape[0])

    @property
    def width(self) -> int:
        return int(self._video().frames.shape[2])

    @property
    def height(self) -> int:
        return int(self._video().frames.shape[1])

    @property
    def duration_s(self) -> float:
        """Video duration (n_frames / fps); audio duration for audio-only files."""
        d = self._decode()
        if d.frames is not None:
            return d.frames.shape[0] / d.fps
        return d.audio.shape[1] / d.audio_sr if d.audio is not None and d.audio_sr else 0.0

    # ---- views ---------------------------------------------------------------------------------------
    def frame_indices(self, n: int) -> np.ndarray:
        """n native frame indices spread uniformly: round(linspace(0, n_frames - 1, n))."""
        t = int(self._video().frames.shape[0])
        return np.round(np.linspace(0, t - 1, n)).astype(np.int64)

    def frames(self, fps: float | None = None, size: Size = None) -> np.ndarray:
        """[T, H, W, 3] uint8 RGB at ``fps`` (nearest native frame; None = native) and ``size``; cached."""
        key = (None if fps is None else float(fps), _norm_size(size))
        with self._lock:
            if key not in self._frames:
                d = self._video()
                src = d.frames
                if fps is not None and abs(float(fps) - d.fps) > 1e-6:
                    src = src[resample_indices(d.frame_times, self.duration_s, float(fps))]
                out = resize_frames(src, key[1])
                self._frames[key] = out if out is d.frames else _readonly(out)
                if out is d.frames:
                    d.frames.setflags(write=False)
            return self._frames[key]

    def audio(self, sr: int) -> np.ndarray:
        """[N] float32 mono at ``sr`` (channel mean, resampled once from native); cached per rate.

        MediaError ``no_audio``, ``nonfinite_audio`` or ``silent`` for a track no audio metric can read."""
        with self._lock:
            if sr not in self._audio:
                d = self._decode()
                if d.audio is None:
                    raise MediaError("no_audio", f"{self.path}: no audio stream")
                if self._mono_native is None:
                    self._mono_native = to_mono(d.audio)
                check_audio(self._mono_native, str(self.path))
                self._audio[sr] = _readonly(resample(self._mono_native, d.audio_sr, int(sr)))
            return self._audio[sr]

    def faces(self, n: int = 32) -> FaceDetections:
        """Faces (dlib HOG + 68 landmarks) and IoU tracks on ``n`` uniformly sampled native frames; cached."""
        with self._lock:
            if n not in self._faces:
                d = self._video()
                idx = self.frame_indices(n)
                self._faces[n] = detect_on_frames(d.frames[idx], idx)
            return self._faces[n]
