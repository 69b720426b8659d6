"""RoPE: explicit positions of the worked example (both layouts), audio/video temporal equivalence,
relative-position invariance, no table cap."""

import math

import pytest
import torch
from iapmodel_helpers import make_refs, tiny_model

from model.config import IAPConfig
from model.rope import (
    apply_rope_1d_scaled,
    apply_rope_3d,
    audio_ref_positions,
    rope_frequencies,
    rope_split,
    visual_ref_positions,
    visual_ref_time,
)


def test_split_and_frequencies():
    assert rope_split(128) == (22, 21, 21)
    assert rope_split(32) == (6, 5, 5)
    ft, fh, _ = rope_frequencies(128)
    torch.testing.assert_close(ft[5], torch.tensor(10000.0, dtype=torch.float64) ** (-10 / 44))
    torch.testing.assert_close(fh[7], torch.tensor(10000.0, dtype=torch.float64) ** (-14 / 42))


@pytest.mark.parametrize("layout,expected_t", [("paper", [3, 4]), ("scaled_aligned", [3, 5])])
def test_tiny_worked_example_positions(layout, expected_t):
    """Tiny §10: canvases at t = T_v,max + k (paper) or T_v,max + round(k*L*s) = 3, 3+round(1.5) = 5;
    voices of 5 and 8 latents start at p = 16 and p = 24 in both layouts."""
    m = tiny_model(ref_time_layout=layout)
    cfg = m.cfg
    s, L = cfg.rope.audio_time_scale, cfg.identity.audio_ref_len
    for k, tk in enumerate(expected_t):
        assert visual_ref_time(k, 3, L, s, layout) == tk
        pos = visual_ref_positions(k, (4, 4), 3, L, s, layout)
        assert pos.shape == (16, 3) and (pos[:, 0] == tk).all()
        assert pos[:, 1].tolist() == [h for h in range(4) for _ in range(4)]
    a0 = audio_ref_positions(0, 5, 16, L, s)
    a1 = audio_ref_positions(1, 8, 16, L, s)
    torch.testing.assert_close(a0[:, 0], torch.arange(16, 21, dtype=torch.float64) * s)
    torch.testing.assert_close(a1[:, 0], torch.arange(24, 32, dtype=torch.float64) * s)
    assert (a0[:, 1:] == 0).all()
    # the model applies exactly these positions to the packed reference tokens
    toks = m.ref_tokens(make_refs(k=2, lens=[[5, 8]]))
    va = toks["video"][1][0]  # angles [32, 16]
    ft = rope_frequencies(32)[0]
    torch.testing.assert_close(va[:16, 0], torch.full((16,), float(expected_t[0]), dtype=torch.float64) * ft[0])
    torch.testing.assert_close(va[16:, 1], torch.full((16,), float(expected_t[1]), dtype=torch.float64) * ft[1])
    aa = toks["audio"][1][0]  # [13, 16]
    p = torch.cat([torch.arange(16, 21), torch.arange(24, 32)]).to(torch.float64)
    torch.testing.assert_close(aa[:, 2], p * s * ft[2])
    assert (aa[:, 6:] == 0).all()


def test_ovi_worked_example_scaled_times():
    """ARCHITECTURE §4: identity 2 sits at video t=32 vs audio 61.78 (paper) and at 62 (scaled_aligned)."""
    cfg = IAPConfig.ovi()
    s, L = cfg.rope.audio_time_scale, cfg.identity.audio_ref_len
    assert visual_ref_time(1, 31, L, s, "paper") == 32
    assert visual_ref_time(1, 31, L, s, "scaled_aligned") == 62
    a = audio_ref_positions(1, 62, 157, L, s)
    assert a[0, 0].item() == pytest.approx(61.78, abs=0.01) and a[-1, 0].item() == pytest.approx(73.79, abs=0.01)


def test_audio_position_equals_video_time_on_temporal_pairs():
    torch.manual_seed(0)
    s = 0.19676
    x = torch.randn(1, 5, 2, 128, dtype=torch.float64)
    p = torch.tensor([[0.0, 3.0, 157.0, 400.0, 2000.0]], dtype=torch.float64)  # beyond Ovi's 1024 table: fine
    ya = apply_rope_1d_scaled(x, p, s)
    pos_v = torch.stack([p * s, torch.full_like(p, 7.0), torch.full_like(p, 9.0)], dim=-1)
    yv = apply_rope_3d(x, pos_v)
    nt = rope_split(128)[0]
    torch.testing.assert_close(ya[..., : 2 * nt], yv[..., : 2 * nt])  # temporal pairs 0..21 equal
    torch.testing.assert_close(ya[..., 2 * nt :], x[..., 2 * nt :])  # other pairs untouched
    assert not torch.allclose(yv[..., 2 * nt :], x[..., 2 * nt :])


def test_relative_position_invariance():
    torch.manual_seed(0)
    q = torch.randn(1, 6, 2, 32, dtype=torch.float64)
    k = torch.randn(1, 6, 2, 32, dtype=torch.float64)
    pos = torch.rand(1, 6, 3, dtype=torch.float64) * 50
    shift = torch.tensor([1234.5, -17.0, 3.25], dtype=torch.float64)

    def scores(p):
        return torch.einsum("blhd,bmhd->bhlm", apply_rope_3d(q, p), apply_rope_3d(k, p))

    torch.testing.assert_close(scores(pos), scores(pos + shift))
    assert not torch.allclose(scores(pos), scores(pos * 2))
    # norm preserving
    torch.testing.assert_close(apply_rope_3d(q, pos).norm(dim=-1), q.norm(dim=-1))


def test_rope_pair_rotation_matches_complex_multiply():
    torch.manual_seed(0)
    x = torch.randn(1, 3, 1, 32, dtype=torch.float64)
    pos = torch.tensor([[[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [5.0, 1.0, 0.0]]], dtype=torch.float64)
    y = apply_rope_3d(x, pos)
    ft, fh, fw = rope_frequencies(32)
    ang = torch.cat([pos[0, :, :1] * ft, pos[0, :, 1:2] * fh, pos[0, :, 2:3] * fw], dim=-1)
    xc = torch.view_as_complex(x[0, :, 0].reshape(3, 16, 2).contiguous())
    ref = torch.view_as_real(xc * torch.polar(torch.ones_like(ang), ang)).reshape(3, 32)
    torch.testing.assert_close(y[0, :, 0], ref)
    assert math.isclose(float(y[0, 1].norm()), float(x[0, 1].norm()))
