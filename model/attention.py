"""Attention primitives and the decoupled, asymmetric self-attention (paper eq. 6; ARCHITECTURE §5.1).

Reference rows (Omega_r) are projected with W^(r) and attend to references only; noisy rows (Omega_z) use
W^(z) and attend to [refs; noisy]. Backends: `split` (two exact SDPA calls, no mask unless refs are padded)
and `sdpa_mask` (one SDPA over [refs; noisy] with a boolean [L, L] mask; for tests and small configs).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from model.norms import WanRMSNorm
from model.rope import apply_rope


@dataclass
class RefKV:
    """Keys/values of reference rows after norm + RoPE: k, v [B, Lr, H, d]; valid [B, Lr] (None = all valid)."""

    k: torch.Tensor
    v: torch.Tensor
    valid: torch.Tensor | None = None

    @property
    def length(self) -> int:
        return int(self.k.shape[1])


def _sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """SDPA on [B, L, H, d] layout; mask [B, 1|H, Lq, Lk] bool (True = may attend) or None."""
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask)
    return out.transpose(1, 2)


def attend_masked(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor | None) -> torch.Tensor:
    """Attention with a boolean `allowed` [B, Lq, Lk]; rows with no allowed key give exactly 0 (never NaN)."""
    b, lq = q.shape[:2]
    if k.shape[1] == 0:
        return q.new_zeros(b, lq, q.shape[2], v.shape[-1])
    if allowed is None:
        return _sdpa(q, k, v, None)
    empty = ~allowed.any(dim=-1)  # [B, Lq]
    safe = allowed | empty[..., None]
    out = _sdpa(q, k, v, safe[:, None])
    if bool(empty.any()):
        out = out.masked_fill(empty[..., None, None], 0.0)
    return out


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_valid: torch.Tensor | None = None) -> torch.Tensor:
    """Attention of every query to all valid keys; key_valid [B, Lk] (None = all valid, mask-free SDPA).

    The key-padding mask is passed as [B, 1, 1, Lk] (broadcast, never materialised per query); samples with
    no valid key at all give exactly 0.
    """
    if key_valid is None or k.shape[1] == 0:
        return attend_masked(q, k, v, None)
    empty = ~key_valid.any(dim=-1)  # [B]
    safe = key_valid | empty[:, None]
    out = _sdpa(q, k, v, safe[:, None, None, :])
    if bool(empty.any()):
        out = out.masked_fill(empty[:, None, None, None], 0.0)
    return out


def cat_valid(a: torch.Tensor | None, la: int, b: torch.Tensor | None, lb: int, batch: int, device) -> torch.Tensor | None:
    """Concatenate two optional validity masks (None = all valid) of lengths la and lb."""
    if a is None and b is None:
        return None
    a = a if a is not None else torch.ones(batch, la, dtype=torch.bool, device=device)
    b = b if b is not None else torch.ones(batch, lb, dtype=torch.bool, device=device)
    return torch.cat([a, b], dim=1)


def eq6_allowed(n_ref: int, n_noisy: int, key_valid: torch.Tensor | None, batch: int, device) -> torch.Tensor:
    """Eq. 6 as a boolean mask [B, L, L] over [refs; noisy]: ref rows see only ref keys, noisy rows see all."""
    n = n_ref + n_noisy
    is_ref = torch.arange(n, device=device) < n_ref
    allowed = ~(is_ref[:, None] & ~is_ref[None, :])  # [L, L]
    allowed = allowed[None].expand(batch, n, n)
    if key_valid is not None:
        allowed = allowed & key_valid[:, None, :]
    return allowed


class DecoupledSelfAttention(nn.Module):
    """Self-attention with W^(z) = (q, k, v, o, norm_q, norm_k) for noisy rows and W^(r) = (q_ref, k_ref,
    v_ref, norm_q_ref, norm_k_ref[, o_ref]) for reference rows. Names match Ovi for W^(z)."""

    def __init__(self, dim: int, num_heads: int, eps: float = 1e-6, qk_norm: bool = True, decouple_o: bool = False):
        super().__init__()
        self.dim, self.num_heads, self.head_dim = dim, num_heads, dim // num_heads
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
        self.norm_q = WanRMSNorm(dim, eps) if qk_norm else nn.Identity()
        self.norm_k = WanRMSNorm(dim, eps) if qk_norm else nn.Identity()
        self.q_ref, self.k_ref, self.v_ref = (nn.Linear(dim, dim) for _ in range(3))
        self.norm_q_ref = WanRMSNorm(dim, eps) if qk_norm else nn.Identity()
        self.norm_k_ref = WanRMSNorm(dim, eps) if qk_norm else nn.Identity()
        self.o_ref = nn.Linear(dim, dim) if decouple_o else None

    # -- projections
    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (self.num_heads, self.head_dim))

    def qkv(self, x: torch.Tensor, angles: torch.Tensor, ref: bool) -> tuple[torch.Tensor, ...]:
        """q, k (normed, RoPE'd) and v [B, L, H, d] of one group with that group's weights."""
        if ref:
            q, k, v = self.norm_q_ref(self.q_ref(x)), self.norm_k_ref(self.k_ref(x)), self.v_ref(x)
        else:
            q, k, v = self.norm_q(self.q(x)), self.norm_k(self.k(x)), self.v(x)
        q, k, v = self._heads(q), self._heads(k), self._heads(v)
        return apply_rope(q, angles), apply_rope(k, angles), v

    def out_proj(self, y: torch.Tensor, ref: bool) -> torch.Tensor:
        """Output projection [B, L, H, d] -> [B, L, D]; o_ref for refs when decoupled."""
        y = y.flatten(2)
        return self.o_ref(y) if (ref and self.o_ref is not None) else self.o(y)

    # -- split backend pieces
    def forward_ref(
        self, x_r: torch.Tensor, ang_r: torch.Tensor, valid_r: torch.Tensor | None
    ) -> tuple[torch.Tensor, RefKV]:
        """Reference rows: out_r = attn(Q_r, K_r, V_r) (refs never see noisy tokens); returns K_r/V_r for reuse."""
        q, k, v = self.qkv(x_r, ang_r, ref=True)
        return self.out_proj(attend(q, k, v, valid_r), ref=True), RefKV(k, v, valid_r)

    def forward_noisy(self, x_z: torch.Tensor, ang_z: torch.Tensor, ref_kv: RefKV | None) -> torch.Tensor:
        """Noisy rows: out_z = attn(Q_z, [K_r; K_z], [V_r; V_z])."""
        q, k, v = self.qkv(x_z, ang_z, ref=False)
        if ref_kv is not None and ref_kv.length > 0:
            valid = cat_valid(ref_kv.valid, ref_kv.length, None, k.shape[1], k.shape[0], k.device)
            k, v = torch.cat([ref_kv.k, k], dim=1), torch.cat([ref_kv.v, v], dim=1)
            return self.out_proj(attend(q, k, v, valid), ref=False)
        return self.out_proj(attend(q, k, v, None), ref=False)

    # -- dense masked backend
    def forward_dense(
        self,
        x_r: torch.Tensor,
        ang_r: torch.Tensor,
        valid_r: torch.Tensor | None,
        x_z: torch.Tensor,
        ang_z: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, RefKV]:
        """One SDPA over [refs; noisy] with the eq. 6 mask; returns (out_r, out_z, ref K/V)."""
        qr, kr, vr = self.qkv(x_r, ang_r, ref=True)
        qz, kz, vz = self.qkv(x_z, ang_z, ref=False)
        nr, nz, b = qr.shape[1], qz.shape[1], qz.shape[0]
        valid = cat_valid(valid_r, nr, None, nz, b, qz.device)
        allowed = eq6_allowed(nr, nz, valid, b, qz.device)
        y = attend_masked(torch.cat([qr, qz], 1), torch.cat([kr, kz], 1), torch.cat([vr, vz], 1), allowed)
        return self.out_proj(y[:, :nr], ref=True), self.out_proj(y[:, nr:], ref=False), RefKV(kr, vr, valid_r)

    @torch.no_grad()
    def init_ref_from_noisy(self) -> None:
        """Copy W^(z) into W^(r) (after loading pretrained weights)."""
        pairs = [(self.q_ref, self.q), (self.k_ref, self.k), (self.v_ref, self.v)]
        if self.o_ref is not None:
            pairs.append((self.o_ref, self.o))
        for dst, src in pairs:
            dst.weight.copy_(src.weight)
            dst.bias.copy_(src.bias)
        for dst, src in [(self.norm_q_ref, self.norm_q), (self.norm_k_ref, self.norm_k)]:
            if isinstance(dst, WanRMSNorm):
                dst.weight.copy_(src.weight)
