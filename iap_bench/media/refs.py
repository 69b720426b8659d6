"""Reference media loaders (face images, voice clips), cached per (file, mtime) so each is read once per run.

Returned arrays are read-only because they are shared through the cache; copy before modifying.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from iap_bench.errors import MediaError
from iap_bench.media.audio import resample, to_mono

_AV_AUDIO_EXTS = {".m4a", ".mp4", ".aac", ".mkv", ".mov", ".webm", ".opus"}


def _file_key(path: str | os.PathLike) -> tuple[str, int, int]:
    """(resolved path, mtime_ns, size): the cache key; raises MediaError if the file is missing or empty."""
    p = Path(path).expanduser()
    try:
        st = p.stat()
    except OSError as e:
        raise MediaError("decode_error", f"{p}: file not found ({e.strerror})") from None
    if st.st_size == 0:
        raise MediaError("empty", f"{p}: file is empty")
    return str(p.resolve()), st.st_mtime_ns, st.st_size


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image as [H, W, 3] uint8 RGB: EXIF orientation applied, alpha composited on white, gray expanded."""
    return _load_image(*_file_key(path))


@lru_cache(maxsize=256)
def _load_image(path: str, mtime_ns: int, size: int) -> np.ndarray:
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                rgba = im.convert("RGBA")
                canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                im = Image.alpha_composite(canvas, rgba)
            arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise MediaError("decode_error", f"{path}: unreadable image ({e})") from None
    if arr.size == 0:
        raise MediaError("empty", f"{path}: image has no pixels")
    return _readonly(np.ascontiguousarray(arr))


def read_audio_file(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Decode an audio file at its native rate -> ([C, N] float32, sr); soundfile first, PyAV as fallback."""
    p = Path(path)
    if p.suffix.lower() not in _AV_AUDIO_EXTS:
        import soundfile as sf

        try:
            data, sr = sf.read(str(p), dtype="float32", always_2d=True)  # [N, C]
            return np.ascontiguousarray(data.T), int(sr)
        except (sf.LibsndfileError, RuntimeError, TypeError):
            pass
    return _read_audio_av(p)


def _read_audio_av(path: Path) -> tuple[np.ndarray, int]:
    """Decode the first audio stream of any container with PyAV -> ([C, N] float32, sr)."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise MediaError("no_audio", f"{path}: no audio stream")
            stream = container.streams.audio[0]
            sr = stream.codec_context.sample_rate
            resampler = av.AudioResampler(format="fltp", layout=_layout_name(stream), rate=sr)
            chunks = []
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray())
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray())
    except av.FFmpegError as e:
        raise MediaError("decode_error", f"{path}: {e}") from None
    if not chunks:
        raise MediaError("empty", f"{path}: no audio samples")
    return np.concatenate(chunks, axis=1).astype(np.float32), int(sr)


def _layout_name(stream) -> str:  # noqa: ANN001  (an av.AudioStream)
    """Keep mono as mono and fold anything with more channels to stereo."""
    return "mono" if stream.codec_context.channels == 1 else "stereo"


def load_audio(path: str | os.PathLike, sr: int) -> np.ndarray:
    """Read a voice clip as [N] float32 mono at ``sr`` (channel mean, then resampling)."""
    return _load_audio(*_file_key(path), int(sr))


@lru_cache(maxsize=128)
def _load_audio(path: str, mtime_ns: int, size: int, sr: int) -> np.ndarray:
    data, native = read_audio_file(path)
    if data.size == 0:
        raise MediaError("empty", f"{path}: no audio samples")
    return _readonly(resample(to_mono(data), native, sr))
