"""Reference K/V cache: 3 sampling steps with the cache equal 3 dense steps (pos, and neg with SLG);
with refs at the current t the equality fails, which validates the test."""

import pytest
import torch
from iapmodel_helpers import make_inputs, make_refs, tiny_model

from model.sampling import SamplerConfig, make_scheduler


def _three_steps(model, refs, text, skip, use_cache, mode="joint"):
    v, a, _, _ = make_inputs(seed=5)
    sch_v, sch_a = make_scheduler(SamplerConfig(steps=3)), make_scheduler(SamplerConfig(steps=3))
    t0 = torch.tensor([float(sch_v.timesteps[0])])  # only used when refs take the current t
    cache = model.build_ref_cache(refs, text, skip, mode, t=t0) if use_cache else None
    outs = []
    with torch.no_grad():
        for ts in sch_v.timesteps:
            t = torch.tensor([float(ts)])
            pv, pa = model(v, a, t, text, None if use_cache else refs, mode=mode, ref_cache=cache, skip_layers=skip)
            outs.append((pv, pa))
            if pv is not None:
                v = sch_v.step(pv, ts, v, return_dict=False)[0]
            if pa is not None:
                a = sch_a.step(pa, ts, a, return_dict=False)[0]
    return outs


@pytest.mark.parametrize("skip", [(), (1,)], ids=["pos", "neg_slg"])
@pytest.mark.parametrize("backend", ["split", "sdpa_mask"])
def test_cache_equals_dense(skip, backend):
    m = tiny_model(attention_backend=backend)
    refs = make_refs(k=2, lens=[[5, 8]])
    text = make_inputs(seed=7)[3]
    dense = _three_steps(m, refs, text, skip, use_cache=False)
    cached = _three_steps(m, refs, text, skip, use_cache=True)
    for (dv, da), (cv, ca) in zip(dense, cached):
        torch.testing.assert_close(dv, cv, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(da, ca, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mode", ["video", "audio"])
def test_cache_equals_dense_unimodal(mode):
    m = tiny_model()
    refs = make_refs(k=2, lens=[[5, 8]])
    text = make_inputs(seed=7)[3]
    dense = _three_steps(m, refs, text, (), False, mode)
    cached = _three_steps(m, refs, text, (), True, mode)
    idx = 0 if mode == "video" else 1
    for d, c in zip(dense, cached):
        torch.testing.assert_close(d[idx], c[idx], atol=1e-5, rtol=1e-5)


def test_cache_fails_when_refs_take_current_t():
    m = tiny_model(ref_timestep="current")
    refs = make_refs(k=2, lens=[[5, 8]])
    text = make_inputs(seed=7)[3]
    dense = _three_steps(m, refs, text, (), use_cache=False)
    cached = _three_steps(m, refs, text, (), use_cache=True)  # cache built at the first t, reused
    torch.testing.assert_close(dense[0][0], cached[0][0], atol=1e-5, rtol=1e-5)  # first step: same t
    assert (dense[2][0] - cached[2][0]).abs().max() > 1e-4  # later steps differ


def test_cache_mismatch_is_a_clear_error():
    m = tiny_model()
    refs = make_refs(k=1)
    v, a, t, text = make_inputs()
    cache = m.build_ref_cache(refs, text, skip_layers=(1,))
    with pytest.raises(ValueError, match="one cache per CFG branch"):
        m(v, a, t, text, ref_cache=cache)
