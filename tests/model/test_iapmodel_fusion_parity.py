"""Joint forward without references equals an independent, plain re-statement of Ovi's fusion forward
(ARCHITECTURE §1.2-1.3): block order, og_audio target, shared q, RoPE only in the fusion branch, head on e."""

import math

import torch
import torch.nn.functional as F
from iapmodel_helpers import make_inputs, tiny_model


def _rope(x, pos, head_dim):
    """Independent RoPE: complex multiply with polar(1, angle); pos [L, 3] float64."""
    c = head_dim // 2
    nh = c // 3
    nt = c - 2 * nh
    ft = 10000.0 ** (-torch.arange(nt, dtype=torch.float64) / nt)
    fh = 10000.0 ** (-torch.arange(nh, dtype=torch.float64) / nh)
    ang = torch.cat([pos[:, :1] * ft, pos[:, 1:2] * fh, pos[:, 2:3] * fh], dim=-1)  # [L, c]
    xc = torch.view_as_complex(x.double().reshape(*x.shape[:-1], c, 2).contiguous())
    rot = torch.polar(torch.ones_like(ang), ang)[None, :, None, :]
    return torch.view_as_real(xc * rot).flatten(-2).float()


def _ln(x, w=None, b=None):
    return F.layer_norm(x, x.shape[-1:], w, b, 1e-6)


def _rms(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * w


def _heads(x, h):
    return x.unflatten(-1, (h, -1))


def _attn(q, k, v):
    return F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).transpose(1, 2)


def _self(blk, x, pos, h, d):
    sa = blk.self_attn
    q = _rope(_heads(_rms(sa.q(x), sa.norm_q.weight), h), pos, d)
    k = _rope(_heads(_rms(sa.k(x), sa.norm_k.weight), h), pos, d)
    return sa.o(_attn(q, k, _heads(sa.v(x), h)).flatten(2))


def _cross(blk, x, ctx, y, pos_x, pos_y, h, d):
    ca = blk.cross_attn
    xn = _ln(x, blk.norm3.weight, blk.norm3.bias)
    q = _heads(_rms(ca.q(xn), ca.norm_q.weight), h)
    out = _attn(q, _heads(_rms(ca.k(ctx), ca.norm_k.weight), h), _heads(ca.v(ctx), h))
    yn = _ln(y, ca.pre_attn_norm_fusion.weight, ca.pre_attn_norm_fusion.bias)
    kf = _rope(_heads(_rms(ca.k_fusion(yn), ca.norm_k_fusion.weight), h), pos_y, d)
    out = out + _attn(_rope(q, pos_x, d), kf, _heads(ca.v_fusion(yn), h))
    return ca.o(out.flatten(2))


def _ffn(blk, x, m):
    return x + blk.ffn(_ln(x) * (1 + m[:, 4]) + m[:, 3]) * m[:, 5]


def _time(tower, t, freq_dim, dim):
    half = freq_dim // 2
    ang = t.double()[:, None] * 10000.0 ** (-torch.arange(half, dtype=torch.float64) / half)
    e = tower.time_embedding(torch.cat([ang.cos(), ang.sin()], -1).float())  # [B, D]
    return e, tower.time_projection(e).unflatten(-1, (6, dim))  # [B, 6, D]


def reference_forward(m, video, audio, t, text, skip=()):
    cfg = m.cfg
    h, d, dim = cfg.num_heads, cfg.head_dim, cfg.dim
    vt, at = m.video_model, m.audio_model
    v = vt.patch_embedding(video)
    f, hh, ww = v.shape[2:]
    v = v.flatten(2).transpose(1, 2)
    a = at.patch_embedding(audio)
    gt, gh, gw = torch.meshgrid(torch.arange(f), torch.arange(hh), torch.arange(ww), indexing="ij")
    pos_v = torch.stack([gt, gh, gw], -1).reshape(-1, 3).double()
    p = torch.arange(audio.shape[1], dtype=torch.float64)
    pos_a = torch.stack([p * cfg.rope.audio_time_scale, 0 * p, 0 * p], -1)
    pad = torch.cat([text, text.new_zeros(text.shape[0], cfg.text_len - text.shape[1], text.shape[2])], 1)
    ctx_v, ctx_a = vt.text_embedding(pad), at.text_embedding(pad)
    e_v, e0_v = _time(vt, t, cfg.freq_dim, dim)
    e_a, e0_a = _time(at, t, cfg.freq_dim, dim)
    for i in range(cfg.num_layers):
        if i in skip:
            continue
        vb, ab = vt.blocks[i], at.blocks[i]
        ma = ab.modulation.modulation + e0_a  # [B, 6, D]
        mv = vb.modulation.modulation + e0_v
        a = a + _self(ab, _ln(a) * (1 + ma[:, 1:2]) + ma[:, 0:1], pos_a, h, d) * ma[:, 2:3]
        v = v + _self(vb, _ln(v) * (1 + mv[:, 1:2]) + mv[:, 0:1], pos_v, h, d) * mv[:, 2:3]
        og_a = a
        a = a + _cross(ab, a, ctx_a, v, pos_a, pos_v, h, d)
        a = _ffn(ab, a, ma[:, :, None])
        v = v + _cross(vb, v, ctx_v, og_a, pos_v, pos_a, h, d)
        v = _ffn(vb, v, mv[:, :, None])

    def head(tower, x, e):
        mod = tower.head.modulation + e[:, None]  # [B, 2, D]
        return tower.head.head(_ln(x) * (1 + mod[:, 1:2]) + mod[:, 0:1])

    ov = head(vt, v, e_v).reshape(video.shape[0], f, hh, ww, 1, 2, 2, -1)
    ov = torch.einsum("bfhwpqrc->bcfphqwr", ov).reshape(video.shape[0], -1, f, hh * 2, ww * 2)
    return ov, head(at, a, e_a)


def test_joint_forward_matches_plain_ovi_restatement():
    m = tiny_model(seed=5)
    with torch.no_grad():
        for n, prm in m.named_parameters():
            if "modulation" in n or "norm" in n:
                prm.add_(0.1 * torch.randn_like(prm))
    video, audio, _, text = make_inputs(b=2)
    t = torch.tensor([812.0, 37.5])
    with torch.no_grad():
        ours = m(video, audio, t, text)
        ref = reference_forward(m, video, audio, t, text)
        ours_slg = m(video, audio, t, text, skip_layers=(1,))
        ref_slg = reference_forward(m, video, audio, t, text, skip=(1,))
    for x, y in zip(ours + ours_slg, ref + ref_slg):
        torch.testing.assert_close(x, y, atol=2e-4, rtol=2e-4)
    assert not torch.allclose(ours[1], ours_slg[1])
    assert math.isfinite(float(ours[0].sum()))
