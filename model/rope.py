"""Rotary position embedding from explicit position ids (ARCHITECTURE §4); pure functions, no table cap.

Every token carries a float position triple (t, h, w). Video tokens use their latent grid; audio token p
uses (p * s, 0, 0), i.e. it rotates only the temporal pairs by p*s*w_i and passes the h/w pairs through
unrotated (angle 0) -- exactly Ovi's 1D scaled RoPE. Angles are computed in float64 on the fly.
"""

from __future__ import annotations

import math

import torch


def rope_split(head_dim: int) -> tuple[int, int, int]:
    """Complex-pair split (t, h, w) of one head: h = w = (d/2)//3, t takes the rest (128 -> 22/21/21)."""
    if head_dim % 2:
        raise ValueError(f"head_dim must be even, got {head_dim}")
    c = head_dim // 2
    hw = c // 3
    return c - 2 * hw, hw, hw


def rope_frequencies(head_dim: int, theta: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-axis angular frequencies w_i = theta^(-2i/n_axis_dims), float64 (Wan/Ovi `rope_params`)."""
    nt, nh, nw = rope_split(head_dim)

    def axis(n: int) -> torch.Tensor:
        return 1.0 / torch.pow(torch.tensor(theta, dtype=torch.float64), torch.arange(n, dtype=torch.float64) * 2 / (2 * n))

    return axis(nt), axis(nh), axis(nw)


def rope_angles(pos: torch.Tensor, head_dim: int, theta: float = 10000.0) -> torch.Tensor:
    """Angles [..., head_dim/2] (float64) for positions [..., 3] = (t, h, w)."""
    ft, fh, fw = (f.to(pos.device) for f in rope_frequencies(head_dim, theta))
    p = pos.to(torch.float64)
    return torch.cat([p[..., 0:1] * ft, p[..., 1:2] * fh, p[..., 2:3] * fw], dim=-1)


def apply_rope(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate adjacent (even, odd) pairs of x [B, L, H, d] by angles [B|1, L, d/2] (complex multiply)."""
    if angles.shape[-1] * 2 != x.shape[-1]:
        raise ValueError(f"angles last dim {angles.shape[-1]} != head_dim/2 of x {tuple(x.shape)}")
    work = torch.float64 if x.dtype == torch.float64 else torch.float32
    cos = torch.cos(angles).to(work)[:, :, None, :]
    sin = torch.sin(angles).to(work)[:, :, None, :]
    xp = x.to(work).unflatten(-1, (-1, 2))
    x0, x1 = xp[..., 0], xp[..., 1]
    out = torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1)
    return out.flatten(-2).to(x.dtype)


def apply_rope_3d(x: torch.Tensor, pos: torch.Tensor, theta: float = 10000.0) -> torch.Tensor:
    """Factorised 3D RoPE: x [B, L, H, d], pos [B|1, L, 3] (t, h, w)."""
    return apply_rope(x, rope_angles(pos, x.shape[-1], theta))


def apply_rope_1d_scaled(x: torch.Tensor, p: torch.Tensor, scale: float, theta: float = 10000.0) -> torch.Tensor:
    """Ovi audio RoPE: temporal pairs rotated by p*scale*w_i; h/w pairs untouched. p: [B|1, L]."""
    return apply_rope_3d(x, audio_pos3(p, scale), theta)


# --------------------------------------------------------------------------- explicit position ids
def video_positions(grid: tuple[int, int, int], t_offset: float = 0.0) -> torch.Tensor:
    """Positions [T*H*W, 3] of a latent grid in t-major order (matches Conv3d flatten), time starting at t_offset."""
    f, h, w = grid
    tt, hh, ww = torch.meshgrid(
        torch.arange(f, dtype=torch.float64) + t_offset,
        torch.arange(h, dtype=torch.float64),
        torch.arange(w, dtype=torch.float64),
        indexing="ij",
    )
    return torch.stack([tt, hh, ww], dim=-1).reshape(-1, 3)


def audio_pos3(p: torch.Tensor, scale: float) -> torch.Tensor:
    """Audio positions p [...] -> (p*scale, 0, 0) triples [..., 3] (float64)."""
    p = p.to(torch.float64)
    z = torch.zeros_like(p)
    return torch.stack([p * scale, z, z], dim=-1)


def audio_positions(n: int, scale: float, start: float = 0.0) -> torch.Tensor:
    """Positions [n, 3] of n consecutive audio latents starting at raw position `start`."""
    return audio_pos3(torch.arange(n, dtype=torch.float64) + start, scale)


def visual_ref_time(k: int, t_v_max: int, audio_ref_len: int, scale: float, layout: str = "paper") -> float:
    """Virtual latent frame of visual identity k (0-based): paper T_v,max+k; scaled_aligned T_v,max+round(k*L*s)."""
    if layout == "paper":
        return float(t_v_max + k)
    if layout == "scaled_aligned":
        return float(t_v_max + math.floor(k * audio_ref_len * scale + 0.5))
    raise ValueError(f"unknown ref_time_layout {layout!r}")


def audio_ref_start(k: int, t_a_max: int, audio_ref_len: int) -> int:
    """First raw audio position of audio identity k (0-based): T_a,max + k*L (paper §3.3.1)."""
    return t_a_max + k * audio_ref_len


def visual_ref_positions(
    k: int, grid_hw: tuple[int, int], t_v_max: int, audio_ref_len: int, scale: float, layout: str = "paper"
) -> torch.Tensor:
    """Positions [H'*W', 3] of identity k's canvas: one virtual frame, same h/w grid as the noisy video."""
    t = visual_ref_time(k, t_v_max, audio_ref_len, scale, layout)
    return video_positions((1, grid_hw[0], grid_hw[1]), t_offset=t)


def audio_ref_positions(k: int, n: int, t_a_max: int, audio_ref_len: int, scale: float) -> torch.Tensor:
    """Positions [n, 3] of identity k's first n audio reference latents."""
    if n > audio_ref_len:
        raise ValueError(f"audio reference of {n} latents exceeds L={audio_ref_len}")
    return audio_positions(n, scale, start=audio_ref_start(k, t_a_max, audio_ref_len))
