"""`IAPFusionModel`: Ovi's two towers stepped layer by layer, with identity reference tokens, decoupled
asymmetric self-attention, fusion policy for ref rows, SLG skip layers, unimodal modes and a reference
K/V cache (ARCHITECTURE §1.3, §2, §5)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from model.attention import RefKV
from model.block import Stream
from model.config import IAPConfig
from model.identity import IdentityEmbedding, IdentityRefs
from model.tower import Tower

Mode = Literal["joint", "video", "audio"]
TextArg = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


@dataclass
class LayerRefCache:
    """Per-layer reference K/V: self-attention K_r/V_r per tower and the fusion K/V of each tower's refs
    as computed by the *other* tower's block (what that tower's noisy queries attend to)."""

    video_self: RefKV | None = None
    audio_self: RefKV | None = None
    video_for_audio: RefKV | None = None  # audio block i: fusion K/V of video refs
    audio_for_video: RefKV | None = None  # video block i: fusion K/V of audio refs


@dataclass
class RefCache:
    """Reference K/V for every executed layer of one CFG branch (refs at t_ref; text and skip set fixed)."""

    mode: str
    skip_layers: tuple[int, ...]
    batch_size: int
    layers: list[LayerRefCache | None] = field(default_factory=list)
    ref_hidden: dict[str, torch.Tensor | None] = field(default_factory=dict)


@dataclass
class ForwardOutput:
    """Velocity predictions (refs removed) and the final hidden states of the reference rows (for tests)."""

    video: torch.Tensor | None
    audio: torch.Tensor | None
    video_ref_hidden: torch.Tensor | None = None
    audio_ref_hidden: torch.Tensor | None = None


class IAPFusionModel(nn.Module):
    """Identity-as-Presence generator on Ovi's dual tower. Parameter names: `video_model.*`, `audio_model.*`
    (Ovi verbatim + `*_ref` projections) and the shared `identity_embedding.weight`."""

    def __init__(self, cfg: IAPConfig):
        super().__init__()
        self.cfg = cfg
        self.video_model = Tower(cfg, "video")
        self.audio_model = Tower(cfg, "audio")
        self.identity_embedding = (
            IdentityEmbedding(cfg.identity.k_max, cfg.dim, cfg.identity.init_std) if cfg.use_identity_embedding else None
        )
        self.init_weights()

    # ------------------------------------------------------------------ init
    @torch.no_grad()
    def init_weights(self) -> None:
        """Ovi/Wan init: xavier Linear + zero bias, N(0, .02) text/time MLPs, video fusion Linear / 10,
        W^(r) = W^(z). (Unlike Wan the head is not zeroed, so a random model gives informative outputs.)"""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for tower in (self.video_model, self.audio_model):
            if isinstance(tower.patch_embedding, nn.Conv3d):
                nn.init.xavier_uniform_(tower.patch_embedding.weight.flatten(1))
            for seq in (tower.text_embedding, tower.time_embedding):
                for m in seq.modules():
                    if isinstance(m, nn.Linear):
                        nn.init.normal_(m.weight, std=0.02)
        for name, m in self.video_model.named_modules():
            if "fusion" in name and isinstance(m, nn.Linear):
                m.weight.mul_(self.cfg.fusion.video_init_scale)
        self.init_ref_from_noisy()

    @torch.no_grad()
    def init_ref_from_noisy(self) -> None:
        """Copy W^(z) (q, k, v, norms[, o]) into W^(r) in every block; call after loading Ovi weights."""
        for tower in (self.video_model, self.audio_model):
            for blk in tower.blocks:
                blk.self_attn.init_ref_from_noisy()

    @property
    def e_id(self) -> torch.Tensor | None:
        """The shared identity table [K_max, D] (the same tensor is added in both towers), or None."""
        return None if self.identity_embedding is None else self.identity_embedding.weight

    # ------------------------------------------------------------------ public API
    def forward(
        self,
        video: torch.Tensor | None,
        audio: torch.Tensor | None,
        t: torch.Tensor,
        text: TextArg,
        refs: IdentityRefs | None = None,
        mode: Mode = "joint",
        ref_cache: RefCache | None = None,
        skip_layers: tuple[int, ...] = (),
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Velocity for video [B, Cv, Tv, Hv, Wv] and/or audio [B, Ta, Ca] at timesteps t [B] (0..1000).

        text: umT5 features [B, Lt, text_dim], or a (video_text, audio_text) pair. refs: identity slots.
        mode: "joint" (fusion on), "video" or "audio" (the other input is ignored and its output is None).
        ref_cache: from `build_ref_cache` (same refs/text/skip_layers); skip_layers: SLG blocks to skip.
        """
        out = self.run(video, audio, t, text, refs, mode, ref_cache, skip_layers)
        return out.video, out.audio

    def run(
        self,
        video: torch.Tensor | None,
        audio: torch.Tensor | None,
        t: torch.Tensor,
        text: TextArg,
        refs: IdentityRefs | None = None,
        mode: Mode = "joint",
        ref_cache: RefCache | None = None,
        skip_layers: tuple[int, ...] = (),
    ) -> ForwardOutput:
        """`forward` returning a `ForwardOutput` that also carries the final reference hidden states."""
        self._check_mode(mode, video, audio)
        skip = tuple(sorted(set(int(i) for i in skip_layers)))
        use_v, use_a = mode in ("joint", "video"), mode in ("joint", "audio")
        x_v, x_a = (video if use_v else None), (audio if use_a else None)
        b = (x_v if x_v is not None else x_a).shape[0]  # type: ignore[union-attr]
        t = self._timesteps(t, b, (x_v if x_v is not None else x_a).device)  # type: ignore[union-attr]
        tv, ta = self._split_text(text)
        ctx_v = self.video_model.embed_text(tv) if use_v else None
        ctx_a = self.audio_model.embed_text(ta) if use_a else None

        vz = az = None
        v_head = a_head = None
        if x_v is not None:
            tok, ang, grid_v = self.video_model.embed_noisy(x_v)
            e_v, e0_v = self.video_model.time_embed(t)
            vz, v_head = Stream(tok, ang, e0_v), (e_v, grid_v)
        if x_a is not None:
            tok, ang, grid_a = self.audio_model.embed_noisy(x_a)
            e_a, e0_a = self.audio_model.time_embed(t)
            az, a_head = Stream(tok, ang, e0_a), (e_a, grid_a)

        vr = ar = None
        if ref_cache is not None:
            self._check_cache(ref_cache, mode, skip, b)
        elif refs is not None:
            if refs.batch_size != b:
                raise ValueError(f"refs batch {refs.batch_size} != latent batch {b}")
            vr, ar = self._ref_streams(refs, t, use_v, use_a)

        for i in range(self.cfg.num_layers):
            if i in skip:
                continue
            entry = ref_cache.layers[i] if ref_cache is not None else None
            vr, vz, ar, az, _ = self._layer(i, mode, vr, vz, ar, az, ctx_v, ctx_a, entry)

        out_v = self.video_model.unembed(vz.x, v_head[0], v_head[1]) if vz is not None else None
        out_a = self.audio_model.unembed(az.x, a_head[0], a_head[1]) if az is not None else None
        if ref_cache is not None:
            hv, ha = ref_cache.ref_hidden.get("video"), ref_cache.ref_hidden.get("audio")
        else:
            hv, ha = (vr.x if vr is not None else None), (ar.x if ar is not None else None)
        return ForwardOutput(out_v, out_a, hv, ha)

    @torch.no_grad()
    def build_ref_cache(
        self,
        refs: IdentityRefs,
        text: TextArg,
        skip_layers: tuple[int, ...] = (),
        mode: Mode = "joint",
        t: torch.Tensor | None = None,
    ) -> RefCache:
        """Run the reference stream alone once and keep every layer's ref K/V (exact when t_ref is fixed).

        Build one cache per CFG branch (text and skip_layers differ). `t` is only used when
        cfg.ref_timestep == "current" (then the cache is exact only for that t).
        """
        skip = tuple(sorted(set(int(i) for i in skip_layers)))
        use_v, use_a = mode in ("joint", "video"), mode in ("joint", "audio")
        b = refs.batch_size
        dev = refs.id_mask.device
        t_ref = torch.zeros(b, device=dev) if t is None else self._timesteps(t, b, dev)
        tv, ta = self._split_text(text)
        ctx_v = self.video_model.embed_text(tv) if use_v else None
        ctx_a = self.audio_model.embed_text(ta) if use_a else None
        vr, ar = self._ref_streams(refs, t_ref, use_v, use_a)
        cache = RefCache(mode=mode, skip_layers=skip, batch_size=b, layers=[None] * self.cfg.num_layers)
        for i in range(self.cfg.num_layers):
            if i in skip:
                continue
            vr, _, ar, _, entry = self._layer(i, mode, vr, None, ar, None, ctx_v, ctx_a, None)
            cache.layers[i] = entry
        cache.ref_hidden = {"video": vr.x if vr is not None else None, "audio": ar.x if ar is not None else None}
        return cache

    def ref_tokens(self, refs: IdentityRefs) -> dict[str, tuple[torch.Tensor, ...] | None]:
        """Packed reference tokens (+ e_id) per tower: {"video": (tokens, angles, valid), "audio": ...}."""
        return {
            "video": self.video_model.embed_refs(refs, self.e_id),
            "audio": self.audio_model.embed_refs(refs, self.e_id),
        }

    # ------------------------------------------------------------------ internals
    def _check_mode(self, mode: str, video: torch.Tensor | None, audio: torch.Tensor | None) -> None:
        if mode not in ("joint", "video", "audio"):
            raise ValueError(f"mode must be 'joint', 'video' or 'audio', got {mode!r}")
        if mode in ("joint", "video") and video is None:
            raise ValueError(f"mode={mode!r} needs a video latent")
        if mode in ("joint", "audio") and audio is None:
            raise ValueError(f"mode={mode!r} needs an audio latent")
        if mode == "joint" and video.shape[0] != audio.shape[0]:  # type: ignore[union-attr]
            raise ValueError(f"batch mismatch: video {video.shape[0]} vs audio {audio.shape[0]}")  # type: ignore[union-attr]
        if mode == "joint" and not self.cfg.fusion.enabled:
            raise ValueError("joint mode needs fusion.enabled=True")

    @staticmethod
    def _timesteps(t: torch.Tensor | float, b: int, device: torch.device) -> torch.Tensor:
        t = torch.as_tensor(t, device=device)
        if t.dim() == 0:
            t = t.expand(b)
        if t.shape != (b,):
            raise ValueError(f"t must be a scalar or [B={b}], got {tuple(t.shape)}")
        return t

    @staticmethod
    def _split_text(text: TextArg) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(text, (tuple, list)):
            if len(text) != 2:
                raise ValueError("text pair must be (video_text, audio_text)")
            return text[0], text[1]
        return text, text

    def _check_cache(self, cache: RefCache, mode: str, skip: tuple[int, ...], b: int) -> None:
        if cache.mode != mode or cache.skip_layers != skip or cache.batch_size != b:
            raise ValueError(
                f"ref_cache was built for mode={cache.mode}, skip_layers={cache.skip_layers}, B={cache.batch_size}; "
                f"called with mode={mode}, skip_layers={skip}, B={b} (build one cache per CFG branch)"
            )

    def _ref_streams(self, refs: IdentityRefs, t: torch.Tensor, use_v: bool, use_a: bool
                     ) -> tuple[Stream | None, Stream | None]:
        """Reference streams per tower at t_ref (0, or t when cfg.ref_timestep == 'current')."""
        refs.validate(self.cfg.identity.k_max, self.cfg.identity.audio_ref_len)
        t_ref = torch.zeros_like(t) if self.cfg.ref_timestep == "zero" else t
        out: list[Stream | None] = []
        for use, tower in ((use_v, self.video_model), (use_a, self.audio_model)):
            packed = tower.embed_refs(refs.to(t.device), self.e_id) if use else None
            if packed is None:
                out.append(None)
                continue
            tok, ang, valid = packed
            out.append(Stream(tok, ang, tower.time_embed(t_ref.to(t.device))[1], valid))
        return out[0], out[1]

    def _layer(self, i: int, mode: str, vr, vz, ar, az, ctx_v, ctx_a, entry: LayerRefCache | None):
        """One layer (both towers in joint mode), with optional per-block gradient checkpointing."""
        fn = self._joint_layer if mode == "joint" else self._uni_layer
        args = (i, mode, vr, vz, ar, az, ctx_v, ctx_a, entry)
        if self.training and self.cfg.gradient_checkpointing and torch.is_grad_enabled():
            return checkpoint(fn, *args, use_reentrant=False)
        return fn(*args)

    def _uni_layer(self, i: int, mode: str, vr, vz, ar, az, ctx_v, ctx_a, entry: LayerRefCache | None):
        """Unimodal block (Ovi's vid=None / audio=None path): self-attention, text cross-attention, FFN."""
        video = mode == "video"
        tower = self.video_model if video else self.audio_model
        r, z, ctx = (vr, vz, ctx_v) if video else (ar, az, ctx_a)
        blk = tower.blocks[i]
        cached = None if entry is None else (entry.video_self if video else entry.audio_self)
        r, z, kv = blk.self_attention(r, z, self.cfg.attention_backend, cached)
        text = blk.text_kv(ctx)
        if r is not None:
            r = blk.cross_ffn(r, text if self.cfg.refs_in_text_cross_attn else None, None)
        if z is not None:
            z = blk.cross_ffn(z, text, None)
        new_entry = LayerRefCache(video_self=kv) if video else LayerRefCache(audio_self=kv)
        if video:
            return r, z, ar, az, new_entry
        return vr, vz, r, z, new_entry

    def _joint_layer(self, i: int, mode: str, vr, vz, ar, az, ctx_v, ctx_a, entry: LayerRefCache | None):
        """Ovi order: audio self-attn, video self-attn, audio cross+FFN (target: video after self-attn),
        video cross+FFN (target: audio after self-attn). Ref rows follow eq. 6 and the fusion ref policy."""
        cfg = self.cfg
        backend, policy, rtext = cfg.attention_backend, cfg.fusion.ref_policy, cfg.refs_in_text_cross_attn
        vb, ab = self.video_model.blocks[i], self.audio_model.blocks[i]
        ar, az, a_kv = ab.self_attention(ar, az, backend, None if entry is None else entry.audio_self)
        vr, vz, v_kv = vb.self_attention(vr, vz, backend, None if entry is None else entry.video_self)
        if entry is not None:
            v_for_a, a_for_v = entry.video_for_audio, entry.audio_for_video
        else:
            v_for_a = ab.fusion_kv(vr) if vr is not None else None
            a_for_v = vb.fusion_kv(ar) if ar is not None else None
        vz_for_a = ab.fusion_kv(vz) if vz is not None else None
        az_for_v = vb.fusion_kv(az) if az is not None else None
        new_entry = LayerRefCache(v_kv, a_kv, v_for_a, a_for_v)

        def tower_cross(blk, r, z, ctx, other_ref, other_noisy):
            text = blk.text_kv(ctx)
            if backend == "sdpa_mask" and r is not None and z is not None:
                return blk.cross_ffn_dense(r, z, text, rtext, other_ref, other_noisy, policy)
            ref_fusion = ([other_ref] if other_ref is not None else []) if policy == "ref_only" else None
            if r is not None:
                r = blk.cross_ffn(r, text if rtext else None, ref_fusion)
            if z is not None:
                groups = ([other_ref] if other_ref is not None else []) + [other_noisy]
                z = blk.cross_ffn(z, text, groups)
            return r, z

        ar, az = tower_cross(ab, ar, az, ctx_a, v_for_a, vz_for_a)
        vr, vz = tower_cross(vb, vr, vz, ctx_v, a_for_v, az_for_v)
        return vr, vz, ar, az, new_entry
