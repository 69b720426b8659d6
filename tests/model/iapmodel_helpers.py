"""Shared builders for the tiny-config model tests (random weights, real architecture)."""

from __future__ import annotations

import torch

from model.config import IAPConfig
from model.fusion_model import IAPFusionModel
from model.identity import IdentityRefs


def tiny_model(seed: int = 0, **overrides) -> IAPFusionModel:
    """A randomly initialised tiny IAPFusionModel in eval mode (fp32, CPU)."""
    torch.manual_seed(seed)
    cfg = IAPConfig.tiny().replace(**overrides) if overrides else IAPConfig.tiny()
    return IAPFusionModel(cfg).eval()


def make_inputs(b: int = 1, seed: int = 1, t: float = 500.0):
    """Video [B,4,3,8,8], audio [B,16,4], t [B], text [B,10,32] (ARCHITECTURE §10 tiny shapes)."""
    g = torch.Generator().manual_seed(seed)
    video = torch.randn(b, 4, 3, 8, 8, generator=g)
    audio = torch.randn(b, 16, 4, generator=g)
    text = torch.randn(b, 10, 32, generator=g)
    return video, audio, torch.full((b,), t), text


def make_refs(b: int = 1, k: int = 2, seed: int = 2, lens: list[list[int]] | None = None,
              mask: list[list[bool]] | None = None, video: bool = True, audio: bool = True) -> IdentityRefs:
    """K identity slots: canvases [4,8,8] and voices zero-padded to L = 8 latents."""
    g = torch.Generator().manual_seed(seed)
    lens_t = torch.tensor(lens) if lens is not None else torch.full((b, k), 8, dtype=torch.long)
    a = torch.randn(b, k, 8, 4, generator=g)
    a = a * (torch.arange(8)[None, None, :, None] < lens_t[..., None, None])
    return IdentityRefs(
        video=torch.randn(b, k, 4, 8, 8, generator=g) if video else None,
        audio=a if audio else None,
        audio_lens=lens_t if audio else None,
        id_mask=torch.tensor(mask) if mask is not None else torch.ones(b, k, dtype=torch.bool),
    )
