"""Ovi's text + fusion cross-attention (ARCHITECTURE §1.3, §5.2).

One query `norm_q(q(norm3(x)))` is shared by two branches whose outputs are summed before `o`:
text branch attn(q, k_txt, v_txt) without RoPE, and fusion branch
attn(RoPE(q), RoPE(norm_k_fusion(k_fusion(y'))), v_fusion(y')) with y' = pre_attn_norm_fusion(other tower).
"""

from __future__ import annotations

import torch
from torch import nn

from model.attention import RefKV, attend, attend_masked
from model.norms import WanLayerNorm, WanRMSNorm
from model.rope import apply_rope


class TextFusionCrossAttention(nn.Module):
    """Cross-attention of one tower: text keys (`k`, `v`) and fusion keys from the other tower (`*_fusion`)."""

    def __init__(self, dim: int, num_heads: int, eps: float = 1e-6, qk_norm: bool = True, fusion: bool = True):
        super().__init__()
        self.dim, self.num_heads, self.head_dim = dim, num_heads, dim // num_heads
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
        self.norm_q = WanRMSNorm(dim, eps) if qk_norm else nn.Identity()
        self.norm_k = WanRMSNorm(dim, eps) if qk_norm else nn.Identity()
        self.has_fusion = fusion
        if fusion:
            self.k_fusion = nn.Linear(dim, dim)
            self.v_fusion = nn.Linear(dim, dim)
            self.pre_attn_norm_fusion = WanLayerNorm(dim, eps, elementwise_affine=True)
            self.norm_k_fusion = WanRMSNorm(dim, 1e-6) if qk_norm else nn.Identity()

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (self.num_heads, self.head_dim))

    def query(self, x: torch.Tensor) -> torch.Tensor:
        """Shared query [B, L, H, d] (no RoPE) from x already passed through norm3."""
        return self._heads(self.norm_q(self.q(x)))

    def text_kv(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Text keys/values [B, Lt, H, d] (no RoPE, no mask: Ovi attends all padded positions)."""
        return self._heads(self.norm_k(self.k(context))), self._heads(self.v(context))

    def fusion_kv(self, y: torch.Tensor, angles: torch.Tensor, valid: torch.Tensor | None = None) -> RefKV:
        """Fusion keys/values of the other tower's hidden states y [B, Ly, D] at their positions."""
        if not self.has_fusion:
            raise RuntimeError("this cross-attention was built without fusion modules")
        yn = self.pre_attn_norm_fusion(y)
        k = apply_rope(self._heads(self.norm_k_fusion(self.k_fusion(yn))), angles)
        return RefKV(k, self._heads(self.v_fusion(yn)), valid)

    def forward(
        self,
        x: torch.Tensor,
        angles: torch.Tensor,
        text: tuple[torch.Tensor, torch.Tensor] | None,
        fusion: list[RefKV] | None,
    ) -> torch.Tensor:
        """x [B, L, D] (after norm3) -> [B, L, D]. `text` = (k, v) or None to skip the text branch;
        `fusion` = key/value groups of the other tower this x may see (concatenated), None to skip."""
        q = self.query(x)
        y = torch.zeros_like(q)
        if text is not None:
            y = y + attend(q, text[0], text[1], None)
        if fusion is not None:
            y = y + self._fusion_branch(apply_rope(q, angles), fusion)
        return self.o(y.flatten(2))

    def _fusion_branch(self, q_rot: torch.Tensor, groups: list[RefKV]) -> torch.Tensor:
        """attn(RoPE(q), [K_g...], [V_g...]) over the valid keys of all groups; 0 if there are none."""
        groups = [g for g in groups if g.length > 0]
        if not groups:
            return torch.zeros_like(q_rot)
        k = torch.cat([g.k for g in groups], dim=1)
        v = torch.cat([g.v for g in groups], dim=1)
        valid = None if all(g.valid is None for g in groups) else _full_valid(groups, k.shape[0], k.device)
        return attend(q_rot, k, v, valid)

    def forward_dense(
        self,
        x_r: torch.Tensor,
        x_z: torch.Tensor,
        ang_r: torch.Tensor,
        ang_z: torch.Tensor,
        text_r: tuple[torch.Tensor, torch.Tensor] | None,
        text_z: tuple[torch.Tensor, torch.Tensor],
        other_ref: RefKV | None,
        other_noisy: RefKV,
        ref_policy: str,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Masked backend: one fusion SDPA over [my refs; my noisy] x [other refs; other noisy] where ref
        rows may see only other refs (policy ref_only) or nothing (none -> 0). Returns (out_r, out_z)."""
        nr = x_r.shape[1]
        q = self.query(torch.cat([x_r, x_z], dim=1))
        b, nq = q.shape[:2]
        y_text = torch.zeros_like(q)
        if text_r is not None:
            y_text[:, :nr] = attend(q[:, :nr], text_r[0], text_r[1], None)
        y_text[:, nr:] = attend(q[:, nr:], text_z[0], text_z[1], None)
        q_rot = apply_rope(q, torch.cat([ang_r.expand(b, -1, -1), ang_z.expand(b, -1, -1)], dim=1))
        n_or = 0 if other_ref is None else other_ref.length
        groups = ([other_ref] if n_or else []) + [other_noisy]
        k = torch.cat([g.k for g in groups], dim=1)
        v = torch.cat([g.v for g in groups], dim=1)
        key_valid = _full_valid(groups, b, q.device)
        is_ref_q = torch.arange(nq, device=q.device) < nr
        is_ref_k = torch.arange(k.shape[1], device=q.device) < n_or
        if ref_policy == "ref_only":
            allowed = ~(is_ref_q[:, None] & ~is_ref_k[None, :])
        else:  # "none": ref rows see nothing
            allowed = ~is_ref_q[:, None].expand(nq, k.shape[1])
        allowed = allowed[None].expand(b, -1, -1) & key_valid[:, None, :]
        y = y_text + attend_masked(q_rot, k, v, allowed)
        out = self.o(y.flatten(2))
        return out[:, :nr], out[:, nr:]


def _full_valid(groups: list[RefKV], batch: int, device) -> torch.Tensor:
    """Concatenated validity [B, sum L] of key groups (missing masks mean all valid)."""
    parts = [g.valid if g.valid is not None else torch.ones(batch, g.length, dtype=torch.bool, device=device) for g in groups]
    return torch.cat(parts, dim=1)
