"""Sampling: bit-identical per seed, seeds differ, pos-only at guidance 1, shifted sigmas, both solvers."""

import pytest
import torch
from iapmodel_helpers import make_inputs, make_refs, tiny_model

from model.sampling import SamplerConfig, make_scheduler, sample, shifted_sigma

VSHAPE, ASHAPE = (1, 4, 3, 8, 8), (1, 16, 4)


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.mark.parametrize("solver", ["unipc", "euler"])
def test_deterministic_per_seed(model, solver):
    text_pos, text_neg = make_inputs(seed=3)[3], make_inputs(seed=4)[3]
    refs = make_refs(k=2, lens=[[5, 8]])
    cfg = SamplerConfig(steps=3, solver=solver, slg_layer=1)
    v1, a1 = sample(model, cfg, text_pos, text_neg, refs, VSHAPE, ASHAPE, seed=7)
    v2, a2 = sample(model, cfg, text_pos, text_neg, refs, VSHAPE, ASHAPE, seed=7)
    v3, _ = sample(model, cfg, text_pos, text_neg, refs, VSHAPE, ASHAPE, seed=8)
    assert torch.equal(v1, v2) and torch.equal(a1, a2)
    assert not torch.allclose(v1, v3)
    assert v1.shape == VSHAPE and a1.shape == ASHAPE and torch.isfinite(v1).all()


def test_cache_and_no_cache_samples_agree(model):
    text_pos, text_neg = make_inputs(seed=3)[3], make_inputs(seed=4)[3]
    refs = make_refs(k=2, lens=[[5, 8]])
    a = sample(model, SamplerConfig(steps=3, slg_layer=1), text_pos, text_neg, refs, VSHAPE, ASHAPE, seed=1)
    b = sample(model, SamplerConfig(steps=3, slg_layer=1, use_ref_cache=False), text_pos, text_neg, refs,
               VSHAPE, ASHAPE, seed=1)
    torch.testing.assert_close(a[0], b[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a[1], b[1], atol=1e-5, rtol=1e-5)


def test_guidance_one_equals_pos_only_loop(model):
    text_pos = make_inputs(seed=3)[3]
    refs = make_refs(k=1)
    cfg = SamplerConfig(steps=2, guidance_video=1.0, guidance_audio=1.0)
    v, a = sample(model, cfg, text_pos, torch.zeros_like(text_pos), refs, VSHAPE, ASHAPE, seed=2)
    g = torch.Generator().manual_seed(2)
    xv = torch.randn(VSHAPE, generator=g)
    xa = torch.randn(ASHAPE, generator=torch.Generator().manual_seed(2))
    sv, sa = make_scheduler(cfg), make_scheduler(cfg)
    with torch.no_grad():
        for ts in sv.timesteps:
            pv, pa = model(xv, xa, torch.tensor([float(ts)]), text_pos, refs)
            xv, xa = sv.step(pv, ts, xv, return_dict=False)[0], sa.step(pa, ts, xa, return_dict=False)[0]
    torch.testing.assert_close(v, xv)
    torch.testing.assert_close(a, xa)


def test_unimodal_sampling(model):
    text = make_inputs(seed=3)[3]
    v, a = sample(model, SamplerConfig(steps=2), text, text, make_refs(k=1), None, ASHAPE, seed=0)
    assert v is None and a.shape == ASHAPE


def test_shifted_sigmas_match_closed_form():
    """UniPC flow sigmas: sigma_i = shift(1 - i*(1 - 1/1000)/steps), shift(s) = 5s/(1+4s) (Ovi: 1 - i/steps)."""
    steps = 10
    sch = make_scheduler(SamplerConfig(steps=steps, shift=5.0, solver="unipc"))
    base = 1.0 - torch.arange(steps, dtype=torch.float64) * (1 - 1 / 1000) / steps
    expected = shifted_sigma(base, 5.0)
    torch.testing.assert_close(sch.sigmas[:-1].double(), expected, atol=1e-5, rtol=0)  # float32 storage
    assert float(sch.sigmas[-1]) == 0.0
    assert shifted_sigma(0.5, 5.0) == pytest.approx(5 / 6)
