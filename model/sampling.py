"""Sampling: flow-matching UniPC / Euler (diffusers schedulers, one per modality), dual-modality CFG with
skip-layer guidance, reference K/V cache per CFG branch, seeded noise (ARCHITECTURE §1.5, §5.3, §8)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler

from model.identity import IdentityRefs

SOLVERS = ("unipc", "euler")


@dataclass
class SamplerConfig:
    """Sampler settings (Ovi YAML defaults: 50 UniPC steps, shift 5, CFG 4.0 / 3.0, SLG layer 11 when set)."""

    steps: int = 50
    solver: str = "unipc"
    shift: float = 5.0
    guidance_video: float = 4.0
    guidance_audio: float = 3.0
    slg_layer: int | None = None
    use_ref_cache: bool = True
    num_train_timesteps: int = 1000

    def __post_init__(self) -> None:
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {self.solver!r}")
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")


def make_scheduler(cfg: SamplerConfig):
    """A fresh diffusers flow scheduler with the configured shift and step count."""
    if cfg.solver == "unipc":
        sch = UniPCMultistepScheduler(
            num_train_timesteps=cfg.num_train_timesteps,
            use_flow_sigmas=True,
            prediction_type="flow_prediction",
            flow_shift=cfg.shift,
        )
    else:
        sch = FlowMatchEulerDiscreteScheduler(num_train_timesteps=cfg.num_train_timesteps, shift=cfg.shift)
    sch.set_timesteps(cfg.steps)
    return sch


def shifted_sigma(sigma: float | torch.Tensor, shift: float) -> float | torch.Tensor:
    """Flow shift sigma' = s*sigma / (1 + (s-1)*sigma)."""
    return shift * sigma / (1 + (shift - 1) * sigma)


def _mode(video_shape, audio_shape) -> str:
    if video_shape is not None and audio_shape is not None:
        return "joint"
    if video_shape is not None:
        return "video"
    if audio_shape is not None:
        return "audio"
    raise ValueError("sample() needs video_shape and/or audio_shape")


def _noise(shape, seed: int, device) -> torch.Tensor | None:
    """Float32 noise from a CPU generator seeded with `seed` (same numbers on every device)."""
    if shape is None:
        return None
    g = torch.Generator(device="cpu").manual_seed(int(seed))
    return torch.randn(tuple(shape), generator=g, dtype=torch.float32).to(device=device)


def _guide(pos: torch.Tensor | None, neg: torch.Tensor | None, scale: float) -> torch.Tensor | None:
    if pos is None or neg is None:
        return None if pos is None else pos.float()
    return neg.float() + scale * (pos.float() - neg.float())


@torch.no_grad()
def sample(
    model,
    sampler_cfg: SamplerConfig,
    text_pos,
    text_neg,
    refs: IdentityRefs | None,
    video_shape: tuple[int, ...] | None,
    audio_shape: tuple[int, ...] | None,
    seed: int,
    progress: bool = False,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Generate latents: video [B, Cv, T, H, W] and/or audio [B, T, Ca] (None for an absent modality).

    text_pos / text_neg: umT5 features [B, Lt, text_dim] or (video_text, audio_text) pairs; the negative
    pass also skips `slg_layer`. Both noises are drawn from generators seeded with `seed` (as Ovi does).
    With guidance 1.0 for both modalities the negative pass is skipped (pos-only sampling).
    """
    cfg = sampler_cfg
    mode = _mode(video_shape, audio_shape)
    p = next(model.parameters())
    device, dtype = p.device, p.dtype
    x_v, x_a = _noise(video_shape, seed, device), _noise(audio_shape, seed, device)  # fp32 solver state
    sch_v = make_scheduler(cfg) if x_v is not None else None
    sch_a = make_scheduler(cfg) if x_a is not None else None
    timesteps = (sch_v or sch_a).timesteps
    if refs is not None:
        refs = refs.to(device, dtype)
    skip_neg = (cfg.slg_layer,) if cfg.slg_layer is not None else ()
    use_neg = not (cfg.guidance_video == 1.0 and cfg.guidance_audio == 1.0)
    cacheable = cfg.use_ref_cache and refs is not None and model.cfg.ref_timestep == "zero"
    cache_pos = model.build_ref_cache(refs, text_pos, (), mode) if cacheable else None
    cache_neg = model.build_ref_cache(refs, text_neg, skip_neg, mode) if (cacheable and use_neg) else None

    steps = list(enumerate(timesteps))
    if progress:
        from rich.progress import track

        steps = track(steps, description=f"sampling ({cfg.solver}, {cfg.steps} steps)")
    for _, ts in steps:
        b = (x_v if x_v is not None else x_a).shape[0]
        t = torch.full((b,), float(ts), device=device)
        kw = {"mode": mode}
        pv, pa = model(x_v, x_a, t, text_pos, None if cache_pos is not None else refs, ref_cache=cache_pos, **kw)
        if use_neg:
            nv, na = model(x_v, x_a, t, text_neg, None if cache_neg is not None else refs, ref_cache=cache_neg,
                           skip_layers=skip_neg, **kw)
            pv, pa = _guide(pv, nv, cfg.guidance_video), _guide(pa, na, cfg.guidance_audio)
        else:
            pv, pa = _guide(pv, None, 1.0), _guide(pa, None, 1.0)
        if x_v is not None:
            x_v = sch_v.step(pv, ts, x_v, return_dict=False)[0]
        if x_a is not None:
            x_a = sch_a.step(pa, ts, x_a, return_dict=False)[0]
    return x_v, x_a
