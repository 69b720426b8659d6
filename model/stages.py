"""Training stages (ARCHITECTURE §7): which parameters train and which forward mode each stage uses,
plus AdamW parameter groups."""

from __future__ import annotations

from torch import nn

STAGE_MODES = {"1a": "audio", "1v": "video", "2": "joint", "3": "joint"}
_FUSION_PARTS = ("k_fusion", "v_fusion", "pre_attn_norm_fusion", "norm_k_fusion")


def is_fusion_param(name: str) -> bool:
    """True for Ovi's cross-tower fusion modules (`cross_attn.{k,v}_fusion`, `pre_attn_norm_fusion`, ...)."""
    return any(f".cross_attn.{p}." in f".{name}" for p in _FUSION_PARTS)


def stage_trainable(name: str, stage: str) -> bool:
    """Whether parameter `name` trains in `stage`: 1a = audio tower (incl. audio W^(r)) without fusion/e_id;
    1v = same for video; 2 and 3 = everything."""
    if stage in ("2", "3"):
        return True
    tower = {"1a": "audio_model.", "1v": "video_model."}[stage]
    return name.startswith(tower) and not is_fusion_param(name)


def apply_stage(model: nn.Module, stage: str) -> str:
    """Set requires_grad for `stage` ("1a", "1v", "2", "3") and return its forward mode."""
    if stage not in STAGE_MODES:
        raise ValueError(f"unknown stage {stage!r}; expected one of {sorted(STAGE_MODES)}")
    for name, p in model.named_parameters():
        p.requires_grad_(stage_trainable(name, stage))
    return STAGE_MODES[stage]


def _no_decay(name: str, p: nn.Parameter) -> bool:
    """Biases, norm weights, modulation tables and the identity embedding get no weight decay."""
    return p.dim() <= 1 or name.endswith("modulation") or "identity_embedding" in name or "norm" in name


def param_groups(model: nn.Module, lr: float, weight_decay: float) -> list[dict]:
    """AdamW groups over trainable parameters: decayed matrices and non-decayed biases/norms/tables."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if _no_decay(name, p) else decay).append(p)
    groups = [{"params": decay, "lr": lr, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "lr": lr, "weight_decay": 0.0})
    return [g for g in groups if g["params"]]
