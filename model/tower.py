"""One modality tower (Ovi `WanModel` layout): embeddings, blocks, head; builds [refs; noisy] streams
with positions (ARCHITECTURE §3, §4, §10)."""

from __future__ import annotations

import math

import torch
from torch import nn

from model.block import IAPBlock
from model.config import IAPConfig
from model.embeddings import (
    AudioConvStem,
    check_video_shape,
    make_text_embedding,
    make_time_embedding,
    make_time_projection,
    pad_text,
    sinusoidal_embedding,
    video_patchify,
    video_unpatchify,
)
from model.identity import IdentityRefs, compact_rows
from model.norms import WanLayerNorm
from model.rope import audio_positions, audio_ref_start, rope_angles, video_positions, visual_ref_time


class Head(nn.Module):
    """Output head: LN (no affine) modulated by `modulation` [1, 2, D] + time embedding e, then `head` Linear."""

    def __init__(self, dim: int, out_features: int, eps: float = 1e-6):
        super().__init__()
        self.norm = WanLayerNorm(dim, eps)
        self.head = nn.Linear(dim, out_features)
        self.modulation = nn.Parameter(torch.randn(1, 2, dim) / dim**0.5)

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:  # x [B,L,D], e [B,1,D]
        m = self.modulation.to(e.dtype)[None] + e[:, :, None]  # [B, 1, 2, D]
        shift, scale = m[:, :, 0].to(x.dtype), m[:, :, 1].to(x.dtype)
        return self.head(self.norm(x) * (1 + scale) + shift)


class Tower(nn.Module):
    """Video (`ti2v`-shaped) or audio (`t2a`-shaped) tower with Ovi parameter names."""

    def __init__(self, cfg: IAPConfig, modality: str):
        super().__init__()
        self.cfg, self.modality = cfg, modality
        tc = cfg.video if modality == "video" else cfg.audio
        self.tcfg = tc
        d = cfg.dim
        if modality == "video":
            self.patch_embedding: nn.Module = nn.Conv3d(tc.in_dim, d, kernel_size=tc.patch_size, stride=tc.patch_size)
        else:
            self.patch_embedding = AudioConvStem(tc.in_dim, d, tc.stem_hidden_dim, tc.stem_kernel)
        self.text_embedding = make_text_embedding(cfg.text_dim, d)
        self.time_embedding = make_time_embedding(cfg.freq_dim, d)
        self.time_projection = make_time_projection(d)
        self.blocks = nn.ModuleList(
            IAPBlock(d, cfg.ffn_dim, cfg.num_heads, cfg.eps, cfg.qk_norm, cfg.cross_attn_norm, cfg.decouple_o,
                     cfg.fusion.enabled)
            for _ in range(cfg.num_layers)
        )
        self.head = Head(d, math.prod(tc.patch_size) * tc.out_dim, cfg.eps)

    @property
    def param_dtype(self) -> torch.dtype:
        return self.head.head.weight.dtype

    # ------------------------------------------------------------------ conditioning
    def embed_text(self, text: torch.Tensor) -> torch.Tensor:
        """umT5 features [B, Lt, text_dim] -> zero-pad to text_len -> MLP -> [B, text_len, D]."""
        if text.shape[-1] != self.cfg.text_dim:
            raise ValueError(f"text feature dim {text.shape[-1]} != text_dim {self.cfg.text_dim}")
        return self.text_embedding(pad_text(text.to(self.param_dtype), self.cfg.text_len))

    def time_embed(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """t [B] (0..1000, float or int) -> e [B, 1, D] (head) and e0 [B, 1, 6, D] (blocks)."""
        sin = sinusoidal_embedding(self.cfg.freq_dim, t.reshape(-1)).to(self.param_dtype)
        e = self.time_embedding(sin)[:, None]
        e0 = self.time_projection(e).unflatten(-1, (6, self.cfg.dim))
        return e, e0

    def angles(self, pos: torch.Tensor) -> torch.Tensor:
        """RoPE angles [.., L, d/2] (float64) for positions [.., L, 3]."""
        return rope_angles(pos, self.cfg.head_dim, self.cfg.rope.theta)

    # ------------------------------------------------------------------ tokens
    def embed_noisy(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, tuple[int, ...]]:
        """Noisy latent -> tokens [B, L, D], angles [1, L, d/2], grid (video (T', H', W') / audio (L,))."""
        x = x.to(self.param_dtype)
        if self.modality == "video":
            if x.dim() != 5 or x.shape[1] != self.tcfg.in_dim:
                raise ValueError(f"video latent must be [B, {self.tcfg.in_dim}, T, H, W], got {tuple(x.shape)}")
            check_video_shape(tuple(x.shape), self.tcfg.patch_size)
            tok, grid = video_patchify(self.patch_embedding, x)
            pos = video_positions(grid)
        else:
            if x.dim() != 3 or x.shape[2] != self.tcfg.in_dim:
                raise ValueError(f"audio latent must be [B, T, {self.tcfg.in_dim}], got {tuple(x.shape)}")
            tok, grid = self.patch_embedding(x), (x.shape[1],)
            pos = audio_positions(x.shape[1], self.cfg.rope.audio_time_scale)
        return tok, self.angles(pos.to(x.device))[None], grid

    def ref_tokens_raw(self, refs: IdentityRefs) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """Patchified reference tokens before e_id: tokens [B, K*n, D], positions [K*n, 3], valid [B, K*n],
        slot index [K*n] (which identity each row belongs to). None when this modality has no refs."""
        c = self.cfg
        if self.modality == "video":
            if refs.video is None:
                return None
            b, k = refs.video.shape[:2]
            canv = refs.video.to(self.param_dtype).flatten(0, 1)[:, :, None]  # [B*K, Cv, 1, H, W]
            check_video_shape(tuple(canv.shape), self.tcfg.patch_size)
            tok, grid = video_patchify(self.patch_embedding, canv)  # [B*K, n, D]
            n = tok.shape[1]
            pos = torch.cat([
                video_positions(grid, visual_ref_time(i, self.tcfg.max_latent_frames, c.identity.audio_ref_len,
                                                       c.rope.audio_time_scale, c.ref_time_layout))
                for i in range(k)
            ])
            valid = refs.id_mask[:, :, None].expand(b, k, n)
        else:
            if refs.audio is None:
                return None
            b, k, length = refs.audio.shape[:3]
            lens = refs.audio_lens.to(refs.audio.device)
            in_clip = torch.arange(length, device=refs.audio.device)[None, None] < lens[..., None]  # [B, K, L]
            valid = in_clip & refs.id_mask[..., None].to(in_clip.device)
            tok = self.patch_embedding(refs.audio.to(self.param_dtype).flatten(0, 1), in_clip.flatten(0, 1))
            n = length
            pos = torch.cat([
                audio_positions(length, c.rope.audio_time_scale,
                                start=audio_ref_start(i, self.tcfg.max_latent_len, c.identity.audio_ref_len))
                for i in range(k)
            ])
        slot = torch.arange(k, device=tok.device).repeat_interleave(n)
        return tok.reshape(b, k * n, -1), pos.to(tok.device), valid.reshape(b, k * n).to(tok.device), slot

    def embed_refs(self, refs: IdentityRefs | None, e_id: torch.Tensor | None) -> tuple[torch.Tensor, ...] | None:
        """Reference tokens r^(k) + e_id[k] (eq. 4), packed without invalid rows: (tokens [B, M, D],
        angles [B, M, d/2], valid [B, M] | None), or None if there are no references."""
        if refs is None:
            return None
        raw = self.ref_tokens_raw(refs)
        if raw is None:
            return None
        tok, pos, valid, slot = raw
        if e_id is not None:
            tok = tok + e_id.to(tok.dtype)[slot][None]
        return compact_rows(tok, self.angles(pos)[None], valid)

    # ------------------------------------------------------------------ head
    def unembed(self, x: torch.Tensor, e: torch.Tensor, grid: tuple[int, ...]) -> torch.Tensor:
        """Head on noisy rows and unpatchify: video [B, C, T, H, W]; audio [B, T, C]."""
        y = self.head(x, e)
        if self.modality == "video":
            return video_unpatchify(y, grid, self.tcfg.patch_size, self.tcfg.out_dim)  # type: ignore[arg-type]
        return y
