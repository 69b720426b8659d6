"""Flow-matching math (paper eq. 1-2) checked against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from model import flow


def test_interpolation_and_target_by_hand():
    x0 = torch.tensor([[1.0, 2.0], [3.0, -1.0]])
    eps = torch.tensor([[0.0, 4.0], [1.0, 1.0]])
    t = torch.tensor([0.25, 1.0])
    xt = flow.interpolate(x0, eps, t)
    # row 0: 0.75*[1,2] + 0.25*[0,4] = [0.75, 2.5]; row 1 (t=1): pure noise
    assert torch.allclose(xt, torch.tensor([[0.75, 2.5], [1.0, 1.0]]))
    assert torch.allclose(flow.velocity_target(x0, eps), torch.tensor([[-1.0, 2.0], [-2.0, 2.0]]))
    # d x_t / d t equals the target
    t2 = torch.tensor([0.26, 1.01])
    fd = (flow.interpolate(x0, eps, t2) - xt) / 0.01
    assert torch.allclose(fd, flow.velocity_target(x0, eps), atol=1e-4)


def test_interpolation_broadcasts_over_5d_video():
    x0, eps = torch.zeros(2, 3, 2, 4, 4), torch.ones(2, 3, 2, 4, 4)
    xt = flow.interpolate(x0, eps, torch.tensor([0.1, 0.9]))
    assert torch.allclose(xt[0], torch.full_like(xt[0], 0.1)) and torch.allclose(xt[1], torch.full_like(xt[1], 0.9))


def test_joint_loss_by_hand_with_lambda_and_mask():
    vp, vt = torch.tensor([[1.0, 3.0]]), torch.tensor([[0.0, 1.0]])  # errors 1, 4 -> mean 2.5
    ap = torch.tensor([[[2.0], [5.0], [9.0]]])
    at = torch.tensor([[[0.0], [5.0], [0.0]]])  # errors 4, 0, 81; last one is padding
    mask = flow.audio_length_mask(torch.tensor([2]), 3)
    terms = flow.joint_loss(vp, vt, ap, at, audio_weight=0.5, audio_mask=mask)
    assert math.isclose(float(terms.video), 2.5)
    assert math.isclose(float(terms.audio), 2.0)  # (4 + 0) / 2
    assert math.isclose(float(terms.total), 2.5 + 0.5 * 2.0)
    assert terms.as_floats() == {"loss": 3.5, "loss_video": 2.5, "loss_audio": 2.0}


def test_stage1_has_one_term_and_none_is_an_error():
    a = torch.ones(1, 2, 3)
    terms = flow.joint_loss(None, None, a, torch.zeros_like(a))
    assert terms.video is None and float(terms.total) == 1.0
    with pytest.raises(ValueError):
        flow.joint_loss(None, None, None, None)


@pytest.mark.parametrize("name", ["logit_normal", "uniform", "shifted_uniform"])
def test_t_samplers_in_open_interval_and_seeded(name):
    cfg = flow.FlowConfig(t_sampler=name)
    t1 = flow.sample_t(4000, cfg, torch.Generator().manual_seed(3))
    t2 = flow.sample_t(4000, cfg, torch.Generator().manual_seed(3))
    assert torch.equal(t1, t2) and t1.min() > 0 and t1.max() < 1
    if name == "logit_normal":  # symmetric around 0.5
        assert abs(float(t1.median()) - 0.5) < 0.03
    if name == "shifted_uniform":  # shift 5 pushes mass to high noise: median = 5*.5/(1+4*.5) = 0.833
        assert abs(float(t1.median()) - 5 / 6) < 0.03


def test_shift_closed_form():
    s = torch.tensor([0.0, 0.5, 1.0])
    assert torch.allclose(flow.shift_sigma(s, 5.0), torch.tensor([0.0, 2.5 / 3.0, 1.0]))
    assert torch.allclose(flow.shift_sigma(s, 1.0), s)


def test_condition_dropout():
    caps = [f"c{i}" for i in range(2000)]
    assert flow.drop_text(caps, 0.0) == caps
    assert all(c == "" for c in flow.drop_text(caps, 1.0))
    dropped = sum(c == "" for c in flow.drop_text(caps, 0.1, torch.Generator().manual_seed(0)))
    assert 140 < dropped < 260
    m = flow.drop_mask(1000, 0.1, torch.Generator().manual_seed(0))
    assert m.dtype == torch.bool and 50 < int(m.sum()) < 150
