"""Configuration dataclasses for the IAP generator (ARCHITECTURE.md §1, §2, §10, §13).

Every [ours] decision of the architecture brief is an explicit field here, so an ablation or a
different reading of the paper is a YAML override rather than a code change.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any

REF_TIMESTEPS = ("zero", "current")
REF_TIME_LAYOUTS = ("paper", "scaled_aligned")
FUSION_REF_POLICIES = ("ref_only", "none")
ATTENTION_BACKENDS = ("split", "sdpa_mask")
STAGES = ("1a", "1v", "2", "3")

# Ovi checkpoints (HF chetwinlow1/Ovi): file, video latents T_v,max, audio latents T_a,max (ARCHITECTURE §1.4).
OVI_CHECKPOINTS: dict[str, dict[str, Any]] = {
    "720x720_5s": {"file": "model.safetensors", "video_latents": 31, "audio_latents": 157, "area": 720 * 720},
    "960x960_5s": {"file": "model_960x960.safetensors", "video_latents": 31, "audio_latents": 157, "area": 960 * 960},
    "960x960_10s": {
        "file": "model_960x960_10s.safetensors",
        "video_latents": 61,
        "audio_latents": 314,
        "area": 960 * 960,
    },
}


@dataclass
class TowerConfig:
    """One modality tower: codec channels, patching and the latent extent used for virtual ref positions."""

    modality: str = "video"  # "video" | "audio"
    in_dim: int = 48
    out_dim: int = 48
    patch_size: tuple[int, ...] = (1, 2, 2)  # video (t, h, w); audio (1,) (no patchify)
    max_latent_frames: int = 31  # T_v,max (video only): first virtual frame index for visual refs
    max_latent_len: int = 157  # T_a,max (audio only): first virtual position for audio refs
    stem_kernel: int = 7  # audio ConvStem kernel
    stem_hidden_dim: int = 8192  # audio ConvMLP hidden width (Ovi: int(2*4*dim/3) rounded to 256)

    def __post_init__(self) -> None:
        self.patch_size = tuple(int(p) for p in self.patch_size)
        if self.modality not in ("video", "audio"):
            raise ValueError(f"TowerConfig.modality must be 'video' or 'audio', got {self.modality!r}")
        if self.modality == "video" and len(self.patch_size) != 3:
            raise ValueError(f"video patch_size must have 3 entries, got {self.patch_size}")
        if self.modality == "audio" and self.patch_size != (1,):
            raise ValueError(f"audio patch_size must be (1,), got {self.patch_size}")


@dataclass
class FusionConfig:
    """Ovi's bidirectional cross-tower fusion (ARCHITECTURE §1.3, §5.2)."""

    enabled: bool = True
    ref_policy: str = "ref_only"  # ref rows see the other tower's refs only ("ref_only") or nothing ("none")
    video_init_scale: float = 0.1  # Ovi divides the video tower's fusion Linear weights by 10 at init

    def __post_init__(self) -> None:
        if self.ref_policy not in FUSION_REF_POLICIES:
            raise ValueError(f"fusion.ref_policy must be one of {FUSION_REF_POLICIES}, got {self.ref_policy!r}")


@dataclass
class IdentityConfig:
    """Identity references: how many, how long, and the shared identity embedding (paper eq. 4)."""

    k_max: int = 4  # identities per scene (rows of e_id)
    audio_ref_len: int = 157  # L: max audio reference latents per identity (virtual spacing)
    init_std: float = 0.02  # e_id init N(0, std)
    max_views: int = 1  # views packed per visual canvas (1 = one-shot; >1 = multi-view grid, stage 3)
    cell_multiple: int = 32  # multi-view grid cells aligned to this many pixels (VAE 16 x patch 2)


@dataclass
class RopeConfig:
    """Rotary embedding constants (ARCHITECTURE §4)."""

    theta: float = 10000.0
    audio_time_scale: float = 0.19676  # Ovi temporal_rope_scaling_factor: audio p acts as video time p*s


@dataclass
class IAPConfig:
    """Full generator config: shared transformer shape, two towers, fusion, identity and every [ours] switch."""

    name: str = "custom"
    dim: int = 3072
    ffn_dim: int = 14336
    num_heads: int = 24
    num_layers: int = 30
    freq_dim: int = 256
    text_dim: int = 4096
    text_len: int = 512
    eps: float = 1e-6
    qk_norm: bool = True
    cross_attn_norm: bool = True
    video: TowerConfig = field(default_factory=lambda: TowerConfig(modality="video"))
    audio: TowerConfig = field(
        default_factory=lambda: TowerConfig(modality="audio", in_dim=20, out_dim=20, patch_size=(1,))
    )
    fusion: FusionConfig = field(default_factory=FusionConfig)
    identity: IdentityConfig = field(default_factory=IdentityConfig)
    rope: RopeConfig = field(default_factory=RopeConfig)
    # --- [ours] switches (ARCHITECTURE §2, §13) ---
    ref_timestep: str = "zero"  # "zero": refs get t=0 (cacheable) | "current": refs get the noisy t
    ref_time_layout: str = "paper"  # "paper" | "scaled_aligned" virtual positions for visual refs
    decouple_o: bool = False  # separate output projection o_ref for ref rows in self-attention
    refs_in_text_cross_attn: bool = True  # ref rows run the text branch of cross-attention
    use_identity_embedding: bool = True  # add shared e_id[k] to both modalities' ref tokens
    use_subject_anchor: bool = True  # captions carry "[Subject k]" anchors (consumed by caption building)
    attention_backend: str = "split"  # "split" (exact, mask-free) | "sdpa_mask" (dense boolean mask)
    gradient_checkpointing: bool = False
    stages: tuple[str, ...] = ("1a", "1v", "2", "3")  # training schedule (ablations one/two-stage)
    ovi_checkpoint: str = ""  # Ovi preset name whose weights initialise this config ("" = none)

    def __post_init__(self) -> None:
        self.stages = tuple(str(s) for s in self.stages)
        checks = [
            ("ref_timestep", self.ref_timestep, REF_TIMESTEPS),
            ("ref_time_layout", self.ref_time_layout, REF_TIME_LAYOUTS),
            ("attention_backend", self.attention_backend, ATTENTION_BACKENDS),
        ]
        for key, val, allowed in checks:
            if val not in allowed:
                raise ValueError(f"{key} must be one of {allowed}, got {val!r}")
        for s in self.stages:
            if s not in STAGES:
                raise ValueError(f"unknown stage {s!r} in stages; allowed {STAGES}")
        if self.dim % self.num_heads:
            raise ValueError(f"dim {self.dim} not divisible by num_heads {self.num_heads}")
        if self.head_dim % 2:
            raise ValueError(f"head_dim {self.head_dim} must be even for RoPE")

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    # ------------------------------------------------------------------ presets
    @classmethod
    def tiny(cls) -> IAPConfig:
        """CPU test preset (ARCHITECTURE §10): dim 64, 2 heads of 32, 2 layers, s = 3/16."""
        return cls(
            name="tiny",
            dim=64,
            ffn_dim=128,
            num_heads=2,
            num_layers=2,
            freq_dim=32,
            text_dim=32,
            text_len=16,
            video=TowerConfig("video", in_dim=4, out_dim=4, patch_size=(1, 2, 2), max_latent_frames=3),
            audio=TowerConfig("audio", in_dim=4, out_dim=4, patch_size=(1,), max_latent_len=16, stem_hidden_dim=256),
            identity=IdentityConfig(k_max=4, audio_ref_len=8),
            rope=RopeConfig(audio_time_scale=3 / 16),
        )

    @classmethod
    def mid(cls) -> IAPConfig:
        """Mid-size CPU preset for smoke training: dim 256, 8 heads of 32 (d mod 6 < 3), 4 layers."""
        return cls(
            name="mid",
            dim=256,
            ffn_dim=768,
            num_heads=8,
            num_layers=4,
            freq_dim=64,
            text_dim=64,
            text_len=32,
            video=TowerConfig("video", in_dim=4, out_dim=4, patch_size=(1, 2, 2), max_latent_frames=5),
            audio=TowerConfig("audio", in_dim=4, out_dim=4, patch_size=(1,), max_latent_len=32, stem_hidden_dim=512),
            identity=IdentityConfig(k_max=4, audio_ref_len=16),
            rope=RopeConfig(audio_time_scale=0.19676),
        )

    @classmethod
    def ovi(cls, name: str = "960x960_5s") -> IAPConfig:
        """Shapes of Ovi's released checkpoint `name` exactly (ARCHITECTURE §1.1, §9)."""
        if name not in OVI_CHECKPOINTS:
            raise ValueError(f"unknown Ovi checkpoint {name!r}; known: {sorted(OVI_CHECKPOINTS)}")
        spec = OVI_CHECKPOINTS[name]
        return cls(
            name=f"ovi_{name}",
            video=TowerConfig("video", 48, 48, (1, 2, 2), max_latent_frames=spec["video_latents"]),
            audio=TowerConfig(
                "audio", 20, 20, (1,), max_latent_len=spec["audio_latents"], stem_kernel=7, stem_hidden_dim=8192
            ),
            identity=IdentityConfig(k_max=4, audio_ref_len=spec["audio_latents"]),
            rope=RopeConfig(theta=10000.0, audio_time_scale=0.19676),
            ovi_checkpoint=name,
        )

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (tuples become lists) suitable for YAML/JSON."""
        return _to_plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IAPConfig:
        """Build from a nested dict; unknown keys raise a clear error (typos must not be silently ignored)."""
        return _from_dict(cls, dict(d))

    def replace(self, **overrides: Any) -> IAPConfig:
        """Copy with nested overrides (dicts merge into sub-configs)."""
        return IAPConfig.from_dict(_deep_merge(self.to_dict(), overrides))


_SUBCONFIGS: dict[str, type] = {
    "video": TowerConfig,
    "audio": TowerConfig,
    "fusion": FusionConfig,
    "identity": IdentityConfig,
    "rope": RopeConfig,
}


def _to_plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _to_plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_to_plain(v) for v in x]
    return x


def _from_dict(cls: type, d: dict[str, Any]) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys: {unknown}; allowed: {sorted(names)}")
    kwargs: dict[str, Any] = {}
    for k, v in d.items():
        if cls is IAPConfig and k in _SUBCONFIGS and isinstance(v, dict):
            v = _from_dict(_SUBCONFIGS[k], dict(v))
        kwargs[k] = v
    return cls(**kwargs)


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


PRESETS = {"tiny": IAPConfig.tiny, "mid": IAPConfig.mid, "ovi": IAPConfig.ovi}


def _plain(cfg_dict: Any) -> dict[str, Any]:
    """Accept an OmegaConf DictConfig or any mapping and return a plain dict."""
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg_dict, DictConfig):
            return OmegaConf.to_container(cfg_dict, resolve=True)  # type: ignore[return-value]
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        pass
    return _to_plain(dict(cfg_dict))


def build_config(cfg_dict: Any, ablation: Any = None) -> IAPConfig:
    """Build an IAPConfig from a Hydra-style dict: `preset` (tiny|mid|ovi), `ovi_name`, then field overrides.

    `ablation` (a conf/ablation/*.yaml dict with an `overrides` mapping) is merged last.
    """
    d = _plain(cfg_dict) if cfg_dict is not None else {}
    preset = d.pop("preset", None)
    ovi_name = d.pop("ovi_name", None)
    if preset is None:
        base: dict[str, Any] = {}
    elif preset == "ovi":
        base = IAPConfig.ovi(ovi_name or "960x960_5s").to_dict()
    elif preset in PRESETS:
        base = PRESETS[preset]().to_dict()
    else:
        raise ValueError(f"unknown model preset {preset!r}; known: {sorted(PRESETS)}")
    merged = _deep_merge(base, d)
    if ablation is not None:
        merged = _deep_merge(merged, ablation_overrides(ablation))
    return IAPConfig.from_dict(merged)


def ablation_overrides(ablation: Any) -> dict[str, Any]:
    """The IAPConfig overrides of an ablation config (conf/ablation/*.yaml: name, label, overrides)."""
    a = _plain(ablation)
    over = a.get("overrides", {}) or {}
    if not isinstance(over, dict):
        raise ValueError(f"ablation 'overrides' must be a mapping, got {type(over).__name__}")
    return over
