"""Embeddings with Ovi's module layout: sinusoid time embedding, text MLP, video Conv3d patchifier,
audio ConvStem, unpatchify (ARCHITECTURE §1.1, §1.2)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def sinusoidal_embedding(dim: int, t: torch.Tensor) -> torch.Tensor:
    """Sinusoid of timesteps (cos half then sin half, base 10000), computed in float64: [...] -> [..., dim]."""
    if dim % 2:
        raise ValueError(f"sinusoid dim must be even, got {dim}")
    half = dim // 2
    pos = t.to(torch.float64)
    freqs = torch.pow(10000.0, -torch.arange(half, dtype=torch.float64, device=t.device) / half)
    ang = pos[..., None] * freqs
    return torch.cat([torch.cos(ang), torch.sin(ang)], dim=-1)


def make_time_embedding(freq_dim: int, dim: int) -> nn.Sequential:
    """`time_embedding`: Linear(freq_dim, D) -> SiLU -> Linear(D, D) (keys .0, .2)."""
    return nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))


def make_time_projection(dim: int) -> nn.Sequential:
    """`time_projection`: SiLU -> Linear(D, 6D) (key .1): the six per-block modulation vectors."""
    return nn.Sequential(nn.SiLU(), nn.Linear(dim, dim * 6))


def make_text_embedding(text_dim: int, dim: int) -> nn.Sequential:
    """`text_embedding`: Linear(text_dim, D) -> GELU(tanh) -> Linear(D, D) (keys .0, .2)."""
    return nn.Sequential(nn.Linear(text_dim, dim), nn.GELU(approximate="tanh"), nn.Linear(dim, dim))


def pad_text(text: torch.Tensor, text_len: int) -> torch.Tensor:
    """Zero-pad text features [B, Lt, C] to [B, text_len, C] before the text MLP (Ovi pads, then attends all)."""
    b, lt, c = text.shape
    if lt > text_len:
        raise ValueError(f"text has {lt} tokens, more than text_len={text_len}")
    if lt == text_len:
        return text
    return torch.cat([text, text.new_zeros(b, text_len - lt, c)], dim=1)


class ChannelLastConv1d(nn.Conv1d):
    """Conv1d on [B, L, C] tensors (channel last), as MMAudio/Ovi's audio stem uses it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, L, Cin] -> [B, L, Cout]
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


class ConvMLP(nn.Module):
    """SwiGLU-style conv MLP `w2(silu(w1 x) * w3 x)` with kernel k and no bias (Ovi `ConvMLP`)."""

    def __init__(self, dim: int, hidden_dim: int, kernel_size: int = 7):
        super().__init__()
        pad = kernel_size // 2
        self.w1 = ChannelLastConv1d(dim, hidden_dim, kernel_size, padding=pad, bias=False)
        self.w2 = ChannelLastConv1d(hidden_dim, dim, kernel_size, padding=pad, bias=False)
        self.w3 = ChannelLastConv1d(dim, hidden_dim, kernel_size, padding=pad, bias=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        h = F.silu(self.w1(x)) * self.w3(x)
        if mask is not None:
            h = h * mask
        return self.w2(h)


class AudioConvStem(nn.Sequential):
    """`patch_embedding` of the audio tower: ChannelLastConv1d(k7) -> SiLU -> ConvMLP (keys .0, .2.w{1,2,3}).

    With `valid` [B, L] the stem equals running each clip alone at its own length (padding is masked to 0
    between convolutions), so zero-padded reference clips embed exactly.
    """

    def __init__(self, in_dim: int, dim: int, hidden_dim: int, kernel_size: int = 7):
        super().__init__(
            ChannelLastConv1d(in_dim, dim, kernel_size, padding=kernel_size // 2),
            nn.SiLU(),
            ConvMLP(dim, hidden_dim, kernel_size),
        )

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:  # [B,L,Cin]->[B,L,D]
        mask = None if valid is None else valid[..., None].to(x.dtype)
        if mask is not None:
            x = x * mask
        h = self[1](self[0](x))
        if mask is not None:
            h = h * mask
        return self[2](h, mask)


def video_patchify(conv: nn.Conv3d, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int, int]]:
    """Conv3d patchify [B, C, T, H, W] -> tokens [B, T'H'W', D] (t-major order) and the grid (T', H', W')."""
    y = conv(x)  # [B, D, T', H', W']
    grid = tuple(int(s) for s in y.shape[2:])
    return y.flatten(2).transpose(1, 2), grid  # type: ignore[return-value]


def video_unpatchify(x: torch.Tensor, grid: tuple[int, int, int], patch: tuple[int, ...], c: int) -> torch.Tensor:
    """Head output [B, L, prod(patch)*C] -> latent [B, C, T, H, W] (Ovi's channel-last patch order)."""
    b = x.shape[0]
    f, h, w = grid
    p, q, r = patch
    if x.shape[1] != f * h * w:
        raise ValueError(f"unpatchify: {x.shape[1]} tokens for grid {grid}")
    u = x.reshape(b, f, h, w, p, q, r, c)
    u = torch.einsum("bfhwpqrc->bcfphqwr", u)
    return u.reshape(b, c, f * p, h * q, w * r)


def check_video_shape(shape: tuple[int, ...], patch: tuple[int, ...]) -> None:
    """Clear error when latent T/H/W are not multiples of the patch size."""
    for name, s, p in zip(("T", "H", "W"), shape[-3:], patch):
        if s % p:
            raise ValueError(f"video latent {name}={s} is not a multiple of patch size {p} (shape {tuple(shape)})")


def num_params(module: nn.Module) -> int:
    """Total parameter count (works on the meta device)."""
    return sum(math.prod(p.shape) for p in module.parameters())
