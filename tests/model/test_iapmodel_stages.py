"""apply_stage freezes exactly the ARCHITECTURE §7 sets; stage-1 outputs ignore the other modality."""

import pytest
import torch
from iapmodel_helpers import make_inputs, make_refs, tiny_model

from model.stages import apply_stage, is_fusion_param, param_groups


def _trainable(m):
    return {n for n, p in m.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("stage,tower,mode", [("1a", "audio_model.", "audio"), ("1v", "video_model.", "video")])
def test_stage1_sets(stage, tower, mode):
    m = tiny_model()
    assert apply_stage(m, stage) == mode
    names = {n for n, _ in m.named_parameters()}
    expected = {n for n in names if n.startswith(tower) and "_fusion" not in n}
    assert _trainable(m) == expected
    assert any(".self_attn.q_ref." in n for n in expected)  # W^(r) of this tower trains
    assert "identity_embedding.weight" not in expected  # e_id frozen in stage 1
    assert all(not is_fusion_param(n) for n in expected)
    assert {n for n in names if is_fusion_param(n)} == {n for n in names if "_fusion" in n}


@pytest.mark.parametrize("stage", ["2", "3"])
def test_joint_stages_train_everything(stage):
    m = tiny_model()
    apply_stage(m, "1a")
    assert apply_stage(m, stage) == "joint"
    assert _trainable(m) == {n for n, _ in m.named_parameters()}


def test_stage1_audio_ignores_video_and_grads_stay_in_audio_tower():
    m = tiny_model().train()
    mode = apply_stage(m, "1a")
    v, a, t, text = make_inputs()
    refs = make_refs(k=2, lens=[[5, 8]])
    _, a1 = m(v, a, t, text, refs, mode=mode)
    _, a2 = m(torch.randn_like(v), a, t, text, refs, mode=mode)
    torch.testing.assert_close(a1, a2)
    r2 = make_refs(k=2, lens=[[5, 8]])
    r2.video = r2.video + 5.0  # visual references cannot reach the audio tower either
    _, a3 = m(v, a, t, text, r2, mode=mode)
    torch.testing.assert_close(a1, a3)
    a1.square().mean().backward()
    for n, p in m.named_parameters():
        if not p.requires_grad:
            assert p.grad is None, n
    assert m.audio_model.blocks[0].self_attn.k_ref.weight.grad.abs().sum() > 0


def test_param_groups_cover_trainable_params_once():
    m = tiny_model()
    apply_stage(m, "1v")
    groups = param_groups(m, lr=1e-4, weight_decay=0.01)
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(_trainable(m))
    assert {g["weight_decay"] for g in groups} == {0.01, 0.0}
    opt = torch.optim.AdamW(groups, betas=(0.9, 0.999), eps=1e-8)
    assert opt.param_groups[0]["lr"] == 1e-4
    with pytest.raises(ValueError, match="unknown stage"):
        apply_stage(m, "4")
