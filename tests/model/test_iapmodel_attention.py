"""Eq. 6 mask, split == sdpa_mask, fusion ref policy, empty refs, decoupled init equals shared weights."""

import pytest
import torch
import torch.nn.functional as F
from iapmodel_helpers import make_inputs, make_refs, tiny_model

from model.attention import DecoupledSelfAttention
from model.block import Stream


@pytest.mark.parametrize("backend", ["split", "sdpa_mask"])
def test_ref_states_ignore_noisy_tokens_and_t(backend):
    m = tiny_model(attention_backend=backend)
    refs = make_refs(b=2, k=2, lens=[[5, 8], [8, 2]], mask=[[True, True], [True, False]])
    v, a, t, text = make_inputs(b=2)
    with torch.no_grad():
        o1 = m.run(v, a, t, text, refs)
        o2 = m.run(v + torch.randn_like(v), a * 3, torch.tensor([3.0, 999.0]), text, refs)
        o3 = m.run(v, a, t, text, make_refs(b=2, k=2, seed=9, lens=[[5, 8], [8, 2]], mask=[[True, True], [True, False]]))
    torch.testing.assert_close(o1.video_ref_hidden, o2.video_ref_hidden, atol=1e-6, rtol=0)
    torch.testing.assert_close(o1.audio_ref_hidden, o2.audio_ref_hidden, atol=1e-6, rtol=0)
    assert not torch.allclose(o1.video, o2.video)
    # noisy outputs do depend on the references
    assert (o1.video - o3.video).abs().max() > 1e-4 and (o1.audio - o3.audio).abs().max() > 1e-4


@pytest.mark.parametrize("policy", ["ref_only", "none"])
@pytest.mark.parametrize("rtext", [True, False])
def test_split_equals_sdpa_mask(policy, rtext):
    overrides = {"fusion": {"ref_policy": policy}, "refs_in_text_cross_attn": rtext, "decouple_o": True}
    ms = tiny_model(**overrides)
    md = tiny_model(**overrides, attention_backend="sdpa_mask")
    md.load_state_dict(ms.state_dict())
    with torch.no_grad():  # make W^(r) differ from W^(z) so the groups really are decoupled
        for blk in list(ms.video_model.blocks) + list(ms.audio_model.blocks):
            blk.self_attn.k_ref.weight.add_(0.1 * torch.randn_like(blk.self_attn.k_ref.weight))
        md.load_state_dict(ms.state_dict())
    refs = make_refs(b=2, k=3, lens=[[5, 8, 1], [8, 0, 0]], mask=[[True, True, True], [True, True, False]])
    v, a, t, text = make_inputs(b=2)
    with torch.no_grad():
        s, d = ms.run(v, a, t, text, refs), md.run(v, a, t, text, refs)
    for x, y in [(s.video, d.video), (s.audio, d.audio), (s.video_ref_hidden, d.video_ref_hidden),
                 (s.audio_ref_hidden, d.audio_ref_hidden)]:
        torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-5)


def test_fusion_ref_rows_without_other_refs_are_zero_not_nan():
    """Audio refs only: audio ref rows' fusion branch has no keys -> exactly 0 (split and dense agree)."""
    m = tiny_model()
    refs = make_refs(k=2, video=False, lens=[[5, 8]])
    v, a, t, text = make_inputs()
    with torch.no_grad():
        out = m.run(v, a, t, text, refs)
    assert torch.isfinite(out.audio_ref_hidden).all() and out.video_ref_hidden is None
    blk = m.audio_model.blocks[0]
    q = torch.randn(1, 4, 2, 32)
    assert (blk.cross_attn._fusion_branch(q, []) == 0).all()


def test_fusion_policy_none_makes_refs_blind_to_other_tower():
    m = tiny_model(fusion={"ref_policy": "none"})
    v, a, t, text = make_inputs()
    r1 = make_refs(k=2, lens=[[5, 8]])
    r2 = make_refs(k=2, lens=[[5, 8]])
    r2.video = r2.video + 1.0  # change only the visual refs
    with torch.no_grad():
        o1, o2 = m.run(v, a, t, text, r1), m.run(v, a, t, text, r2)
    torch.testing.assert_close(o1.audio_ref_hidden, o2.audio_ref_hidden)
    m2 = tiny_model()  # ref_only: audio refs do see visual refs
    with torch.no_grad():
        p1, p2 = m2.run(v, a, t, text, r1), m2.run(v, a, t, text, r2)
    assert (p1.audio_ref_hidden - p2.audio_ref_hidden).abs().max() > 1e-5


def _shared_weight_masked_attention(attn: DecoupledSelfAttention, x_r, x_z, ang_r, ang_z):
    """Independent reference: one shared W^(z) for all rows, dense softmax with the eq. 6 mask."""
    from model.rope import apply_rope

    x = torch.cat([x_r, x_z], 1)
    ang = torch.cat([ang_r, ang_z], 1)
    h = attn.num_heads
    q = apply_rope(attn.norm_q(attn.q(x)).unflatten(-1, (h, -1)), ang).transpose(1, 2)
    k = apply_rope(attn.norm_k(attn.k(x)).unflatten(-1, (h, -1)), ang).transpose(1, 2)
    v = attn.v(x).unflatten(-1, (h, -1)).transpose(1, 2)
    n, nr = x.shape[1], x_r.shape[1]
    mask = torch.zeros(n, n)
    mask[:nr, nr:] = float("-inf")
    w = F.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5 + mask, dim=-1)
    return attn.o((w @ v).transpose(1, 2).flatten(2))


def test_init_ref_from_noisy_equals_shared_weight_model():
    torch.manual_seed(0)
    attn = DecoupledSelfAttention(64, 2, decouple_o=True)
    with torch.no_grad():
        for p in attn.parameters():
            p.add_(0.05 * torch.randn_like(p))
    attn.init_ref_from_noisy()
    x_r, x_z = torch.randn(1, 7, 64), torch.randn(1, 9, 64)
    ang_r, ang_z = torch.rand(1, 7, 16) * 5, torch.rand(1, 9, 16) * 5
    out_r, kv = attn.forward_ref(x_r, ang_r, None)
    out_z = attn.forward_noisy(x_z, ang_z, kv)
    ref = _shared_weight_masked_attention(attn, x_r, x_z, ang_r.double(), ang_z.double())
    torch.testing.assert_close(torch.cat([out_r, out_z], 1), ref, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        attn.q_ref.weight.add_(0.1)
    out_r2, _ = attn.forward_ref(x_r, ang_r, None)
    assert not torch.allclose(out_r, out_r2)


def test_whole_model_init_ref_from_noisy_after_perturbation():
    """Scrambled W^(r) -> init_ref_from_noisy restores the output of the freshly initialised model."""
    m = tiny_model()
    v, a, t, text = make_inputs()
    refs = make_refs(k=2, lens=[[5, 8]])
    with torch.no_grad():
        base = m(v, a, t, text, refs)
        for name, p in m.named_parameters():
            if "_ref" in name:
                p.add_(torch.randn_like(p))
        changed = m(v, a, t, text, refs)
        m.init_ref_from_noisy()
        restored = m(v, a, t, text, refs)
    assert not torch.allclose(base[0], changed[0])
    torch.testing.assert_close(base[0], restored[0])
    torch.testing.assert_close(base[1], restored[1])


def test_stream_block_gate_uses_group_modulation():
    """Ref rows at t=0 and noisy rows at t use different modulation (per-group timestep path)."""
    m = tiny_model()
    e_noisy = m.video_model.time_embed(torch.tensor([700.0]))[1]
    e_ref = m.video_model.time_embed(torch.tensor([0.0]))[1]
    blk = m.video_model.blocks[0]
    x = torch.randn(1, 4, 64)
    a1 = blk.ffn_step(Stream(x, torch.zeros(1, 4, 16), e_noisy)).x
    a2 = blk.ffn_step(Stream(x, torch.zeros(1, 4, 16), e_ref)).x
    assert not torch.allclose(a1, a2)
