"""WavLM-Large front end + ECAPA-TDNN head: the speaker model behind Seed-TTS-eval's SIM (UniSpeech SV).

Written for IAP-Bench from the published definitions: WavLM (Chen et al., arXiv 2110.13900; the s3prl
``wavlm_large`` upstream), ECAPA-TDNN (Desplanques et al., arXiv 2005.07143) as configured by UniSpeech's
``downstreams/speaker_verification`` ``ECAPA_TDNN_SMALL(feat_dim=1024, feat_type='wavlm_large')``. Module and
parameter names follow that code, so ``wavlm_large_finetune.pth``'s ``state_dict['model']`` loads key for key.
UniSpeech loads it with ``strict=False``; here every key is checked (``load_verifier``): a missing key, an
unexpected key or a wrong shape is refused with an error naming the keys, so a key-prefix mismatch can never
leave the head random. The fine-tuned checkpoint carries every front-end weight (``feature_extract.model.*``),
so s3prl's ``WavLM-Large.pt`` is not needed: the WavLM-Large configuration is fixed in code (``WavLMConfig``).

What one forward pass does (one clip [N] at 16 kHz, or a batch of clips of the SAME length):

1. the waveform is layer-normalised over its samples (WavLM-Large ``normalize=True``);
2. CNN feature extractor: 7 bias-free convs (512 ch; kernels 10,3,3,3,3,2,2; strides 5,2,2,2,2,2,2), each with
   a LayerNorm over channels and GELU (20 ms frames); LayerNorm(512); Linear 512->1024;
3. convolutional position embedding (kernel 128, 16 groups, weight norm over the kernel axis, last frame
   dropped, GELU) added; 24 pre-LayerNorm transformer layers (16 heads, FFN 4096, GELU) with WavLM's gated
   relative position bias (320 buckets, max distance 800, computed in layer 0 and gated per layer);
4. hidden states = the input of every layer plus the final LayerNorm output (25), as s3prl's hooks return
   them; softmax(``feature_weight``)-weighted sum, + 1e-6, InstanceNorm1d over time;
5. ECAPA-TDNN (512 ch): Conv(k5)-ReLU-BN, three SE-Res2 blocks (k3, dilation 2/3/4, scale 8, SE 128), the
   three block outputs concatenated, Conv 1536 + ReLU, attentive statistics pooling, BN, Linear -> 256.

Batching: the official code embeds one clip at a time. Its head has no padding mask (convs, InstanceNorm and
pooling run over every frame), so a zero-padded clip would give another embedding; clips are therefore only
batched with clips of exactly the same length (``length_batches``), which changes nothing but float rounding.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from iap_bench.errors import IAPBenchError

SR = 16000
EMB_DIM = 256
# Keys of the released checkpoint that inference never reads: the AAM-softmax training head over the
# VoxCeleb2 speakers (``loss_calculator.projection.weight`` [5994, 256]). Everything else must match.
TRAINING_ONLY_PREFIXES = ("loss_calculator.",)
_LAYER_KEY = re.compile(r"^feature_extract\.model\.encoder\.layers\.(\d+)\.")
MIN_SAMPLES = 400  # the CNN's receptive field: shorter input gives no frame at all


@dataclass(frozen=True)
class WavLMConfig:
    """WavLM-Large (the s3prl ``wavlm_large`` upstream's checkpoint config); ``n_layers`` is read from the
    checkpoint (24 in the release; test checkpoints may have fewer, the official code accepts them too)."""

    n_layers: int = 24
    dim: int = 1024
    heads: int = 16
    ffn: int = 4096
    conv_layers: tuple[tuple[int, int, int], ...] = ((512, 10, 5),) + ((512, 3, 2),) * 4 + ((512, 2, 2),) * 2
    conv_pos: int = 128
    conv_pos_groups: int = 16
    num_buckets: int = 320
    max_distance: int = 800


# ---------------------------------------------------------------------------------------------------------
# WavLM front end
# ---------------------------------------------------------------------------------------------------------
class _SwapLast(nn.Module):
    """[..., C, T] <-> [..., T, C] (LayerNorm over channels inside the CNN)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(-2, -1)


class _DropLastFrame(nn.Module):
    """The even-kernel position conv gives one frame too many: drop the last one."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, :-1]


def _cnn_block(n_in: int, n_out: int, kernel: int, stride: int) -> nn.Sequential:
    """Conv (no bias) -> [dropout slot] -> LayerNorm over channels -> GELU (indices as in the checkpoint)."""
    return nn.Sequential(nn.Conv1d(n_in, n_out, kernel, stride=stride, bias=False), nn.Identity(),
                         nn.Sequential(_SwapLast(), nn.LayerNorm(n_out), _SwapLast()), nn.GELU())


class ConvFeatureExtractor(nn.Module):
    """Waveform [B, N] -> frames [B, 512, T] (stride 320 samples)."""

    def __init__(self, layers: Sequence[tuple[int, int, int]]) -> None:
        super().__init__()
        blocks, n_in = [], 1
        for n_out, kernel, stride in layers:
            blocks.append(_cnn_block(n_in, n_out, kernel, stride))
            n_in = n_out
        self.conv_layers = nn.ModuleList(blocks)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        x = wav.unsqueeze(1)
        for block in self.conv_layers:
            x = block(x)
        return x


class WeightNormConv1d(nn.Module):
    """Grouped Conv1d whose weight is ``weight_v`` rescaled to norm ``weight_g`` per kernel tap (dim 2)."""

    def __init__(self, dim: int, kernel: int, groups: int) -> None:
        super().__init__()
        self.groups, self.padding = groups, kernel // 2
        self.weight_g = nn.Parameter(torch.ones(1, 1, kernel))
        self.weight_v = nn.Parameter(torch.empty(dim, dim // groups, kernel).normal_(0, 0.02))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = torch._weight_norm(self.weight_v, self.weight_g, 2)  # what nn.utils.weight_norm computes
        return F.conv1d(x, weight, self.bias, padding=self.padding, groups=self.groups)


def relative_position_buckets(q_len: int, k_len: int, num_buckets: int, max_distance: int) -> torch.Tensor:
    """Pure: [q_len, k_len] bucket of each offset (key - query): exact below num_buckets/4, log-spaced above,
    separate halves for positive and non-positive offsets (T5-style, bidirectional)."""
    offset = torch.arange(k_len, dtype=torch.long)[None, :] - torch.arange(q_len, dtype=torch.long)[:, None]
    half = num_buckets // 2
    buckets = (offset > 0).to(torch.long) * half
    dist = offset.abs()
    exact = half // 2
    far = exact + (torch.log(dist.float() / exact) / math.log(max_distance / exact) * (half - exact)).to(torch.long)
    far = torch.minimum(far, torch.full_like(far, half - 1))
    return buckets + torch.where(dist < exact, dist, far)


class GatedRelPosAttention(nn.Module):
    """Multi-head self-attention with WavLM's gated relative position bias (``self_attn`` in the checkpoint)."""

    def __init__(self, cfg: WavLMConfig, has_bias_table: bool) -> None:
        super().__init__()
        d = cfg.dim
        self.heads, self.head_dim = cfg.heads, d // cfg.heads
        self.num_buckets, self.max_distance = cfg.num_buckets, cfg.max_distance
        self.k_proj, self.v_proj, self.q_proj, self.out_proj = (nn.Linear(d, d) for _ in range(4))
        self.grep_linear = nn.Linear(self.head_dim, 8)
        self.grep_a = nn.Parameter(torch.ones(1, cfg.heads, 1, 1))
        if has_bias_table:
            self.relative_attention_bias = nn.Embedding(cfg.num_buckets, cfg.heads)

    def position_bias(self, length: int, batch: int) -> torch.Tensor:
        """[batch * heads, T, T] bias from the bucket table (layer 0 only; later layers reuse it)."""
        buckets = relative_position_buckets(length, length, self.num_buckets, self.max_distance)
        values = self.relative_attention_bias(buckets.to(self.relative_attention_bias.weight.device))
        values = values.permute(2, 0, 1)  # [H, T, T]
        return values.unsqueeze(0).repeat(batch, 1, 1, 1).view(batch * self.heads, length, length)

    def gate(self, query: torch.Tensor) -> torch.Tensor:
        """Per-head, per-frame gate [batch * heads, T, 1] computed from the (normed) query [T, B, C]."""
        t, b, _ = query.shape
        q = query.transpose(0, 1).reshape(b, t, self.heads, self.head_dim).permute(0, 2, 1, 3)  # [B,H,T,hd]
        g = torch.sigmoid(self.grep_linear(q).view(b, self.heads, t, 2, 4).sum(-1))
        gate_a, gate_b = g.chunk(2, dim=-1)
        return (gate_a * (gate_b * self.grep_a - 1.0) + 2.0).view(b * self.heads, -1, 1)

    def forward(self, x: torch.Tensor, pos_bias: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """[T, B, C] -> attention output and the (ungated) position bias for the next layers. No key padding
        mask: batches hold equal lengths only (the official call passes an all-False one, i.e. adds zeros)."""
        t, b, _ = x.shape
        if pos_bias is None:
            pos_bias = self.position_bias(t, b)
        attn_bias = (self.gate(x) * pos_bias).view(-1, t, t)
        out, _ = F.multi_head_attention_forward(
            x, x, x, x.shape[-1], self.heads, torch.empty([0]),
            torch.cat((self.q_proj.bias, self.k_proj.bias, self.v_proj.bias)), None, None, False, 0.0,
            self.out_proj.weight, self.out_proj.bias, training=False, key_padding_mask=None,
            need_weights=False, attn_mask=attn_bias, use_separate_proj_weight=True,
            q_proj_weight=self.q_proj.weight, k_proj_weight=self.k_proj.weight, v_proj_weight=self.v_proj.weight)
        return out, pos_bias


class EncoderLayer(nn.Module):
    """Pre-LayerNorm transformer layer: x + attn(LN(x)); then x + FFN(LN(x)) with GELU computed in float32."""

    def __init__(self, cfg: WavLMConfig, has_bias_table: bool) -> None:
        super().__init__()
        self.self_attn = GatedRelPosAttention(cfg, has_bias_table)
        self.self_attn_layer_norm = nn.LayerNorm(cfg.dim)
        self.fc1 = nn.Linear(cfg.dim, cfg.ffn)
        self.fc2 = nn.Linear(cfg.ffn, cfg.dim)
        self.final_layer_norm = nn.LayerNorm(cfg.dim)

    def forward(self, x: torch.Tensor, pos_bias: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        h, pos_bias = self.self_attn(self.self_attn_layer_norm(x), pos_bias)
        x = x + h
        h = self.fc1(self.final_layer_norm(x))
        x = x + self.fc2(F.gelu(h.float()).type_as(h))
        return x, pos_bias


class TransformerEncoder(nn.Module):
    """Position conv + layers + final LayerNorm; returns every layer's input and the final output."""

    def __init__(self, cfg: WavLMConfig) -> None:
        super().__init__()
        self.pos_conv = nn.Sequential(WeightNormConv1d(cfg.dim, cfg.conv_pos, cfg.conv_pos_groups),
                                      _DropLastFrame(), nn.GELU())
        self.layers = nn.ModuleList(EncoderLayer(cfg, i == 0) for i in range(cfg.n_layers))
        self.layer_norm = nn.LayerNorm(cfg.dim)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = x + self.pos_conv(x.transpose(1, 2)).transpose(1, 2)
        x = x.transpose(0, 1)  # [T, B, C]
        hidden, pos_bias = [], None
        for layer in self.layers:
            hidden.append(x.transpose(0, 1))
            x, pos_bias = layer(x, pos_bias)
        hidden.append(self.layer_norm(x.transpose(0, 1)))
        return hidden


class WavLM(nn.Module):
    """WavLM encoder: normalised waveform [B, N] -> n_layers + 1 hidden states [B, T, dim]."""

    def __init__(self, cfg: WavLMConfig) -> None:
        super().__init__()
        self.feature_extractor = ConvFeatureExtractor(cfg.conv_layers)
        conv_dim = cfg.conv_layers[-1][0]
        self.layer_norm = nn.LayerNorm(conv_dim)
        self.post_extract_proj = nn.Linear(conv_dim, cfg.dim)
        self.mask_emb = nn.Parameter(torch.zeros(cfg.dim))  # pre-training mask vector: stored, never used here
        self.encoder = TransformerEncoder(cfg)

    def forward(self, wav: torch.Tensor) -> list[torch.Tensor]:
        x = self.layer_norm(self.feature_extractor(wav).transpose(1, 2))
        return self.encoder(self.post_extract_proj(x))


class Upstream(nn.Module):
    """Holder named like s3prl's upstream expert (``feature_extract.model.*`` keys)."""

    def __init__(self, cfg: WavLMConfig) -> None:
        super().__init__()
        self.model = WavLM(cfg)


# ---------------------------------------------------------------------------------------------------------
# ECAPA-TDNN head
# ---------------------------------------------------------------------------------------------------------
class ConvReluBn(nn.Module):
    """Conv1d -> ReLU -> BatchNorm1d."""

    def __init__(self, n_in: int, n_out: int, kernel: int = 1, padding: int = 0, dilation: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv1d(n_in, n_out, kernel, padding=padding, dilation=dilation)
        self.bn = nn.BatchNorm1d(n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(F.relu(self.conv(x)))


class Res2ConvReluBn(nn.Module):
    """Res2Net split into ``scale`` groups: group i (i < scale-1) is conv->ReLU->BN of (group i + previous
    output); the last group passes through unchanged."""

    def __init__(self, channels: int, kernel: int, padding: int, dilation: int, scale: int) -> None:
        super().__init__()
        self.width = channels // scale
        n = scale - 1
        self.convs = nn.ModuleList(nn.Conv1d(self.width, self.width, kernel, padding=padding, dilation=dilation)
                                   for _ in range(n))
        self.bns = nn.ModuleList(nn.BatchNorm1d(self.width) for _ in range(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = torch.split(x, self.width, 1)
        out, sp = [], None
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns)):
            sp = parts[i] if sp is None else sp + parts[i]
            sp = bn(F.relu(conv(sp)))
            out.append(sp)
        out.append(parts[len(self.convs)])
        return torch.cat(out, dim=1)


class SqueezeExcite(nn.Module):
    """Channel gate from the time-averaged input: x * sigmoid(W2 relu(W1 mean_t x))."""

    def __init__(self, channels: int, bottleneck: int) -> None:
        super().__init__()
        self.linear1 = nn.Linear(channels, bottleneck)
        self.linear2 = nn.Linear(bottleneck, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = torch.sigmoid(self.linear2(F.relu(self.linear1(x.mean(dim=2)))))
        return x * g.unsqueeze(2)


class SERes2Block(nn.Module):
    """1x1 ConvReluBn -> Res2 dilated conv -> 1x1 ConvReluBn -> SE, plus the identity shortcut."""

    def __init__(self, channels: int, dilation: int, scale: int = 8, se_dim: int = 128) -> None:
        super().__init__()
        self.Conv1dReluBn1 = ConvReluBn(channels, channels)
        self.Res2Conv1dReluBn = Res2ConvReluBn(channels, 3, dilation, dilation, scale)
        self.Conv1dReluBn2 = ConvReluBn(channels, channels)
        self.SE_Connect = SqueezeExcite(channels, se_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.SE_Connect(self.Conv1dReluBn2(self.Res2Conv1dReluBn(self.Conv1dReluBn1(x))))


class AttentiveStatsPool(nn.Module):
    """Attention-weighted mean and standard deviation over time -> [B, 2C]."""

    def __init__(self, channels: int, attention: int = 128) -> None:
        super().__init__()
        self.linear1 = nn.Conv1d(channels, attention, kernel_size=1)
        self.linear2 = nn.Conv1d(attention, channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = torch.softmax(self.linear2(torch.tanh(self.linear1(x))), dim=2)
        mean = torch.sum(alpha * x, dim=2)
        var = torch.sum(alpha * (x ** 2), dim=2) - mean ** 2
        return torch.cat([mean, torch.sqrt(var.clamp(min=1e-9))], dim=1)


class SpeakerVerifier(nn.Module):
    """WavLM hidden states -> weighted sum -> InstanceNorm -> ECAPA-TDNN -> 256-d speaker embedding."""

    def __init__(self, cfg: WavLMConfig = WavLMConfig(), channels: int = 512, pooled: int = 1536) -> None:
        super().__init__()
        self.cfg = cfg
        self.feature_extract = Upstream(cfg)
        self.feature_weight = nn.Parameter(torch.zeros(cfg.n_layers + 1))
        self.instance_norm = nn.InstanceNorm1d(cfg.dim)
        self.layer1 = ConvReluBn(cfg.dim, channels, kernel=5, padding=2)
        self.layer2 = SERes2Block(channels, dilation=2)
        self.layer3 = SERes2Block(channels, dilation=3)
        self.layer4 = SERes2Block(channels, dilation=4)
        self.conv = nn.Conv1d(channels * 3, pooled, kernel_size=1)
        self.pooling = AttentiveStatsPool(pooled)
        self.bn = nn.BatchNorm1d(pooled * 2)
        self.linear = nn.Linear(pooled * 2, EMB_DIM)

    def features(self, wav: torch.Tensor) -> torch.Tensor:
        """[B, N] waveform -> [B, dim, T] instance-normalised weighted sum of the WavLM hidden states."""
        wav = F.layer_norm(wav, wav.shape[-1:])
        hidden = torch.stack(self.feature_extract.model(wav), dim=0)  # [L+1, B, T, dim]
        weights = F.softmax(self.feature_weight, dim=-1)[:, None, None, None]
        x = (weights * hidden).sum(dim=0).transpose(1, 2) + 1e-6
        return self.instance_norm(x)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        out1 = self.layer1(self.features(wav))
        out2 = self.layer2(out1)
        out3 = self.layer3(out2)
        out4 = self.layer4(out3)
        out = F.relu(self.conv(torch.cat([out2, out3, out4], dim=1)))
        return self.linear(self.bn(self.pooling(out)))


# ---------------------------------------------------------------------------------------------------------
# checkpoint loading (strict)
# ---------------------------------------------------------------------------------------------------------
def layer_count(state: Mapping[str, Any], default: int = 24) -> int:
    """Pure: number of transformer layers in a checkpoint's keys (``default`` if none is found, so that a
    wrong prefix is reported against the standard model)."""
    idx = [int(m.group(1)) for k in state if (m := _LAYER_KEY.match(k))]
    return max(idx) + 1 if idx else default


def inference_state(state: Mapping[str, Any]) -> dict[str, Any]:
    """Pure: the checkpoint's ``model`` dict without the training-only keys (``TRAINING_ONLY_PREFIXES``)."""
    return {k: v for k, v in state.items() if not k.startswith(TRAINING_ONLY_PREFIXES)}


def expected_keys(model: nn.Module, state: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Key -> shape the model needs from ``state``; BatchNorm ``num_batches_tracked`` counters (unused in eval)
    are required only when the checkpoint has them."""
    return {k: tuple(v.shape) for k, v in model.state_dict().items()
            if not (k.endswith("num_batches_tracked") and k not in state)}


def read_model_state(path: str | Path) -> dict[str, Any]:
    """``torch.load(path)['model']`` (tensors only, ``weights_only``); IAPBenchError if the file is not such."""
    try:
        ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - one clear error naming the file
        raise IAPBenchError(f"cannot read {path} as a torch checkpoint ({type(e).__name__}: {e})") from e
    if not isinstance(ckpt, Mapping) or not isinstance(ckpt.get("model"), Mapping):
        keys = list(ckpt)[:5] if isinstance(ckpt, Mapping) else type(ckpt).__name__
        raise IAPBenchError(f"{path}: expected a dict with a 'model' state dict (UniSpeech SV format), got {keys}")
    return dict(ckpt["model"])


def verifier_from_state(state: Mapping[str, Any], name: str = "wavlm_large_finetune.pth") -> SpeakerVerifier:
    """Build the model for a checkpoint's ``model`` dict and load it; every key is checked: a missing or
    unexpected key or a wrong shape raises CheckpointKeyError naming the keys (training-only keys dropped).

    The model is laid out on the meta device (no random initialisation) and takes the checkpoint's tensors,
    as float32 like the official ``load_state_dict`` copy into float32 parameters.
    """
    from iap_bench.metrics._ckpt import check_state_dict

    state = inference_state(state)
    with torch.device("meta"):
        model = SpeakerVerifier(WavLMConfig(n_layers=layer_count(state)))
    check_state_dict(expected_keys(model, state), state, name)
    full = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    for k, v in model.state_dict().items():  # only the optional BN counters can be absent (checked above)
        full.setdefault(k, torch.zeros(v.shape, dtype=v.dtype))
    model.load_state_dict(full, strict=True, assign=True)
    return model.eval().requires_grad_(False)


def load_verifier(path: str | Path, device: str = "cpu") -> SpeakerVerifier:
    """``verifier_from_state`` of the file at ``path``, in eval mode on ``device``."""
    return verifier_from_state(read_model_state(path), Path(path).name).to(device)


# ---------------------------------------------------------------------------------------------------------
# batched embedding
# ---------------------------------------------------------------------------------------------------------
def length_batches(lengths: Sequence[int], max_batch: int = 8, max_samples: int = 8 * 10 * SR
                   ) -> list[list[int]]:
    """Pure: indices grouped by identical length (no padding), each group cut to <= max_batch clips and
    <= max_samples samples in all (at least one clip per batch); longest lengths first."""
    groups: dict[int, list[int]] = {}
    for i, n in enumerate(lengths):
        groups.setdefault(int(n), []).append(i)
    out: list[list[int]] = []
    for n in sorted(groups, reverse=True):
        per = max(1, min(max_batch, max_samples // max(n, 1)))
        idx = groups[n]
        out.extend(idx[j:j + per] for j in range(0, len(idx), per))
    return out


class SpeakerEmbedder:
    """The verifier loaded once on ``device``; ``embed`` returns raw 256-d embeddings of 16 kHz clips."""

    def __init__(self, checkpoint: str | Path, device: str = "cpu") -> None:
        self.device = device
        self.model = load_verifier(checkpoint, device)
        self.n_layers = self.model.cfg.n_layers

    def embed(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        """[n, 256] float32 embeddings of mono 16 kHz float clips (each >= MIN_SAMPLES), equal lengths batched."""
        short = [i for i, c in enumerate(clips) if len(c) < MIN_SAMPLES]
        if short:
            raise ValueError(f"clips {short[:5]} are shorter than {MIN_SAMPLES} samples: nothing to embed")
        out = np.zeros((len(clips), EMB_DIM), np.float32)
        for idx in length_batches([len(c) for c in clips]):
            batch = torch.from_numpy(np.stack([np.asarray(clips[i], np.float32) for i in idx])).to(self.device)
            with torch.inference_mode():
                out[idx] = self.model(batch).float().cpu().numpy()
        return out


def unit(x: np.ndarray) -> np.ndarray:
    """Pure: rows L2-normalised in float64 (cosine = dot product of unit rows, as F.cosine_similarity)."""
    x = np.asarray(x, np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-8)
