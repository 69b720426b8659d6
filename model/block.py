"""One IAP transformer block (Wan/Ovi `WanAttentionBlock` + decoupled refs), per-group modulation.

Order inside a block: x += g1 * SelfAttn(LN1(x)(1+sc1)+sh1); x += CrossAttn(norm3(x)); x += g2 * FFN(LN2(x)(1+sc2)+sh2).
Reference and noisy rows are kept as two streams with their own modulation (ref t = 0), which equals Ovi's
per-token timestep path but stores [B, 1, 6, D] per group instead of [B, L, 6, D].
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from model.attention import DecoupledSelfAttention, RefKV
from model.cross_attention import TextFusionCrossAttention
from model.norms import WanLayerNorm


@dataclass
class Stream:
    """One token group of one tower: x [B, L, D], RoPE angles [B|1, L, d/2], group modulation e0 [B, 1, 6, D],
    valid [B, L] (None = all valid; padded rows are never attended)."""

    x: torch.Tensor
    angles: torch.Tensor
    e0: torch.Tensor
    valid: torch.Tensor | None = None

    def with_x(self, x: torch.Tensor) -> Stream:
        return replace(self, x=x)


class ModulationAdd(nn.Module):
    """Ovi's `modulation.modulation` table [1, 6, D] added to the time projection."""

    def __init__(self, dim: int, num: int = 6):
        super().__init__()
        self.modulation = nn.Parameter(torch.randn(1, num, dim) / dim**0.5)

    def forward(self, e0: torch.Tensor) -> torch.Tensor:  # [B, G, 6, D] -> [B, G, 6, D]
        return self.modulation.to(e0.dtype) + e0


class IAPBlock(nn.Module):
    """Wan block with Ovi key names; `self_attn` is decoupled (W^(z), W^(r)); `cross_attn` has text + fusion."""

    def __init__(self, dim: int, ffn_dim: int, num_heads: int, eps: float, qk_norm: bool, cross_attn_norm: bool,
                 decouple_o: bool, fusion: bool):
        super().__init__()
        self.norm1 = WanLayerNorm(dim, eps)
        self.self_attn = DecoupledSelfAttention(dim, num_heads, eps, qk_norm, decouple_o)
        self.norm3 = WanLayerNorm(dim, eps, elementwise_affine=True) if cross_attn_norm else nn.Identity()
        self.cross_attn = TextFusionCrossAttention(dim, num_heads, eps, qk_norm, fusion)
        self.norm2 = WanLayerNorm(dim, eps)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.GELU(approximate="tanh"), nn.Linear(ffn_dim, dim))
        self.modulation = ModulationAdd(dim, 6)

    def mods(self, s: Stream) -> tuple[torch.Tensor, ...]:
        """Six modulation vectors [B, 1, D]: shift/scale/gate (attn), shift/scale/gate (FFN)."""
        m = self.modulation(s.e0).to(s.x.dtype)  # [B, 1, 6, D]
        return tuple(m[:, :, i] for i in range(6))

    def _attn_in(self, s: Stream) -> torch.Tensor:
        sh, sc = self.mods(s)[:2]
        return self.norm1(s.x) * (1 + sc) + sh

    # ------------------------------------------------------------------ self-attention
    def self_attention(
        self, ref: Stream | None, noisy: Stream | None, backend: str, cached: RefKV | None = None
    ) -> tuple[Stream | None, Stream | None, RefKV | None]:
        """Gated self-attention residual for both streams. Ref rows see refs only (eq. 6); noisy rows see
        [refs; noisy] where refs come from `ref` (computed now) or `cached` (a previous pass)."""
        if ref is not None and noisy is not None and backend == "sdpa_mask":
            out_r, out_z, kv = self.self_attn.forward_dense(
                self._attn_in(ref), ref.angles, ref.valid, self._attn_in(noisy), noisy.angles
            )
            return self._gate(ref, out_r, 2), self._gate(noisy, out_z, 2), kv
        kv = cached
        new_ref = None
        if ref is not None:
            out_r, kv = self.self_attn.forward_ref(self._attn_in(ref), ref.angles, ref.valid)
            new_ref = self._gate(ref, out_r, 2)
        new_noisy = None
        if noisy is not None:
            out_z = self.self_attn.forward_noisy(self._attn_in(noisy), noisy.angles, kv)
            new_noisy = self._gate(noisy, out_z, 2)
        return new_ref, new_noisy, kv

    def _gate(self, s: Stream, y: torch.Tensor, idx: int) -> Stream:
        return s.with_x(s.x + y * self.mods(s)[idx])

    # ------------------------------------------------------------------ cross-attention + FFN
    def text_kv(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Text keys/values of this block for the embedded context [B, text_len, D]."""
        return self.cross_attn.text_kv(context)

    def fusion_kv(self, other: Stream) -> RefKV:
        """This block's fusion keys/values of the other tower's stream (at the other tower's positions)."""
        return self.cross_attn.fusion_kv(other.x, other.angles, other.valid)

    def cross_ffn(
        self,
        s: Stream,
        text: tuple[torch.Tensor, torch.Tensor] | None,
        fusion: list[RefKV] | None,
    ) -> Stream:
        """x += CrossAttn(norm3 x; text, fusion) (skipped when both branches are off); then the gated FFN."""
        x = s.x
        if text is not None or fusion is not None:
            x = x + self.cross_attn(self.norm3(x), s.angles, text, fusion)
        return self.ffn_step(s.with_x(x))

    def cross_ffn_dense(
        self,
        ref: Stream,
        noisy: Stream,
        text: tuple[torch.Tensor, torch.Tensor],
        refs_in_text: bool,
        other_ref: RefKV | None,
        other_noisy: RefKV,
        ref_policy: str,
    ) -> tuple[Stream, Stream]:
        """Masked-backend version of `cross_ffn` for both streams at once (joint mode)."""
        out_r, out_z = self.cross_attn.forward_dense(
            self.norm3(ref.x), self.norm3(noisy.x), ref.angles, noisy.angles,
            text if refs_in_text else None, text, other_ref, other_noisy, ref_policy,
        )
        ref_cross = refs_in_text or ref_policy != "none"
        ref = ref.with_x(ref.x + out_r) if ref_cross else ref
        return self.ffn_step(ref), self.ffn_step(noisy.with_x(noisy.x + out_z))

    def ffn_step(self, s: Stream) -> Stream:
        """x += g2 * FFN(LN2(x)(1+sc2)+sh2)."""
        m = self.mods(s)
        return s.with_x(s.x + self.ffn(self.norm2(s.x) * (1 + m[4]) + m[3]) * m[5])
