"""Checkpoints: Ovi key manifest (ARCHITECTURE §9), strict Ovi weight loading into `IAPFusionModel`
(the map is the identity; only the new IAP keys may be missing), and safetensors save/load."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

import torch
from torch import nn

from iap_bench.errors import MissingCheckpointError
from model.config import OVI_CHECKPOINTS, IAPConfig

OVI_HOW_TO_GET = (
    "download the Ovi DiT file from the Hugging Face repo chetwinlow1/Ovi (e.g. `huggingface-cli download "
    "chetwinlow1/Ovi {file} --local-dir <dir>`) on a machine with internet access, then copy it here"
)


class CheckpointKeyError(KeyError):
    """A state dict does not match the model: lists every missing, unexpected and mis-shaped key."""

    def __init__(self, what: str, missing: list[str], unexpected: list[str], shapes: list[str]):
        self.missing, self.unexpected, self.shapes = missing, unexpected, shapes
        parts = [f"{what}:"]
        for title, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)):
            if items:
                parts.append(f"  {title} ({len(items)}): " + ", ".join(items[:20]) + (" ..." if len(items) > 20 else ""))
        super().__init__("\n".join(parts))

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return self.args[0]


# --------------------------------------------------------------------------- manifests
def _linear(prefix: str, out_f: int, in_f: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.weight": (out_f, in_f), f"{prefix}.bias": (out_f,)}


def _tower_manifest(cfg: IAPConfig, modality: str) -> dict[str, tuple[int, ...]]:
    """Ovi `WanModel` + fusion keys of one tower (without the `{video,audio}_model.` prefix)."""
    d, f = cfg.dim, cfg.ffn_dim
    tc = cfg.video if modality == "video" else cfg.audio
    m: dict[str, tuple[int, ...]] = {}
    if modality == "video":
        m["patch_embedding.weight"] = (d, tc.in_dim, *tc.patch_size)
        m["patch_embedding.bias"] = (d,)
    else:
        k, h = tc.stem_kernel, tc.stem_hidden_dim
        m["patch_embedding.0.weight"] = (d, tc.in_dim, k)
        m["patch_embedding.0.bias"] = (d,)
        m["patch_embedding.2.w1.weight"] = (h, d, k)
        m["patch_embedding.2.w2.weight"] = (d, h, k)
        m["patch_embedding.2.w3.weight"] = (h, d, k)
    m |= _linear("text_embedding.0", d, cfg.text_dim) | _linear("text_embedding.2", d, d)
    m |= _linear("time_embedding.0", d, cfg.freq_dim) | _linear("time_embedding.2", d, d)
    m |= _linear("time_projection.1", 6 * d, d)
    for i in range(cfg.num_layers):
        b = f"blocks.{i}"
        for proj in ("q", "k", "v", "o"):
            m |= _linear(f"{b}.self_attn.{proj}", d, d) | _linear(f"{b}.cross_attn.{proj}", d, d)
        for n in ("self_attn.norm_q", "self_attn.norm_k", "cross_attn.norm_q", "cross_attn.norm_k"):
            m[f"{b}.{n}.weight"] = (d,)
        m[f"{b}.norm3.weight"] = (d,)
        m[f"{b}.norm3.bias"] = (d,)
        if cfg.fusion.enabled:
            m |= _linear(f"{b}.cross_attn.k_fusion", d, d) | _linear(f"{b}.cross_attn.v_fusion", d, d)
            m[f"{b}.cross_attn.pre_attn_norm_fusion.weight"] = (d,)
            m[f"{b}.cross_attn.pre_attn_norm_fusion.bias"] = (d,)
            m[f"{b}.cross_attn.norm_k_fusion.weight"] = (d,)
        m |= _linear(f"{b}.ffn.0", f, d) | _linear(f"{b}.ffn.2", d, f)
        m[f"{b}.modulation.modulation"] = (1, 6, d)
    m |= _linear("head.head", math.prod(tc.patch_size) * tc.out_dim, d)
    m["head.modulation"] = (1, 2, d)
    return m


def ovi_key_manifest(cfg: IAPConfig) -> dict[str, tuple[int, ...]]:
    """Every key of an Ovi FusionModel checkpoint with this config's shapes (Ovi names verbatim)."""
    out: dict[str, tuple[int, ...]] = {}
    for modality in ("video", "audio"):
        out |= {f"{modality}_model.{k}": v for k, v in _tower_manifest(cfg, modality).items()}
    return out


def iap_new_keys(cfg: IAPConfig) -> dict[str, tuple[int, ...]]:
    """Keys IAP adds on top of Ovi (expected as missing when loading Ovi weights)."""
    d = cfg.dim
    out: dict[str, tuple[int, ...]] = {}
    if cfg.use_identity_embedding:
        out["identity_embedding.weight"] = (cfg.identity.k_max, d)
    projs = ("q_ref", "k_ref", "v_ref") + (("o_ref",) if cfg.decouple_o else ())
    for modality in ("video", "audio"):
        for i in range(cfg.num_layers):
            b = f"{modality}_model.blocks.{i}.self_attn"
            for p in projs:
                out |= _linear(f"{b}.{p}", d, d)
            out[f"{b}.norm_q_ref.weight"] = (d,)
            out[f"{b}.norm_k_ref.weight"] = (d,)
    return out


def manifest_num_params(manifest: dict[str, tuple[int, ...]]) -> int:
    """Sum of element counts of a key -> shape manifest."""
    return sum(math.prod(s) for s in manifest.values())


def read_safetensors_header(path: str | Path) -> dict[str, tuple[int, ...]]:
    """Key -> shape from a safetensors header without loading any tensor."""
    with open(path, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(n))
    return {k: tuple(v["shape"]) for k, v in header.items() if k != "__metadata__"}


# --------------------------------------------------------------------------- loading / saving
def _require_file(path: str | Path, name: str, how_to_get: str) -> Path:
    p = Path(path).expanduser()
    if not p.is_file():
        raise MissingCheckpointError(name, p.name, [p.parent.resolve() if p.parent.exists() else p.parent],
                                     how_to_get)
    return p


def _read_state(path_or_state_dict: Any, name: str, how_to_get: str) -> dict[str, torch.Tensor]:
    if isinstance(path_or_state_dict, dict):
        return path_or_state_dict
    from safetensors.torch import load_file

    return load_file(str(_require_file(path_or_state_dict, name, how_to_get)))


def compare_state(model: nn.Module, state: dict[str, torch.Tensor]) -> tuple[list[str], list[str], list[str]]:
    """(missing, unexpected, shape mismatches) of `state` against the model's state dict."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if tuple(own[k].shape) != tuple(state[k].shape)
    )
    return missing, unexpected, shapes


def load_ovi_weights(model: nn.Module, path_or_state_dict: Any, strict: bool = True) -> dict[str, list[str]]:
    """Load an Ovi FusionModel safetensors file (or state dict) into an IAPFusionModel, then copy W^(z) into
    W^(r). With strict=True the missing keys must be exactly the new IAP keys and nothing may be unexpected."""
    how = OVI_HOW_TO_GET.format(file=OVI_CHECKPOINTS.get(model.cfg.ovi_checkpoint, {}).get("file", "<file>"))
    state = _read_state(path_or_state_dict, "ovi", how)
    missing, unexpected, shapes = compare_state(model, state)
    new = set(iap_new_keys(model.cfg))
    bad_missing = sorted(set(missing) - new)
    if shapes or (strict and (bad_missing or unexpected or set(missing) != new)):
        extra_new = sorted(new - set(missing))
        if extra_new:
            unexpected = unexpected + [f"{k} (an IAP key found in an Ovi file)" for k in extra_new]
        raise CheckpointKeyError("Ovi checkpoint does not match the IAP model", bad_missing, unexpected, shapes)
    model.load_state_dict(state, strict=False)
    model.init_ref_from_noisy()
    return {"missing": missing, "unexpected": unexpected}


def save_checkpoint(model: nn.Module, path: str | Path, extra: dict | None = None) -> Path:
    """Save all parameters + the IAPConfig and `extra` (JSON-serialisable) as safetensors metadata."""
    from safetensors.torch import save_file

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    meta = {"iap_config": json.dumps(model.cfg.to_dict()), "extra": json.dumps(extra or {})}
    save_file(state, str(p), metadata=meta)
    return p


def read_checkpoint_metadata(path: str | Path) -> dict[str, Any]:
    """{"iap_config": dict, "extra": dict} stored by `save_checkpoint`."""
    from safetensors import safe_open

    p = _require_file(path, "iap", "train one with `iap-train` or point generator.ckpt at an IAP checkpoint")
    with safe_open(str(p), framework="pt") as fh:
        meta = fh.metadata() or {}
    return {k: json.loads(meta[k]) for k in ("iap_config", "extra") if k in meta}


def load_checkpoint(model: nn.Module, path: str | Path, strict: bool = True) -> dict:
    """Load an IAP checkpoint saved by `save_checkpoint`; returns its `extra` dict. Clear key errors."""
    how = "train one with `iap-train` or point generator.ckpt at an IAP checkpoint"
    state = _read_state(path, "iap", how)
    missing, unexpected, shapes = compare_state(model, state)
    if shapes or (strict and (missing or unexpected)):
        raise CheckpointKeyError(f"IAP checkpoint {path} does not match the model", missing, unexpected, shapes)
    model.load_state_dict(state, strict=strict)
    return read_checkpoint_metadata(path).get("extra", {})


def build_from_checkpoint(path: str | Path, device: str | torch.device = "cpu"):
    """Rebuild an IAPFusionModel from the config stored in an IAP checkpoint and load its weights."""
    from model.fusion_model import IAPFusionModel

    meta = read_checkpoint_metadata(path)
    model = IAPFusionModel(IAPConfig.from_dict(meta["iap_config"]))
    load_checkpoint(model, path)
    return model.to(device)


# --------------------------------------------------------------------------- diffusers naming (video tower)
_DIFFUSERS_TOP = {
    "time_embedding.0.": "condition_embedder.time_embedder.linear_1.",
    "time_embedding.2.": "condition_embedder.time_embedder.linear_2.",
    "text_embedding.0.": "condition_embedder.text_embedder.linear_1.",
    "text_embedding.2.": "condition_embedder.text_embedder.linear_2.",
    "time_projection.1.": "condition_embedder.time_proj.",
    "head.head.": "proj_out.",
    "patch_embedding.": "patch_embedding.",
}
_DIFFUSERS_BLOCK = {
    "self_attn.q.": "attn1.to_q.", "self_attn.k.": "attn1.to_k.", "self_attn.v.": "attn1.to_v.",
    "self_attn.o.": "attn1.to_out.0.", "self_attn.norm_q.": "attn1.norm_q.", "self_attn.norm_k.": "attn1.norm_k.",
    "cross_attn.q.": "attn2.to_q.", "cross_attn.k.": "attn2.to_k.", "cross_attn.v.": "attn2.to_v.",
    "cross_attn.o.": "attn2.to_out.0.", "cross_attn.norm_q.": "attn2.norm_q.", "cross_attn.norm_k.": "attn2.norm_k.",
    "norm3.": "norm2.",  # diffusers' norm2 is the cross-attention norm (Wan's norm3)
    "ffn.0.": "ffn.net.0.proj.", "ffn.2.": "ffn.net.2.",
}


def _video_key_to_diffusers(key: str) -> str | None:
    """Ovi/Wan video-tower key (no prefix) -> diffusers WanTransformer3DModel key, None if it has none."""
    if key == "head.modulation":
        return "scale_shift_table"
    for src, dst in _DIFFUSERS_TOP.items():
        if key.startswith(src):
            return dst + key[len(src):]
    if key.startswith("blocks."):
        _, i, rest = key.split(".", 2)
        if rest == "modulation.modulation":
            return f"blocks.{i}.scale_shift_table"
        for src, dst in _DIFFUSERS_BLOCK.items():
            if rest.startswith(src):
                return f"blocks.{i}.{dst}{rest[len(src):]}"
    return None  # fusion, *_ref and identity keys have no diffusers counterpart


def export_video_to_diffusers(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Video tower of an IAP/Ovi state dict in diffusers naming; returns (mapped, keys left out)."""
    out, left = {}, []
    for k, v in state.items():
        if not k.startswith("video_model."):
            left.append(k)
            continue
        dk = _video_key_to_diffusers(k[len("video_model."):])
        if dk is None:
            left.append(k)
        else:
            out[dk] = v
    return out, sorted(left)


def import_video_from_diffusers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of `export_video_to_diffusers` (keys under `video_model.`); unknown keys raise."""
    inverse: dict[str, str] = {}
    out: dict[str, torch.Tensor] = {}
    for dk, v in state.items():
        if dk not in inverse:
            inverse.update(_diffusers_inverse_for(dk))
        if dk not in inverse:
            raise CheckpointKeyError("diffusers state dict has keys without an Ovi name", [], [dk], [])
        out[f"video_model.{inverse[dk]}"] = v
    return out


def _diffusers_inverse_for(dk: str) -> dict[str, str]:
    if dk == "scale_shift_table":
        return {dk: "head.modulation"}
    for src, dst in _DIFFUSERS_TOP.items():
        if dk.startswith(dst):
            return {dk: src + dk[len(dst):]}
    if dk.startswith("blocks."):
        _, i, rest = dk.split(".", 2)
        if rest == "scale_shift_table":
            return {dk: f"blocks.{i}.modulation.modulation"}
        for src, dst in _DIFFUSERS_BLOCK.items():
            if rest.startswith(dst):
                return {dk: f"blocks.{i}.{src}{rest[len(dst):]}"}
    return {}
