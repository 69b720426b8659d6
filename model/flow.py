"""Rectified-flow math of the paper (eq. 1-2): interpolation, velocity target, t samplers, joint loss.

Pure functions on tensors, no module state: the training loop and tests call them directly.
Convention (paper eq. 1): t = 0 is data, t = 1 is noise; the model receives 1000 * t.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

TSampler = Literal["logit_normal", "uniform", "shifted_uniform"]


@dataclass(frozen=True)
class FlowConfig:
    """Flow-matching knobs: t sampler [ours: logit-normal], shift for the shifted sampler, loss weight λ."""

    t_sampler: TSampler = "logit_normal"
    logit_mean: float = 0.0
    logit_std: float = 1.0
    shift: float = 5.0  # σ' = sσ / (1 + (s-1)σ), as Ovi/Wan's sampling shift
    t_min: float = 1e-5  # keep t inside (0, 1): t = 0 gives a trivial target
    t_max: float = 1.0 - 1e-5
    audio_weight: float = 1.0  # λ in eq. 2
    timestep_scale: float = 1000.0


def interpolate(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Eq. 1: x_t = (1 - t) x0 + t ε, with t [B] broadcast over the remaining dims."""
    tb = t.reshape(t.shape[0], *([1] * (x0.dim() - 1))).to(x0.dtype)
    return (1.0 - tb) * x0 + tb * noise


def velocity_target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Target velocity u_t = ε - x0 (eq. 1's derivative in t)."""
    return noise - x0


def shift_sigma(sigma: torch.Tensor, shift: float) -> torch.Tensor:
    """Time shift σ' = sσ / (1 + (s - 1)σ) (Wan/Ovi's shift; s = 1 is the identity)."""
    return shift * sigma / (1.0 + (shift - 1.0) * sigma)


def sample_t(batch: int, cfg: FlowConfig, generator: torch.Generator | None = None,
             device: torch.device | str = "cpu") -> torch.Tensor:
    """One t per sample in (0, 1) [B], shared by both modalities (eq. 2)."""
    if cfg.t_sampler == "logit_normal":
        z = torch.randn(batch, generator=generator, device=device) * cfg.logit_std + cfg.logit_mean
        t = torch.sigmoid(z)
    elif cfg.t_sampler == "uniform":
        t = torch.rand(batch, generator=generator, device=device)
    elif cfg.t_sampler == "shifted_uniform":
        t = shift_sigma(torch.rand(batch, generator=generator, device=device), cfg.shift)
    else:
        raise ValueError(f"unknown t_sampler {cfg.t_sampler!r}; use logit_normal, uniform or shifted_uniform")
    return t.clamp(cfg.t_min, cfg.t_max)


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-element mean of (pred - target)^2 over valid positions, computed in fp32.

    mask: broadcastable to pred (1 = valid, 0 = padding), e.g. [B,Ta,1] for audio [B,Ta,Ca].
    """
    err = (pred.float() - target.float()).pow(2)
    if mask is None:
        return err.mean()
    m = mask.to(err.dtype).expand_as(err)
    return (err * m).sum() / m.sum().clamp_min(1.0)


@dataclass
class LossTerms:
    """Eq. 2 result: total loss and each modality's term (None when the modality is absent)."""

    total: torch.Tensor
    video: torch.Tensor | None
    audio: torch.Tensor | None

    def as_floats(self) -> dict[str, float]:
        out = {"loss": float(self.total.detach())}
        if self.video is not None:
            out["loss_video"] = float(self.video.detach())
        if self.audio is not None:
            out["loss_audio"] = float(self.audio.detach())
        return out


def joint_loss(v_pred: torch.Tensor | None, v_target: torch.Tensor | None,
               a_pred: torch.Tensor | None, a_target: torch.Tensor | None,
               audio_weight: float = 1.0, video_mask: torch.Tensor | None = None,
               audio_mask: torch.Tensor | None = None) -> LossTerms:
    """Eq. 2: mean_v ||û_v - u_v||² + λ mean_a ||û_a - u_a||²; a missing modality drops its term (Stage 1)."""
    lv = masked_mse(v_pred, v_target, video_mask) if v_pred is not None else None
    la = masked_mse(a_pred, a_target, audio_mask) if a_pred is not None else None
    if lv is None and la is None:
        raise ValueError("joint_loss needs at least one modality")
    total = (lv if lv is not None else 0.0) + (audio_weight * la if la is not None else 0.0)
    return LossTerms(total=total, video=lv, audio=la)  # type: ignore[arg-type]


def audio_length_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """[B] valid audio-latent counts -> [B, max_len, 1] float mask (1 = real latent)."""
    pos = torch.arange(max_len, device=lengths.device)
    return (pos[None, :] < lengths[:, None]).float().unsqueeze(-1)


def drop_text(captions: Sequence[str], p: float, generator: torch.Generator | None = None,
              empty: str = "") -> list[str]:
    """Condition dropout for CFG: each caption becomes ``empty`` with probability p."""
    if p <= 0:
        return list(captions)
    keep = torch.rand(len(captions), generator=generator) >= p
    return [c if bool(k) else empty for c, k in zip(captions, keep)]


def drop_mask(batch: int, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """[B] bool, True where a condition (e.g. identity refs) is dropped with probability p."""
    if p <= 0:
        return torch.zeros(batch, dtype=torch.bool)
    return torch.rand(batch, generator=generator) < p
