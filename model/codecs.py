"""Codecs of the generator: Wan2.2 video VAE, MMAudio 16 kHz audio VAE + BigVGAN vocoder, umT5 text encoder.

Real codecs load from local files only (no downloads); every missing file raises MissingCheckpointError
naming it. ``tiny`` codecs are random, small instances of the *same* classes with the tiny model's latent
channels: they exercise every shape and stride on CPU but produce noise.

Shapes (real):  pixels [B,3,4n+1,H,W] in [-1,1] -> video latents [B,48,n+1,H/16,W/16];
                wave 16 kHz [B,N] -> mel [B,80,N//256] -> audio latents [B,N//512,20] (31.25/s);
                text -> [B,text_len,4096] (trimmed to the real length, then zero-padded).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import weight_norm
from torch.nn.utils.parametrize import remove_parametrizations

from iap_bench.errors import MissingCheckpointError
from iap_bench.weights import WeightSpec

# Wan2.2 VAE per-channel latent statistics (published constants of Wan2_2_VAE, 48 channels).
WAN22_LATENTS_MEAN = [
    -0.2289, -0.0052, -0.1323, -0.2339, -0.2799, 0.0174, 0.1838, 0.1557, -0.1382, 0.0542, 0.2813, 0.0891,
    0.1570, -0.0098, 0.0375, -0.1825, -0.2246, -0.1207, -0.0698, 0.5109, 0.2665, -0.2108, -0.2158, 0.2502,
    -0.2055, -0.0322, 0.1109, 0.1567, -0.0729, 0.0899, -0.2799, -0.1230, -0.0313, -0.1649, 0.0117, 0.0723,
    -0.2839, -0.2083, -0.0520, 0.3748, 0.0152, 0.1957, 0.1433, -0.2944, 0.3573, -0.0548, -0.1681, -0.0667,
]
WAN22_LATENTS_STD = [
    0.4765, 1.0364, 0.4514, 1.1677, 0.5313, 0.4990, 0.4818, 0.5013, 0.8158, 1.0344, 0.5894, 1.0901,
    0.6885, 0.6165, 0.8454, 0.4978, 0.5759, 0.3523, 0.7135, 0.6804, 0.5833, 1.4146, 0.8986, 0.5659,
    0.7069, 0.5338, 0.4889, 0.4917, 0.4069, 0.4999, 0.6866, 0.4093, 0.5709, 0.6065, 0.6415, 0.4944,
    0.5726, 1.2042, 0.5458, 1.6887, 0.3971, 1.0600, 0.3943, 0.5537, 0.5444, 0.4089, 0.7468, 0.7744,
]

AUDIO_SR = 16_000
MEL_HOP = 256
AUDIO_LATENT_HOP = 512  # one 2x downsample of the mel frames -> 31.25 latents/s

# --------------------------------------------------------------------------------------------------
# Where the real files live and how to get them


def _spec(name: str, filename: str, how: str, key: str) -> WeightSpec:
    return WeightSpec(name=name, filename=filename, how_to_get=how, config_key=key,
                      search_paths=("$IAP_WEIGHTS", "~/.cache/iap/weights", "weights"), env_var="IAP_WEIGHTS")


VIDEO_VAE_SPEC = _spec(
    "wan2.2-vae", "config.json",
    "the diffusers-format VAE folder of Wan-AI/Wan2.2-TI2V-5B-Diffusers (subfolder `vae`: config.json + "
    "diffusion_pytorch_model.safetensors); or convert Wan2.2-TI2V-5B/Wan2.2_VAE.pth with diffusers' "
    "scripts/convert_wan_to_diffusers.py", "generator.params.codecs.video_vae")
AUDIO_VAE_SPEC = _spec(
    "mmaudio-vae-16k", "v1-16.pth",
    "MMAudio release ext_weights/v1-16.pth (github.com/hkchengrex/MMAudio; also shipped in chetwinlow1/Ovi "
    "under MMAudio/ext_weights/)", "generator.params.codecs.audio_vae")
VOCODER_SPEC = _spec(
    "bigvgan-16k", "best_netG.pt",
    "MMAudio's 16 kHz BigVGAN vocoder best_netG.pt (MMAudio ext_weights/, or chetwinlow1/Ovi MMAudio/ext_weights/)",
    "generator.params.codecs.vocoder")
TEXT_ENCODER_SPEC = _spec(
    "umt5-xxl-encoder", "models_t5_umt5-xxl-enc-bf16.pth",
    "Wan-AI/Wan2.2-TI2V-5B/models_t5_umt5-xxl-enc-bf16.pth, or a diffusers/transformers folder with a "
    "UMT5EncoderModel (Wan2.2-TI2V-5B-Diffusers/text_encoder)", "generator.params.codecs.text_encoder")
TOKENIZER_SPEC = _spec(
    "umt5-xxl-tokenizer", "tokenizer_config.json",
    "the google/umt5-xxl tokenizer folder (Wan2.2-TI2V-5B/google/umt5-xxl, or the Diffusers repo's `tokenizer`)",
    "generator.params.codecs.tokenizer")


def resolve_file(spec: WeightSpec, explicit: str | Path | None) -> Path:
    """Resolve a codec file: an explicit file, a folder holding ``spec.filename``, or the search paths."""
    if explicit:
        p = Path(explicit).expanduser()
        if p.is_file():
            return p
    return spec.resolve(explicit)


# --------------------------------------------------------------------------------------------------
# Video: Wan2.2 VAE through diffusers' AutoencoderKLWan


def wan22_vae_kwargs() -> dict[str, Any]:
    """AutoencoderKLWan kwargs of the Wan2.2 TI2V-5B VAE (z 48, stride (4,16,16), patch 2)."""
    return dict(base_dim=160, decoder_base_dim=256, z_dim=48, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
                attn_scales=[], temperal_downsample=[False, True, True], dropout=0.0, is_residual=True,
                in_channels=12, out_channels=12, patch_size=2, scale_factor_temporal=4, scale_factor_spatial=16,
                latents_mean=list(WAN22_LATENTS_MEAN), latents_std=list(WAN22_LATENTS_STD))


def tiny_vae_kwargs(z_dim: int) -> dict[str, Any]:
    """Same class and strides as Wan2.2's VAE, with few channels and ``z_dim`` latent channels."""
    return dict(base_dim=16, decoder_base_dim=16, z_dim=z_dim, dim_mult=[1, 2, 2, 2], num_res_blocks=1,
                attn_scales=[], temperal_downsample=[False, True, True], dropout=0.0, is_residual=True,
                in_channels=12, out_channels=12, patch_size=2, scale_factor_temporal=4, scale_factor_spatial=16,
                latents_mean=[0.0] * z_dim, latents_std=[1.0] * z_dim)


class VideoCodec(nn.Module):
    """Pixels <-> normalised video latents with a Wan-style AutoencoderKLWan ((x - mean) / std, posterior mean)."""

    def __init__(self, vae: nn.Module):
        super().__init__()
        self.vae = vae
        cfg = vae.config
        self.register_buffer("mean", torch.tensor(cfg.latents_mean, dtype=torch.float32).view(1, -1, 1, 1, 1))
        self.register_buffer("std", torch.tensor(cfg.latents_std, dtype=torch.float32).view(1, -1, 1, 1, 1))
        self.z_dim = int(cfg.z_dim)
        self.stride_t = int(cfg.scale_factor_temporal)
        self.stride_s = int(cfg.scale_factor_spatial)

    @torch.no_grad()
    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """[B,3,T,H,W] in [-1,1] (T = 4n+1, H,W multiples of 16) -> [B,z,n+1,H/16,W/16]."""
        check_video_shape(pixels.shape[2], pixels.shape[3], pixels.shape[4], self.stride_t, self.stride_s)
        dtype = next(self.vae.parameters()).dtype
        mu = self.vae.encode(pixels.to(dtype)).latent_dist.mode().float()
        return (mu - self.mean) / self.std

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """[B,z,t,h,w] normalised latents -> [B,3,4(t-1)+1,16h,16w] in [-1,1]."""
        dtype = next(self.vae.parameters()).dtype
        z = latents.float() * self.std + self.mean
        return self.vae.decode(z.to(dtype)).sample.float().clamp(-1.0, 1.0)

    def latent_shape(self, frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        """(C, T', H', W') of the latents for a clip of the given pixel size."""
        check_video_shape(frames, height, width, self.stride_t, self.stride_s)
        return (self.z_dim, (frames - 1) // self.stride_t + 1, height // self.stride_s, width // self.stride_s)


def check_video_shape(frames: int, height: int, width: int, stride_t: int = 4, stride_s: int = 16) -> None:
    """Frames must be stride_t*n+1 and H, W multiples of the spatial stride."""
    if (frames - 1) % stride_t or height % stride_s or width % stride_s:
        raise ValueError(f"video {frames}x{height}x{width}: frames must be {stride_t}n+1 and H, W multiples of "
                         f"{stride_s} (x2 for the DiT patch: use multiples of {2 * stride_s})")


def load_video_vae(path: str | Path | None, dtype: torch.dtype = torch.float32) -> VideoCodec:
    """Load the Wan2.2 VAE from a local diffusers folder (``config.json`` + weights), never from a hub."""
    from diffusers import AutoencoderKLWan

    p = Path(path).expanduser() if path else None
    if p is not None and p.is_file():
        raise ValueError(
            f"{p}: single-file Wan2.2 VAE checkpoints use Wan's own key names, which diffusers' single-file "
            "loader only maps for the Wan2.1 VAE; convert it once with diffusers' "
            "scripts/convert_wan_to_diffusers.py (model type Wan2.2-TI2V-5B) and point at the output `vae` folder")
    if p is not None and (p / "vae" / "config.json").exists():  # a whole Diffusers pipeline folder
        p = p / "vae"
    cfg_file = resolve_file(VIDEO_VAE_SPEC, p)
    vae = AutoencoderKLWan.from_pretrained(str(cfg_file.parent), local_files_only=True, torch_dtype=dtype)
    return VideoCodec(vae.eval())


def tiny_video_codec(z_dim: int = 4, seed: int = 0) -> VideoCodec:
    """Random tiny AutoencoderKLWan with Wan2.2's strides (4,16,16): real shapes, noise content."""
    from diffusers import AutoencoderKLWan

    torch.manual_seed(seed)
    return VideoCodec(AutoencoderKLWan(**tiny_vae_kwargs(z_dim)).eval())


# --------------------------------------------------------------------------------------------------
# Audio: mel front end, MMAudio-style 1D VAE with magnitude-preserving layers, BigVGAN vocoder


@dataclass(frozen=True)
class MelConfig:
    """MMAudio 16 kHz mel: n_fft 1024, hop 256, 80 mels, 0-8 kHz, log10 of the clamped magnitude."""

    sample_rate: int = AUDIO_SR
    n_fft: int = 1024
    hop: int = MEL_HOP
    win: int = 1024
    n_mels: int = 80
    fmin: float = 0.0
    fmax: float = 8000.0
    clip: float = 1e-5


class MelSpectrogram(nn.Module):
    """Wave [B,N] -> log10 mel [B,n_mels,N//hop]: reflect pad (n_fft-hop)/2 each side, uncentred STFT."""

    def __init__(self, cfg: MelConfig = MelConfig()):
        super().__init__()
        import librosa

        self.cfg = cfg
        basis = librosa.filters.mel(sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmin=cfg.fmin,
                                    fmax=cfg.fmax)
        self.register_buffer("mel_basis", torch.from_numpy(basis).float(), persistent=False)
        self.register_buffer("window", torch.hann_window(cfg.win), persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        c = self.cfg
        pad = (c.n_fft - c.hop) // 2
        x = F.pad(wave.float().clamp(-1, 1).unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
        spec = torch.stft(x, c.n_fft, hop_length=c.hop, win_length=c.win, window=self.window, center=False,
                          normalized=False, onesided=True, return_complex=True)
        mag = torch.sqrt(spec.real.pow(2) + spec.imag.pow(2) + 1e-9)
        return torch.log10(torch.clamp(self.mel_basis @ mag, min=c.clip))


def mp_normalize(x: torch.Tensor, dim: Sequence[int] | None = None, eps: float = 1e-4) -> torch.Tensor:
    """EDM2 normalisation: divide by the RMS-scaled L2 norm over ``dim`` (all but dim 0 by default)."""
    dims = list(range(1, x.ndim)) if dim is None else list(dim)
    norm = torch.linalg.vector_norm(x, dim=dims, keepdim=True, dtype=torch.float32)
    norm = eps + norm * math.sqrt(norm.numel() / x.numel())
    return x / norm.to(x.dtype)


def mp_silu(x: torch.Tensor) -> torch.Tensor:
    """Magnitude-preserving SiLU."""
    return F.silu(x) / 0.596


def mp_sum(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Magnitude-preserving weighted sum."""
    return a.lerp(b, t) / math.sqrt((1 - t) ** 2 + t ** 2)


class MPConv1d(nn.Module):
    """Conv1d with forced weight normalisation (unit-norm filters / sqrt(fan_in)), 'same' padding, no bias."""

    def __init__(self, c_in: int, c_out: int, kernel: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, kernel))

    def forward(self, x: torch.Tensor, gain: torch.Tensor | float = 1.0) -> torch.Tensor:
        w = mp_normalize(self.weight.float()) / math.sqrt(self.weight[0].numel())
        w = (w * gain).to(x.dtype)
        return F.conv1d(x, w, padding=w.shape[-1] // 2)


class MPResBlock(nn.Module):
    """Pixel-norm -> (mp_silu, conv) x2, 1x1 shortcut on a width change, mp_sum(t=0.3)."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 3):
        super().__init__()
        self.c_in, self.c_out = c_in, c_out
        self.conv1 = MPConv1d(c_in, c_out, kernel)
        self.conv2 = MPConv1d(c_out, c_out, kernel)
        if c_in != c_out:
            self.nin_shortcut = MPConv1d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = mp_normalize(x, dim=[1])
        h = self.conv2(mp_silu(self.conv1(mp_silu(x))))
        if self.c_in != self.c_out:
            x = self.nin_shortcut(x)
        return mp_sum(x, h, 0.3)


class MPAttnBlock(nn.Module):
    """Single-head self-attention over time with cosine-normalised q/k/v, mp_sum residual."""

    def __init__(self, channels: int):
        super().__init__()
        self.qkv = MPConv1d(channels, channels * 3, 1)
        self.proj_out = MPConv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.qkv(x)  # [B,3C,T]
        y = y.reshape(y.shape[0], 1, -1, 3, y.shape[-1])
        q, k, v = mp_normalize(y, dim=[2]).unbind(3)  # each [B,1,C,T]
        h = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        h = h.transpose(-1, -2).reshape(x.shape)
        return mp_sum(x, self.proj_out(h), 0.3)


class Downsample(nn.Module):
    """1x1 conv, average-pool by 2, 1x1 conv."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = MPConv1d(channels, channels, 1)
        self.conv2 = MPConv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.avg_pool1d(self.conv1(x), 2, 2))


class Upsample(nn.Module):
    """Nearest-exact x2, then a 3-tap conv."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = MPConv1d(channels, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest-exact"))


@dataclass(frozen=True)
class AudioVAEConfig:
    """MMAudio VAE_16k: 80 mels, embed 20, hidden 384, ch_mult (1,2,4), one 2x downsample at level 0."""

    data_dim: int = 80
    embed_dim: int = 20
    hidden_dim: int = 384
    ch_mult: tuple[int, ...] = (1, 2, 4)
    num_res_blocks: int = 2
    attn_layers: tuple[int, ...] = (3,)
    down_layers: tuple[int, ...] = (0,)
    clip_act: float = 256.0


class _Level(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.block = nn.ModuleList()
        self.attn = nn.ModuleList()


class _Mid(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.block_1 = MPResBlock(c, c)
        self.attn_1 = MPAttnBlock(c)
        self.block_2 = MPResBlock(c, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block_2(self.attn_1(self.block_1(x)))


class AudioEncoder(nn.Module):
    """Mel [B,80,T] -> moments [B,2*embed,T/2] (mean then log-variance)."""

    def __init__(self, c: AudioVAEConfig):
        super().__init__()
        self.c = c
        self.conv_in = MPConv1d(c.data_dim, c.hidden_dim, 3)
        self.down = nn.ModuleList()
        mult_in = (1,) + tuple(c.ch_mult)
        block_in = c.hidden_dim
        for i, m in enumerate(c.ch_mult):
            level = _Level()
            block_in = c.hidden_dim * mult_in[i]
            for _ in range(c.num_res_blocks):
                level.block.append(MPResBlock(block_in, c.hidden_dim * m))
                block_in = c.hidden_dim * m
                if i in c.attn_layers:
                    level.attn.append(MPAttnBlock(block_in))
            if i in c.down_layers:
                level.downsample = Downsample(block_in)
            self.down.append(level)
        self.mid = _Mid(block_in)
        self.conv_out = MPConv1d(block_in, 2 * c.embed_dim, 3)
        self.learnable_gain = nn.Parameter(torch.zeros([]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for i, level in enumerate(self.down):
            for j, blk in enumerate(level.block):
                h = blk(h)
                if len(level.attn):
                    h = level.attn[j](h)
                h = h.clamp(-self.c.clip_act, self.c.clip_act)
            if i in self.c.down_layers:
                h = level.downsample(h)
        h = self.mid(h).clamp(-self.c.clip_act, self.c.clip_act)
        return self.conv_out(mp_silu(h), gain=self.learnable_gain + 1)


class AudioDecoder(nn.Module):
    """Latents [B,embed,T'] -> mel [B,80,2T']."""

    def __init__(self, c: AudioVAEConfig):
        super().__init__()
        self.c = c
        self.up_layers = [i + 1 for i in c.down_layers]
        block_in = c.hidden_dim * c.ch_mult[-1]
        self.conv_in = MPConv1d(c.embed_dim, block_in, 3)
        self.mid = _Mid(block_in)
        levels: list[_Level] = []
        for i in reversed(range(len(c.ch_mult))):
            level = _Level()
            block_out = c.hidden_dim * c.ch_mult[i]
            for _ in range(c.num_res_blocks + 1):
                level.block.append(MPResBlock(block_in, block_out))
                block_in = block_out
                if i in c.attn_layers:
                    level.attn.append(MPAttnBlock(block_in))
            if i in self.up_layers:
                level.upsample = Upsample(block_in)
            levels.insert(0, level)
        self.up = nn.ModuleList(levels)
        self.conv_out = MPConv1d(block_in, c.data_dim, 3)
        self.learnable_gain = nn.Parameter(torch.zeros([]))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.conv_in(z)).clamp(-self.c.clip_act, self.c.clip_act)
        for i in reversed(range(len(self.up))):
            level = self.up[i]
            for j, blk in enumerate(level.block):
                h = blk(h)
                if len(level.attn):
                    h = level.attn[j](h)
                h = h.clamp(-self.c.clip_act, self.c.clip_act)
            if i in self.up_layers:
                h = level.upsample(h)
        return self.conv_out(mp_silu(h), gain=self.learnable_gain + 1)


class AudioVAE(nn.Module):
    """MMAudio-layout 1D VAE on normalised log-mels (state-dict keys match ``v1-16.pth``)."""

    def __init__(self, c: AudioVAEConfig = AudioVAEConfig()):
        super().__init__()
        self.c = c
        # per-mel-bin statistics; the real values come with the checkpoint
        self.register_buffer("data_mean", torch.zeros(1, c.data_dim, 1))
        self.register_buffer("data_std", torch.ones(1, c.data_dim, 1))
        self.encoder = AudioEncoder(c)
        self.decoder = AudioDecoder(c)

    def encode_mean(self, mel: torch.Tensor) -> torch.Tensor:
        """Mel [B,80,T] -> posterior mean [B,embed,T//2]."""
        moments = self.encoder((mel - self.data_mean) / self.data_std)
        return moments[:, : self.c.embed_dim]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents [B,embed,T'] -> mel [B,80,2T']."""
        return self.decoder(z) * self.data_std + self.data_mean


def kaiser_sinc_filter(cutoff: float, half_width: float, kernel: int) -> torch.Tensor:
    """Kaiser-windowed sinc low-pass [1,1,kernel] (alias-free activation filters)."""
    half = kernel // 2
    a = 2.285 * (half - 1) * math.pi * 4 * half_width + 7.95
    beta = 0.1102 * (a - 8.7) if a > 50 else (0.5842 * (a - 21) ** 0.4 + 0.07886 * (a - 21) if a >= 21 else 0.0)
    window = torch.kaiser_window(kernel, beta=beta, periodic=False)
    time = torch.arange(-half, half) + 0.5 if kernel % 2 == 0 else torch.arange(kernel) - half
    filt = 2 * cutoff * window * torch.sinc(2 * cutoff * time)
    return (filt / filt.sum()).view(1, 1, kernel)


class _UpSample(nn.Module):
    def __init__(self, ratio: int = 2, kernel: int = 12):
        super().__init__()
        self.ratio, self.kernel = ratio, kernel
        self.pad = kernel // ratio - 1
        self.pad_left = self.pad * ratio + (kernel - ratio) // 2
        self.pad_right = self.pad * ratio + (kernel - ratio + 1) // 2
        self.register_buffer("filter", kaiser_sinc_filter(0.5 / ratio, 0.6 / ratio, kernel))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        x = F.pad(x, (self.pad, self.pad), mode="replicate")
        x = self.ratio * F.conv_transpose1d(x, self.filter.expand(c, -1, -1), stride=self.ratio, groups=c)
        return x[..., self.pad_left: -self.pad_right]


class _LowPass(nn.Module):
    def __init__(self, ratio: int = 2, kernel: int = 12):
        super().__init__()
        self.stride = ratio
        self.pad_left = kernel // 2 - int(kernel % 2 == 0)
        self.pad_right = kernel // 2
        self.register_buffer("filter", kaiser_sinc_filter(0.5 / ratio, 0.6 / ratio, kernel))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        x = F.pad(x, (self.pad_left, self.pad_right), mode="replicate")
        return F.conv1d(x, self.filter.expand(c, -1, -1), stride=self.stride, groups=c)


class _DownSample(nn.Module):
    def __init__(self, ratio: int = 2, kernel: int = 12):
        super().__init__()
        self.lowpass = _LowPass(ratio, kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lowpass(x)


class SnakeBeta(nn.Module):
    """x + 1/β sin²(αx) with log-scale α, β per channel."""

    def __init__(self, channels: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.alpha.exp()[None, :, None]
        b = self.beta.exp()[None, :, None]
        return x + (1.0 / (b + 1e-9)) * torch.sin(x * a).pow(2)


class AliasFreeSnake(nn.Module):
    """Upsample x2 -> SnakeBeta -> low-pass downsample x2."""

    def __init__(self, channels: int):
        super().__init__()
        self.act = SnakeBeta(channels)
        self.upsample = _UpSample()
        self.downsample = _DownSample()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(self.act(self.upsample(x)))


def _wn_conv(c_in: int, c_out: int, k: int, dilation: int = 1) -> nn.Module:
    return weight_norm(nn.Conv1d(c_in, c_out, k, 1, dilation=dilation, padding=(k * dilation - dilation) // 2))


class AMPBlock(nn.Module):
    """BigVGAN AMP block: per dilation, act -> dilated conv -> act -> conv, residual."""

    def __init__(self, channels: int, kernel: int, dilations: Sequence[int]):
        super().__init__()
        self.convs1 = nn.ModuleList(_wn_conv(channels, channels, kernel, d) for d in dilations)
        self.convs2 = nn.ModuleList(_wn_conv(channels, channels, kernel, 1) for _ in dilations)
        self.activations = nn.ModuleList(AliasFreeSnake(channels) for _ in range(2 * len(dilations)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        acts = list(self.activations)
        for c1, c2, a1, a2 in zip(self.convs1, self.convs2, acts[::2], acts[1::2]):
            x = x + c2(a2(c1(a1(x))))
        return x


@dataclass(frozen=True)
class VocoderConfig:
    """BigVGAN generator used by MMAudio 16k: 80 mels -> 16 kHz, x256 upsampling, SnakeBeta AMP blocks."""

    num_mels: int = 80
    upsample_rates: tuple[int, ...] = (4, 4, 2, 2, 2, 2)
    upsample_kernel_sizes: tuple[int, ...] = (8, 8, 4, 4, 4, 4)
    upsample_initial_channel: int = 1536
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))


class Vocoder(nn.Module):
    """BigVGAN-style generator: mel [B,80,T] -> wave [B,1,256T] in [-1,1] (keys match ``best_netG.pt``)."""

    def __init__(self, c: VocoderConfig = VocoderConfig()):
        super().__init__()
        self.c = c
        ch0 = c.upsample_initial_channel
        self.conv_pre = weight_norm(nn.Conv1d(c.num_mels, ch0, 7, 1, padding=3))
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        ch = ch0
        for i, (u, k) in enumerate(zip(c.upsample_rates, c.upsample_kernel_sizes)):
            ch = ch0 // 2 ** (i + 1)
            self.ups.append(nn.ModuleList([weight_norm(nn.ConvTranspose1d(ch * 2, ch, k, u, padding=(k - u) // 2))]))
            for kr, d in zip(c.resblock_kernel_sizes, c.resblock_dilation_sizes):
                self.resblocks.append(AMPBlock(ch, kr, d))
        self.activation_post = AliasFreeSnake(ch)
        self.conv_post = weight_norm(nn.Conv1d(ch, 1, 7, 1, padding=3))

    @property
    def hop(self) -> int:
        return int(np.prod(self.c.upsample_rates))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.conv_pre(mel)
        nk = len(self.c.resblock_kernel_sizes)
        for i, up in enumerate(self.ups):
            x = up[0](x)
            x = sum(self.resblocks[i * nk + j](x) for j in range(nk)) / nk
        return torch.tanh(self.conv_post(self.activation_post(x)))

    def remove_weight_norm(self) -> Vocoder:
        """Fold weight-norm parametrisations into plain weights (after loading) for faster inference."""
        for m in self.modules():
            if hasattr(m, "parametrizations") and "weight" in m.parametrizations:
                remove_parametrizations(m, "weight")
        return self


class AudioCodec(nn.Module):
    """Wave 16 kHz <-> audio latents [B,T,C] through mel + VAE (posterior mean) and the vocoder."""

    def __init__(self, vae: AudioVAE, vocoder: Vocoder | None, mel: MelSpectrogram | None = None):
        super().__init__()
        self.mel = mel or MelSpectrogram()
        self.vae = vae
        self.vocoder = vocoder
        self.z_dim = vae.c.embed_dim
        self.sample_rate = self.mel.cfg.sample_rate

    @property
    def samples_per_latent(self) -> int:
        return self.mel.cfg.hop * 2 ** len(self.vae.c.down_layers)

    def latent_len(self, n_samples: int) -> int:
        """Audio latents produced for a wave of ``n_samples`` samples."""
        return (n_samples // self.mel.cfg.hop) // 2 ** len(self.vae.c.down_layers)

    @torch.no_grad()
    def encode(self, wave: torch.Tensor) -> torch.Tensor:
        """[B,N] float in [-1,1] at 16 kHz -> [B,N//512,C] latents."""
        if wave.dim() == 1:
            wave = wave[None]
        if wave.shape[-1] < self.mel.cfg.n_fft:
            raise ValueError(f"audio of {wave.shape[-1]} samples is shorter than one STFT window")
        mel = self.mel(wave.float())
        return self.vae.encode_mean(mel).transpose(1, 2).contiguous()

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """[B,T,C] latents -> [B,N] wave (N = 512 T) through the vocoder."""
        if self.vocoder is None:
            raise RuntimeError("no vocoder loaded: cannot turn mels into a waveform")
        mel = self.vae.decode(latents.transpose(1, 2).float())
        return self.vocoder(mel).squeeze(1)


def load_audio_codec(vae_path: str | Path | None, vocoder_path: str | Path | None, need_vocoder: bool = True,
                     vae_config: AudioVAEConfig = AudioVAEConfig(),
                     vocoder_config: VocoderConfig = VocoderConfig()) -> AudioCodec:
    """MMAudio 16 kHz VAE (``v1-16.pth``) + BigVGAN (``best_netG.pt``, key ``generator``) from local files."""
    vae_file = resolve_file(AUDIO_VAE_SPEC, vae_path)
    vae = AudioVAE(vae_config)
    sd = torch.load(vae_file, map_location="cpu", weights_only=True)
    vae.load_state_dict(sd, strict=True)
    vocoder = None
    if need_vocoder:
        voc_file = resolve_file(VOCODER_SPEC, vocoder_path)
        vocoder = Vocoder(vocoder_config)
        ck = torch.load(voc_file, map_location="cpu", weights_only=True)
        vocoder.load_state_dict(ck.get("generator", ck), strict=True)
        vocoder.remove_weight_norm()
    return AudioCodec(vae.eval(), vocoder.eval() if vocoder else None)


def tiny_audio_vae_config(z_dim: int = 4) -> AudioVAEConfig:
    """Small AudioVAE config with MMAudio's layout rules (one 2x downsample, mid attention)."""
    return AudioVAEConfig(embed_dim=z_dim, hidden_dim=16, ch_mult=(1, 2), num_res_blocks=1, attn_layers=(),
                          down_layers=(0,))


def tiny_vocoder_config() -> VocoderConfig:
    """Small BigVGAN config with the real x256 upsampling."""
    return VocoderConfig(upsample_initial_channel=128, resblock_kernel_sizes=(3,), resblock_dilation_sizes=((1, 3),))


def tiny_audio_codec(z_dim: int = 4, seed: int = 0) -> AudioCodec:
    """Random small AudioVAE + vocoder with the real mel front end and strides (512 samples per latent)."""
    torch.manual_seed(seed)
    vae = AudioVAE(tiny_audio_vae_config(z_dim))
    voc = Vocoder(tiny_vocoder_config())
    return AudioCodec(vae.eval(), voc.remove_weight_norm().eval())


# --------------------------------------------------------------------------------------------------
# Text: umT5 encoder


def clean_text(text: str) -> str:
    """Wan's 'whitespace' cleaning: unescape HTML entities, collapse runs of whitespace."""
    return " ".join(html.unescape(html.unescape(text)).split())


class ByteTokenizer:
    """TEST-ONLY byte-level tokenizer (ids = bytes + 3, pad 0, eos 1) for tiny random text encoders."""

    pad_id, eos_id, vocab_size = 0, 1, 259

    def __call__(self, texts: Sequence[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
        ids = torch.zeros(len(texts), max_length, dtype=torch.long)
        mask = torch.zeros(len(texts), max_length, dtype=torch.long)
        for i, t in enumerate(texts):
            toks = [b + 3 for b in t.encode("utf-8")][: max_length - 1] + [self.eos_id]
            ids[i, : len(toks)] = torch.tensor(toks)
            mask[i, : len(toks)] = 1
        return ids, mask


class HFTokenizer:
    """A local transformers tokenizer (google/umt5-xxl) padded/truncated to ``max_length`` with EOS."""

    def __init__(self, tok: Any):
        self.tok = tok

    def __call__(self, texts: Sequence[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.tok(list(texts), padding="max_length", truncation=True, max_length=max_length,
                       add_special_tokens=True, return_attention_mask=True, return_tensors="pt")
        return out["input_ids"], out["attention_mask"]


class TextCodec(nn.Module):
    """Captions -> [B,text_len,dim]: encoder output trimmed to the real length, then zero-padded (as Ovi)."""

    def __init__(self, encoder: nn.Module, tokenizer: Any, text_len: int):
        super().__init__()
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.text_len = text_len
        self.dim = int(encoder.config.d_model)

    @torch.no_grad()
    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        ids, mask = self.tokenizer([clean_text(t) for t in texts], self.text_len)
        dev = next(self.encoder.parameters()).device
        hidden = self.encoder(input_ids=ids.to(dev), attention_mask=mask.to(dev)).last_hidden_state.float()
        return hidden * mask.to(dev)[..., None].float()  # padded positions -> exactly 0


def umt5_xxl_config() -> Any:
    """transformers UMT5Config of the umT5-XXL encoder used by Wan/Ovi (d 4096, 24 layers, 64 heads)."""
    from transformers import UMT5Config

    return UMT5Config(vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
                      relative_attention_num_buckets=32, relative_attention_max_distance=128,
                      feed_forward_proj="gated-gelu", dropout_rate=0.0, layer_norm_epsilon=1e-6)


_WAN_T5_BLOCK_MAP = {
    "norm1.weight": "layer.0.layer_norm.weight",
    "attn.q.weight": "layer.0.SelfAttention.q.weight",
    "attn.k.weight": "layer.0.SelfAttention.k.weight",
    "attn.v.weight": "layer.0.SelfAttention.v.weight",
    "attn.o.weight": "layer.0.SelfAttention.o.weight",
    "pos_embedding.embedding.weight": "layer.0.SelfAttention.relative_attention_bias.weight",
    "norm2.weight": "layer.1.layer_norm.weight",
    "ffn.gate.0.weight": "layer.1.DenseReluDense.wi_0.weight",
    "ffn.fc1.weight": "layer.1.DenseReluDense.wi_1.weight",
    "ffn.fc2.weight": "layer.1.DenseReluDense.wo.weight",
}


def wan_t5_to_hf(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename Wan's umT5 encoder keys (``models_t5_umt5-xxl-enc-bf16.pth``) to transformers' UMT5EncoderModel."""
    out: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        if k == "token_embedding.weight":
            out["shared.weight"] = v
            out["encoder.embed_tokens.weight"] = v
        elif k == "norm.weight":
            out["encoder.final_layer_norm.weight"] = v
        elif k.startswith("blocks."):
            _, i, rest = k.split(".", 2)
            if rest not in _WAN_T5_BLOCK_MAP:
                raise KeyError(f"unexpected umT5 key {k}")
            out[f"encoder.block.{i}.{_WAN_T5_BLOCK_MAP[rest]}"] = v
        else:
            raise KeyError(f"unexpected umT5 key {k}")
    return out


def hf_t5_to_wan(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of ``wan_t5_to_hf`` (used to write Wan-layout test files)."""
    inv = {v: k for k, v in _WAN_T5_BLOCK_MAP.items()}
    out: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        if k == "shared.weight":
            out["token_embedding.weight"] = v
        elif k == "encoder.final_layer_norm.weight":
            out["norm.weight"] = v
        elif k.startswith("encoder.block."):
            _, _, i, rest = k.split(".", 3)
            out[f"blocks.{i}.{inv[rest]}"] = v
    return out


def load_text_codec(encoder_path: str | Path | None, tokenizer_path: str | Path | None, text_len: int,
                    dtype: torch.dtype = torch.bfloat16, config: Any = None) -> TextCodec:
    """umT5 encoder from a transformers folder or Wan's ``.pth``, and the umT5 tokenizer folder (local only)."""
    from transformers import AutoTokenizer, UMT5EncoderModel

    p = Path(encoder_path).expanduser() if encoder_path else None
    if p is not None and p.is_dir() and (p / "config.json").exists():
        enc = UMT5EncoderModel.from_pretrained(str(p), local_files_only=True, torch_dtype=dtype)
    else:
        pth = resolve_file(TEXT_ENCODER_SPEC, p)
        try:
            raw = torch.load(pth, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # legacy (non-zip) files cannot be memory-mapped
            raw = torch.load(pth, map_location="cpu", weights_only=True)
        sd = wan_t5_to_hf(raw)
        with torch.device("meta"):  # no fp32 copy of the 5.7B encoder: the file's tensors are assigned
            enc = UMT5EncoderModel(config or umt5_xxl_config())
        missing = sorted(set(enc.state_dict()) - set(sd))
        if missing:
            raise KeyError(f"{pth}: umT5 keys not found in the file: {missing[:5]}")
        enc.load_state_dict(sd, strict=False, assign=True)
        enc.tie_weights()
        enc = enc.to(dtype)
    tok_dir = Path(tokenizer_path).expanduser() if tokenizer_path else None
    if tok_dir is None or not tok_dir.is_dir():
        tok_dir = TOKENIZER_SPEC.resolve(tokenizer_path).parent
    tok = AutoTokenizer.from_pretrained(str(tok_dir), local_files_only=True)
    return TextCodec(enc.eval(), HFTokenizer(tok), text_len)


def tiny_umt5_config(dim: int) -> Any:
    """A few-layer UMT5 config of width ``dim`` with the byte tokenizer's vocabulary."""
    from transformers import UMT5Config

    return UMT5Config(vocab_size=ByteTokenizer.vocab_size, d_model=dim, d_kv=max(dim // 2, 8), d_ff=2 * dim,
                      num_layers=2, num_heads=2, relative_attention_num_buckets=8,
                      relative_attention_max_distance=16, feed_forward_proj="gated-gelu", dropout_rate=0.0)


def tiny_text_codec(dim: int = 32, text_len: int = 16, seed: int = 0) -> TextCodec:
    """Random tiny UMT5EncoderModel + the TEST-ONLY byte tokenizer."""
    from transformers import UMT5EncoderModel

    torch.manual_seed(seed)
    return TextCodec(UMT5EncoderModel(tiny_umt5_config(dim)).eval(), ByteTokenizer(), text_len)


# --------------------------------------------------------------------------------------------------
# The bundle


@dataclass
class CodecPaths:
    """Local paths of the real codec files (folders or files; None = use the search paths)."""

    video_vae: str | None = None  # diffusers folder of the Wan2.2 VAE
    audio_vae: str | None = None  # v1-16.pth
    vocoder: str | None = None  # best_netG.pt
    text_encoder: str | None = None  # models_t5_umt5-xxl-enc-bf16.pth or a UMT5EncoderModel folder
    tokenizer: str | None = None  # google/umt5-xxl tokenizer folder


@dataclass
class Codecs:
    """Video, audio and text codecs used together by training-data prep and the ``iap`` generator."""

    video: VideoCodec
    audio: AudioCodec
    text: TextCodec
    kind: Literal["real", "tiny"] = "real"
    info: dict[str, Any] = field(default_factory=dict)

    def to(self, device: torch.device | str) -> Codecs:
        self.video.to(device)
        self.audio.to(device)
        self.text.to(device)
        return self


def build_codecs(kind: Literal["real", "tiny"], video_in_dim: int, audio_in_dim: int, text_dim: int,
                 text_len: int, paths: CodecPaths | None = None, dtype: torch.dtype = torch.float32,
                 seed: int = 0) -> Codecs:
    """Build all codecs; ``tiny`` ignores paths and matches the given latent widths (noise output)."""
    if kind == "tiny":
        return Codecs(tiny_video_codec(video_in_dim, seed), tiny_audio_codec(audio_in_dim, seed),
                      tiny_text_codec(text_dim, text_len, seed), kind="tiny",
                      info={"codecs": "tiny-random (output is noise)"})
    if kind != "real":
        raise ValueError(f"codecs kind {kind!r}: use 'real' or 'tiny'")
    p = paths or CodecPaths()
    errors: list[MissingCheckpointError] = []
    parts: dict[str, Any] = {}
    for name, fn in (("video", lambda: load_video_vae(p.video_vae, dtype)),
                     ("audio", lambda: load_audio_codec(p.audio_vae, p.vocoder)),
                     ("text", lambda: load_text_codec(p.text_encoder, p.tokenizer, text_len, dtype))):
        try:
            parts[name] = fn()
        except MissingCheckpointError as e:
            errors.append(e)
    if errors:
        raise errors[0] if len(errors) == 1 else MissingCheckpointError(
            "iap codecs", ", ".join(e.filename for e in errors), [s for e in errors for s in e.searched],
            " | ".join(str(e).split("how to get it: ", 1)[-1] for e in errors))
    if parts["video"].z_dim != video_in_dim or parts["audio"].z_dim != audio_in_dim or parts["text"].dim != text_dim:
        raise ValueError(f"codec widths (video {parts['video'].z_dim}, audio {parts['audio'].z_dim}, text "
                         f"{parts['text'].dim}) do not match the model ({video_in_dim}, {audio_in_dim}, {text_dim})")
    return Codecs(parts["video"], parts["audio"], parts["text"], kind="real", info={"paths": vars(p)})
