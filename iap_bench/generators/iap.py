"""The ``iap`` generator: this repo's Identity-as-Presence model behind the harness's Generator protocol.

Per item: subject k (anchor <Sk>) -> identity slot k: its face views packed into one canvas (pack_multiview)
and encoded by the video VAE, its voice encoded by the audio VAE (first L latents); the structured caption
with subject anchors (model.caption) goes through umT5; then CFG sampling (model.sampling) and decoding.

``codecs: tiny`` uses random tiny codecs (and, without ``ckpt``, ``allow_random: true`` a random model):
the output is noise with the right shapes — for smoke tests only.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from iap_bench.benchmark.schema import Item
from iap_bench.errors import MediaError
from iap_bench.generators.base import Capabilities, GeneratedSample, register_generator
from iap_bench.hashing import file_sha256
from iap_bench.weights import WeightSpec

# Ovi's default negative prompts (video / audio branches).
NEG_VIDEO = "jitter, bad hands, blur, distortion"
NEG_AUDIO = "robotic, muffled, echo, distorted"

CKPT_SPEC = WeightSpec(
    name="iap", filename="model.safetensors",
    how_to_get="train one with `iap-train` (e.g. `python -m model.train train=toy model=tiny`) and pass its "
               "checkpoint dir or model.safetensors",
    search_paths=("$IAP_WEIGHTS/iap",), config_key="generator.params.ckpt")


@register_generator("iap")
class IAPGenerator:
    """Loads an IAP checkpoint + codecs once; generates one item per call with a seed."""

    name = "iap"
    capabilities = Capabilities(multi_subject=True, multi_view=True, voice_reference=True)

    def __init__(self, ckpt: str | None = None, model: str | dict | None = None, allow_random: bool = False,
                 codecs: str = "real", codec_paths: dict[str, Any] | None = None, steps: int = 50,
                 solver: str = "unipc", shift: float = 5.0, guidance_video: float = 4.0,
                 guidance_audio: float = 3.0, slg_layer: int | None = None, use_ref_cache: bool = True,
                 height: int | None = None, width: int | None = None, fps: float | None = None,
                 max_views: int | None = None, anchor_format: str = "subject", audio_tag: str = "audio",
                 negative_video: str = NEG_VIDEO, negative_audio: str = NEG_AUDIO, device: str = "auto",
                 dtype: str = "auto", progress: bool = False, seed_offset: int = 0, label: str | None = None):
        self.ckpt = ckpt
        self.model_spec = model
        self.allow_random = allow_random
        self.codecs_kind = codecs
        self.codec_paths = dict(codec_paths or {})
        self.sampler_kw = dict(steps=steps, solver=solver, shift=shift, guidance_video=guidance_video,
                               guidance_audio=guidance_audio, slg_layer=slg_layer, use_ref_cache=use_ref_cache)
        self.height, self.width, self.fps, self.max_views = height, width, fps, max_views
        self.anchor_format, self.audio_tag = anchor_format, audio_tag
        self.negative_video, self.negative_audio = negative_video, negative_audio
        self.device_name, self.dtype_name = device, dtype
        self.progress = progress
        self.seed_offset = seed_offset
        self._label = label
        self.model: Any = None
        self.codecs: Any = None
        self.ckpt_path: Path | None = None
        self.ckpt_sha256: str | None = None
        self.train_data: dict[str, Any] = {}  # data section of the checkpoint's training config (size, fps)

    # ---------------------------------------------------------------- loading
    def load(self) -> None:
        """Build the model from the checkpoint (its stored config) and the codecs; clear errors if absent."""
        if self.model is not None:
            return
        from model.checkpoint import build_from_checkpoint
        from model.codecs import CodecPaths, build_codecs

        self.device = _pick_device(self.device_name)
        self.dtype = _pick_dtype(self.dtype_name, self.device)
        if self.ckpt or not self.allow_random:
            self.ckpt_path = _resolve_ckpt(self.ckpt)
            self.ckpt_sha256 = file_sha256(self.ckpt_path)
            model = build_from_checkpoint(self.ckpt_path)
            self.train_data = _train_data_meta(self.ckpt_path)
        else:
            from model.config import build_config
            from model.fusion_model import IAPFusionModel

            spec = self.model_spec if isinstance(self.model_spec, dict) else {"preset": self.model_spec or "tiny"}
            torch.manual_seed(0)
            model = IAPFusionModel(build_config(spec))
        self.model = model.to(self.device, self.dtype).eval()
        c = self.model.cfg
        self.codecs = build_codecs(self.codecs_kind, c.video.in_dim, c.audio.in_dim, c.text_dim, c.text_len,
                                   CodecPaths(**self.codec_paths), dtype=self.dtype).to(self.device)  # type: ignore[arg-type]

    @property
    def label(self) -> str:
        """Leaderboard row: checkpoint name plus a short content hash, unique by construction.

        ``a.safetensors`` and ``b.safetensors`` (or two ``model.safetensors`` in different run dirs, or one
        file retrained in place) never share a row.
        """
        if self._label:
            return self._label
        desc = self.describe()
        if self.ckpt_path is None:
            return f"iap:random-{desc['random_model']}"
        p = Path(self.ckpt_path)
        name = p.stem if p.is_file() and p.stem != "model" else (p.parent.name if p.is_file() else p.name)
        if p.is_file() and p.stem == "model" and p.parent.name.startswith("step_"):
            name = f"{p.parent.parent.parent.name}/{p.parent.name}"  # <run>/checkpoints/step_N/model.safetensors
        return f"iap:{name or 'ckpt'}@{str(desc['checkpoint_sha256'])[:8]}"

    def describe(self) -> dict[str, Any]:
        """Checkpoint identity, sampler and codec settings (written to every sidecar).

        Stable before and after load() — it keys generations in the store — so it hashes the checkpoint
        file instead of reading the model (the file's metadata carries its config).
        """
        if self.ckpt_path is None and (self.ckpt or not self.allow_random):
            self.ckpt_path = _resolve_ckpt(self.ckpt)
            self.ckpt_sha256 = file_sha256(self.ckpt_path)
        random_spec = None if self.ckpt_path else (self.model_spec or "tiny")
        return {"generator": self.name, "checkpoint": str(self.ckpt_path) if self.ckpt_path else None,
                "checkpoint_sha256": self.ckpt_sha256 or "random-init", "random_model": random_spec,
                "sampler": dict(self.sampler_kw), "codecs": self.codecs_kind,
                "codec_paths": {k: str(v) for k, v in self.codec_paths.items() if v},
                "height": self.height, "width": self.width, "fps": self.fps,
                "caption": {"anchor_format": self.anchor_format, "audio_tag": self.audio_tag}}

    # ---------------------------------------------------------------- generation
    def output_shape(self, item: Item) -> dict[str, Any]:
        """Pixel size, latent extents and fps for an item: duration capped by the model's T_v,max / T_a,max."""
        c = self.model.cfg
        vs, ts = self.codecs.video.stride_s, self.codecs.video.stride_t
        ph = c.video.patch_size[1] * vs
        height = self.height or int(self.train_data.get("height") or ph * 8)
        width = self.width or int(self.train_data.get("width") or ph * 8)
        if height % ph or width % ph:
            raise ValueError(f"iap: height/width must be multiples of {ph} px, got {height}x{width}")
        lat_per_s = self.codecs.audio.sample_rate / self.codecs.audio.samples_per_latent
        ta = max(1, min(c.audio.max_latent_len, round(item.duration_s * lat_per_s)))
        fps = self.fps or 24.0
        tv = max(1, min(c.video.max_latent_frames, math.ceil((item.duration_s * fps - 1) / ts) + 1))
        frames = (tv - 1) * ts + 1
        if self.fps is None:  # keep video and audio the same length when fps is not pinned
            fps = frames / (ta / lat_per_s)
        return {"height": height, "width": width, "frames": frames, "fps": fps,
                "video": (1, c.video.in_dim, tv, height // vs, width // vs), "audio": (1, ta, c.audio.in_dim)}

    def caption(self, item: Item) -> str:
        from model.caption import CaptionStyle, caption_for_item

        style = CaptionStyle(use_subject_anchor=self.model.cfg.use_subject_anchor,
                             anchor_format=self.anchor_format, audio_tag=self.audio_tag)  # type: ignore[arg-type]
        return caption_for_item(item, style)

    def build_refs(self, item: Item, height: int, width: int) -> Any:
        """IdentityRefs for the item's bound subjects: slot k-1 holds subject <Sk>'s canvas and voice."""
        from model.data import fit_length, read_image, read_wave, to_tensor_image
        from model.identity import IdentityRefs, pack_multiview

        c = self.model.cfg
        subjects = sorted(item.subjects, key=lambda s: s.index)
        k = max(s.index for s in subjects)
        if k > c.identity.k_max:
            raise MediaError("unsupported", f"item {item.id}: subject <S{k}> exceeds the model's k_max {c.identity.k_max}")
        views = self.max_views or max(1, c.identity.max_views)
        L = c.identity.audio_ref_len
        spl = self.codecs.audio.samples_per_latent
        hv, wv = height // self.codecs.video.stride_s, width // self.codecs.video.stride_s
        ref_v = torch.zeros(1, k, c.video.in_dim, hv, wv)
        ref_a = torch.zeros(1, k, L, c.audio.in_dim)
        lens = torch.zeros(1, k, dtype=torch.long)
        mask = torch.zeros(1, k, dtype=torch.bool)
        for s in subjects:
            if not s.faces or s.voice is None:
                raise MediaError("bad_reference", f"item {item.id}: subject {s.anchor} is not bound to faces and a voice")
            imgs = [to_tensor_image(read_image(p)) for p in s.faces[:views]]
            canvas = pack_multiview(imgs, height, width).to(self.device)
            ref_v[0, s.index - 1] = self.codecs.video.encode(canvas[None, :, None])[0, :, 0].cpu()
            wave = read_wave(s.voice, self.codecs.audio.sample_rate)
            n = min(wave.size, L * spl)
            if n < self.codecs.audio.mel.cfg.n_fft:
                raise MediaError("bad_reference", f"item {item.id}: voice of {s.anchor} is too short ({wave.size} samples)")
            z = self.codecs.audio.encode(torch.from_numpy(fit_length(wave, n))[None].to(self.device))[0][:L].cpu()
            ref_a[0, s.index - 1, : z.shape[0]] = z
            lens[0, s.index - 1] = z.shape[0]
            mask[0, s.index - 1] = True
        return IdentityRefs(video=ref_v, audio=ref_a, audio_lens=lens, id_mask=mask)

    def generate(self, item: Item, seed: int) -> GeneratedSample:
        """Sample latents with CFG, decode to frames [T,H,W,3] uint8 and a 16 kHz waveform."""
        from model.sampling import SamplerConfig, sample

        self.load()
        shape = self.output_shape(item)
        refs = self.build_refs(item, shape["height"], shape["width"])
        caption = self.caption(item)
        text = self.codecs.text.encode([caption, self.negative_video, self.negative_audio]).to(self.dtype)
        pos, neg = text[:1], (text[1:2], text[2:3])
        cfg = SamplerConfig(**self.sampler_kw)
        v_lat, a_lat = sample(self.model, cfg, pos, neg, refs, shape["video"], shape["audio"],
                              seed + self.seed_offset, progress=self.progress)
        pixels = self.codecs.video.decode(v_lat.float())[0]  # [3,T,H,W] in [-1,1]
        video = ((pixels.permute(1, 2, 3, 0).cpu().numpy() + 1.0) * 127.5).round().clip(0, 255).astype(np.uint8)
        audio = self.codecs.audio.decode(a_lat.float())[0].cpu().numpy().astype(np.float32)
        info = {"caption": caption, "seed": seed + self.seed_offset, "checkpoint_sha256": self.ckpt_sha256,
                "codecs": self.codecs_kind, "latent_video": list(shape["video"]), "latent_audio": list(shape["audio"]),
                "identities": int(refs.id_mask.sum()), "sampler": dict(self.sampler_kw),
                "model_config": self.model.cfg.to_dict()}
        if self.codecs_kind == "tiny":
            info["warning"] = "tiny random codecs: output is noise (smoke test only)"
        return GeneratedSample(fps=float(shape["fps"]), sample_rate=int(self.codecs.audio.sample_rate),
                               video=video, audio=np.clip(audio, -1.0, 1.0), info=info)


def _train_data_meta(path: Path) -> dict[str, Any]:
    """Clip size the checkpoint was trained at (``extra.train_config.data`` written by iap-train), if any."""
    from model.checkpoint import read_checkpoint_metadata

    extra = read_checkpoint_metadata(path).get("extra", {})
    data = (extra.get("train_config") or {}).get("data") or {}
    return {k: data[k] for k in ("height", "width", "fps") if data.get(k)}


def _resolve_ckpt(ckpt: str | None) -> Path:
    """A checkpoint file, or a checkpoint dir holding model.safetensors (newest step_* of a run dir too)."""
    if ckpt:
        p = Path(ckpt).expanduser()
        if p.is_dir() and not (p / "model.safetensors").exists():
            steps = sorted(p.glob("checkpoints/step_*/model.safetensors")) or sorted(p.glob("step_*/model.safetensors"))
            if steps:
                return steps[-1]
        if p.is_file():
            return p
    return CKPT_SPEC.resolve(ckpt)


def _pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _pick_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[name]
