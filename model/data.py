"""Training data: a folder format for curated identity-labelled clips, a pixel/wave Dataset and a latent one.

Folder layout (``root/``):
    index.jsonl   one record per clip (see ``ClipRecord``): video, audio, subjects with identity label,
                  reference face images (1..N views) and reference voice, structured caption (model.caption)
    <media files> paths in the index are relative to ``root``
    latents/      optional, written by ``precompute_latents``: one ``<id>.safetensors`` per clip + meta.safetensors

``ClipDataset`` returns pixels [3,T,H,W] in [-1,1] and wave [N] at 16 kHz at the configured size/duration;
``LatentDataset`` returns the precomputed latents directly (fast tiny training).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from iap_bench.errors import MediaError

INDEX_NAME = "index.jsonl"
LATENT_DIR = "latents"


@dataclass
class SubjectRecord:
    """One identity in a clip: its 1-based anchor index, identity label, face views and voice reference."""

    index: int
    identity: str
    faces: list[str]
    voice: str | None = None


@dataclass
class ClipRecord:
    """One training clip of the index (paths relative to the dataset root)."""

    id: str
    video: str | None
    audio: str | None
    subjects: list[SubjectRecord]
    caption: dict[str, Any]  # model.caption.spec_to_dict form
    fps: float = 24.0
    language: str = "en"

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClipRecord:
        subs = [SubjectRecord(**s) for s in d.get("subjects", [])]
        return cls(id=d["id"], video=d.get("video"), audio=d.get("audio"), subjects=subs,
                   caption=d.get("caption", {}), fps=float(d.get("fps", 24.0)), language=d.get("language", "en"))


def write_index(root: str | Path, records: Sequence[ClipRecord]) -> Path:
    """Write ``index.jsonl`` under root (one JSON object per line)."""
    path = Path(root) / INDEX_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(r.to_json() + "\n" for r in records), encoding="utf-8")
    return path


def read_index(root: str | Path) -> list[ClipRecord]:
    """Read and validate ``index.jsonl``: every referenced file must exist, ids must be unique."""
    root = Path(root)
    path = root / INDEX_NAME
    if not path.exists():
        raise FileNotFoundError(f"no {INDEX_NAME} in {root} (create one with model.toy_data or write_index)")
    records, problems, seen = [], [], set()
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = ClipRecord.from_dict(json.loads(line))
        except (KeyError, TypeError, json.JSONDecodeError) as e:
            problems.append(f"{path}:{n}: {e}")
            continue
        if rec.id in seen:
            problems.append(f"{path}:{n}: duplicate id {rec.id}")
        seen.add(rec.id)
        files = [rec.video, rec.audio] + [f for s in rec.subjects for f in s.faces] + [s.voice for s in rec.subjects]
        problems += [f"{path}:{n}: missing file {f}" for f in files if f and not (root / f).exists()]
        records.append(rec)
    if problems:
        raise ValueError("bad training index:\n  " + "\n  ".join(problems))
    return records


# --------------------------------------------------------------------------------------------------
# Media reading (PyAV / soundfile / Pillow) and shaping


def read_video(path: str | Path) -> tuple[np.ndarray, float]:
    """Decode all frames [T,H,W,3] uint8 RGB and the stream's fps."""
    import av

    try:
        with av.open(str(path)) as c:
            stream = c.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 24)
            frames = [f.to_ndarray(format="rgb24") for f in c.decode(stream)]
    except (av.error.FFmpegError, IndexError) as e:
        raise MediaError("decode_error", f"{path}: {e}") from e
    if not frames:
        raise MediaError("empty", str(path))
    return np.stack(frames), fps


def read_wave(path: str | Path, sr: int = 16_000) -> np.ndarray:
    """Mono float32 wave at ``sr`` (soundfile, then polyphase resampling if needed)."""
    import soundfile as sf

    try:
        wav, file_sr = sf.read(str(path), dtype="float32", always_2d=True)
    except RuntimeError as e:
        raise MediaError("decode_error", f"{path}: {e}") from e
    wav = wav.mean(axis=1)
    if file_sr != sr:
        from scipy.signal import resample_poly

        g = np.gcd(int(file_sr), int(sr))
        wav = resample_poly(wav, sr // g, int(file_sr) // g).astype(np.float32)
    if wav.size == 0:
        raise MediaError("empty", str(path))
    return wav


def read_image(path: str | Path) -> np.ndarray:
    """RGB uint8 [H,W,3]."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.array(im.convert("RGB"))
    except OSError as e:
        raise MediaError("decode_error", f"{path}: {e}") from e


def to_tensor_image(img: np.ndarray) -> torch.Tensor:
    """[H,W,3] uint8 -> [3,H,W] float in [-1,1]."""
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float() / 127.5 - 1.0


def resize_crop(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Scale [...,3,h,w] to cover (height, width), then centre-crop to it."""
    h, w = x.shape[-2:]
    s = max(height / h, width / w)
    nh, nw = max(height, round(h * s)), max(width, round(w * s))
    lead = x.shape[:-3]
    y = F.interpolate(x.reshape(-1, *x.shape[-3:]), size=(nh, nw), mode="bilinear", align_corners=False,
                      antialias=True)
    top, left = (nh - height) // 2, (nw - width) // 2
    return y[..., top: top + height, left: left + width].reshape(*lead, 3, height, width)


def resample_frames(frames: np.ndarray, src_fps: float, dst_fps: float, n: int) -> np.ndarray:
    """Pick ``n`` frames at ``dst_fps`` from a clip at ``src_fps`` (nearest; last frame repeated if short)."""
    idx = np.round(np.arange(n) * src_fps / dst_fps).astype(int)
    return frames[np.clip(idx, 0, len(frames) - 1)]


def fit_length(wave: np.ndarray, n: int) -> np.ndarray:
    """Crop or zero-pad a wave to exactly n samples."""
    return wave[:n] if wave.size >= n else np.pad(wave, (0, n - wave.size))


@dataclass
class ClipShape:
    """Pixel/wave size a dataset emits; frames must be 4n+1 and H, W multiples of 32 for the real codecs."""

    height: int = 128
    width: int = 128
    frames: int = 9
    fps: float = 16.0
    audio_samples: int = 8192  # = audio latents x 512
    ref_audio_samples: int = 4096  # = L x 512: voice reference window
    max_views: int = 1  # face views per identity (stage 3 > 1)
    sample_rate: int = 16_000


@dataclass
class ClipSample:
    """One decoded clip: pixels, wave, per-subject face views and voice, caption spec, identity labels."""

    id: str
    video: torch.Tensor  # [3,T,H,W] in [-1,1]
    audio: torch.Tensor  # [N]
    faces: list[list[torch.Tensor]]  # per subject: views [3,h,w] in [-1,1]
    voices: list[torch.Tensor]  # per subject: [n] (empty tensor when the subject has no voice)
    caption: dict[str, Any]
    identities: list[str]
    subject_index: list[int]


class ClipDataset(Dataset):
    """Decodes clips from an index folder to fixed-size pixel and wave tensors."""

    def __init__(self, root: str | Path, shape: ClipShape | None = None):
        self.root = Path(root)
        self.shape = shape or ClipShape()
        self.records = read_index(self.root)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> ClipSample:
        r, s = self.records[i], self.shape
        frames, fps = read_video(self.root / r.video) if r.video else (None, s.fps)
        if frames is None:
            video = torch.zeros(3, s.frames, s.height, s.width)
        else:
            pick = resample_frames(frames, fps, s.fps, s.frames)
            video = resize_crop(to_tensor_image_batch(pick), s.height, s.width).permute(1, 0, 2, 3)
        wave = read_wave(self.root / r.audio, s.sample_rate) if r.audio else np.zeros(s.audio_samples, np.float32)
        audio = torch.from_numpy(fit_length(wave, s.audio_samples))
        faces = [[to_tensor_image(read_image(self.root / f)) for f in sub.faces[: s.max_views]] for sub in r.subjects]
        voices = [torch.from_numpy(fit_length(read_wave(self.root / sub.voice, s.sample_rate), s.ref_audio_samples))
                  if sub.voice else torch.zeros(0) for sub in r.subjects]
        return ClipSample(r.id, video, audio, faces, voices, r.caption, [sub.identity for sub in r.subjects],
                          [sub.index for sub in r.subjects])


def to_tensor_image_batch(frames: np.ndarray) -> torch.Tensor:
    """[T,H,W,3] uint8 -> [T,3,H,W] float in [-1,1]."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


@dataclass
class ClipBatch:
    """Collated clips: stacked pixels/waves; refs stay per-sample lists (variable K and views)."""

    ids: list[str]
    video: torch.Tensor  # [B,3,T,H,W]
    audio: torch.Tensor  # [B,N]
    faces: list[list[list[torch.Tensor]]]
    voices: list[list[torch.Tensor]]
    captions: list[dict[str, Any]]
    identities: list[list[str]]


def collate_clips(samples: Sequence[ClipSample]) -> ClipBatch:
    """Stack fixed-size tensors; keep references as nested lists."""
    return ClipBatch([s.id for s in samples], torch.stack([s.video for s in samples]),
                     torch.stack([s.audio for s in samples]), [s.faces for s in samples],
                     [s.voices for s in samples], [s.caption for s in samples], [s.identities for s in samples])


# --------------------------------------------------------------------------------------------------
# Latents


@dataclass
class LatentBatch:
    """What one training step consumes: latents, text embeddings, identity refs (padded to k_max)."""

    ids: list[str]
    video: torch.Tensor  # [B,Cv,Tv,Hv,Wv]
    audio: torch.Tensor  # [B,Ta,Ca]
    text: torch.Tensor  # [B,Lt,Dt]
    ref_video: torch.Tensor  # [B,K,Cv,Hv,Wv]
    ref_audio: torch.Tensor  # [B,K,L,Ca]
    ref_audio_lens: torch.Tensor  # [B,K] long
    id_mask: torch.Tensor  # [B,K] bool
    extras: dict[str, Any] = field(default_factory=dict)

    def to(self, device: torch.device | str) -> LatentBatch:
        for k in ("video", "audio", "text", "ref_video", "ref_audio", "ref_audio_lens", "id_mask"):
            setattr(self, k, getattr(self, k).to(device))
        return self


class LatentDataset(Dataset):
    """Precomputed per-clip latents (``latents/<id>.safetensors``) written by ``precompute_latents``."""

    def __init__(self, root: str | Path, subdir: str = LATENT_DIR):
        from safetensors.torch import load_file

        self.dir = Path(root) / subdir if (Path(root) / subdir).is_dir() else Path(root)
        self.files = sorted(p for p in self.dir.glob("*.safetensors") if p.name != "meta.safetensors")
        if not self.files:
            raise FileNotFoundError(f"no latent files in {self.dir}; run model.data.precompute_latents first")
        meta = self.dir / "meta.safetensors"
        self.meta = load_file(str(meta)) if meta.exists() else {}
        self._cache: dict[int, dict[str, torch.Tensor]] = {}

    @property
    def empty_text(self) -> torch.Tensor | None:
        """Encoded empty caption [Lt,Dt] (the CFG-dropout text), if precomputed."""
        return self.meta.get("text_empty")

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> dict[str, Any]:
        from safetensors.torch import load_file

        if i not in self._cache:
            self._cache[i] = load_file(str(self.files[i]))
        return {"id": self.files[i].stem, **self._cache[i]}


def collate_latents(samples: Sequence[dict[str, Any]], k_max: int | None = None) -> LatentBatch:
    """Stack latents; pad identity refs to K = k_max (or the batch max) with id_mask False."""
    k = k_max or max(s["ref_video"].shape[0] for s in samples)
    L = max(s["ref_audio"].shape[1] for s in samples)

    def pad_refs(s: dict[str, Any]) -> tuple[torch.Tensor, ...]:
        kv = s["ref_video"].shape[0]
        if kv > k:
            raise ValueError(f"clip {s['id']} has {kv} identities > k_max {k}")
        rv = F.pad(s["ref_video"], (0, 0, 0, 0, 0, 0, 0, k - kv))
        ra = s["ref_audio"]
        ra = F.pad(ra, (0, 0, 0, L - ra.shape[1], 0, k - kv))
        lens = F.pad(s["ref_audio_lens"].long(), (0, k - kv))
        mask = torch.arange(k) < kv
        return rv, ra, lens, mask

    rv, ra, lens, mask = zip(*(pad_refs(s) for s in samples))
    return LatentBatch([s["id"] for s in samples], torch.stack([s["video"] for s in samples]),
                       torch.stack([s["audio"] for s in samples]), torch.stack([s["text"] for s in samples]),
                       torch.stack(rv), torch.stack(ra), torch.stack(lens), torch.stack(mask))


def encode_clip(codecs: Any, s: ClipSample, shape: ClipShape, caption_fn: Callable[[dict], str],
                pack_fn: Callable[[list[torch.Tensor], int, int], torch.Tensor], audio_ref_len: int) -> dict[str, Any]:
    """Encode one decoded clip into the latent record ``LatentDataset`` stores (video, audio, text, refs).

    caption_fn: caption dict -> caption string; pack_fn: (face views, H, W) -> one [3,H,W] canvas.
    """
    video = codecs.video.encode(s.video[None])[0]  # [Cv,Tv,Hv,Wv]
    audio = codecs.audio.encode(s.audio[None])[0]  # [Ta,Ca]
    text = codecs.text.encode([caption_fn(s.caption)])[0]  # [Lt,Dt]
    canvases = torch.stack([pack_fn(views, shape.height, shape.width) for views in s.faces])  # [K,3,H,W]
    ref_video = codecs.video.encode(canvases[:, :, None])[:, :, 0]  # [K,Cv,Hv,Wv]
    ref_audio, lens = [], []
    for v in s.voices:
        z = codecs.audio.encode(v[None])[0][:audio_ref_len] if v.numel() else audio.new_zeros(0, audio.shape[-1])
        lens.append(z.shape[0])
        ref_audio.append(F.pad(z, (0, 0, 0, audio_ref_len - z.shape[0])))
    return {"id": s.id, "video": video.contiguous(), "audio": audio.contiguous(), "text": text.contiguous(),
            "ref_video": ref_video.contiguous(), "ref_audio": torch.stack(ref_audio).contiguous(),
            "ref_audio_lens": torch.tensor(lens, dtype=torch.long)}


def precompute_latents(root: str | Path, codecs: Any, shape: ClipShape, caption_fn: Callable[[dict], str],
                       pack_fn: Callable[[list[torch.Tensor], int, int], torch.Tensor],
                       audio_ref_len: int, subdir: str = LATENT_DIR, progress: bool = True) -> Path:
    """Encode every clip of ``root`` with ``codecs`` into ``root/<subdir>`` (+ meta.safetensors: empty text)."""
    from safetensors.torch import save_file

    ds = ClipDataset(root, shape)
    out = Path(root) / subdir
    out.mkdir(parents=True, exist_ok=True)
    for i in _progress(range(len(ds)), "encoding latents", progress):
        rec = encode_clip(codecs, ds[i], shape, caption_fn, pack_fn, audio_ref_len)
        cid = rec.pop("id")
        save_file(rec, str(out / f"{cid}.safetensors"))
    save_file({"text_empty": codecs.text.encode([""])[0].contiguous()}, str(out / "meta.safetensors"))
    return out


def _progress(it: Sequence[int] | range, label: str, enabled: bool) -> Any:
    if not enabled:
        return it
    from rich.progress import track

    return track(it, description=label)
