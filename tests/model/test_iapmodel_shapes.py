"""End-to-end shapes for joint / video / audio modes with K in {1, 2, 4}, padding and mixed slots."""

import pytest
import torch
from iapmodel_helpers import make_inputs, make_refs, tiny_model


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.mark.parametrize("k", [1, 2, 4])
@pytest.mark.parametrize("mode", ["joint", "video", "audio"])
def test_output_shapes(model, k, mode):
    video, audio, t, text = make_inputs(b=2)
    lens = [[8 - i for i in range(k)], [3 + i for i in range(k)]]
    mask = [[True] * k, [True] + [False] * (k - 1)]
    refs = make_refs(b=2, k=k, lens=lens, mask=mask)
    with torch.no_grad():
        out = model.run(video, audio, t, text, refs, mode=mode)
    if mode in ("joint", "video"):
        assert out.video.shape == video.shape and torch.isfinite(out.video).all()
        # 16 tokens per canvas; sample 0 has k valid canvases (max over batch)
        assert out.video_ref_hidden.shape == (2, 16 * k, 64)
    else:
        assert out.video is None
    if mode in ("joint", "audio"):
        assert out.audio.shape == audio.shape and torch.isfinite(out.audio).all()
        assert out.audio_ref_hidden.shape == (2, max(sum(r) for r in [lens[0], [lens[1][0]]]), 64)
    else:
        assert out.audio is None


def test_worked_tiny_example_token_counts(model):
    """ARCHITECTURE §10 tiny: 2 canvases -> 32 visual ref tokens; voices of 5 and 8 latents -> 13 tokens."""
    refs = make_refs(b=1, k=2, lens=[[5, 8]])
    toks = model.ref_tokens(refs)
    assert toks["video"][0].shape == (1, 32, 64)
    assert toks["audio"][0].shape == (1, 13, 64)
    assert toks["video"][2] is None and toks["audio"][2] is None  # B=1: nothing padded, mask-free


def test_no_refs_and_missing_modality_refs(model):
    video, audio, t, text = make_inputs()
    with torch.no_grad():
        v0, a0 = model(video, audio, t, text, refs=None)
        v1, a1 = model(video, audio, t, text, refs=make_refs(k=2, audio=False))
    assert v0.shape == video.shape and a1.shape == audio.shape
    assert torch.isfinite(v1).all() and torch.isfinite(a1).all()


def test_bad_inputs_give_clear_errors(model):
    video, audio, t, text = make_inputs()
    with pytest.raises(ValueError, match="needs an audio latent"):
        model(video, None, t, text)
    with pytest.raises(ValueError, match="multiple of patch size"):
        model(torch.randn(1, 4, 3, 7, 8), audio, t, text)
    with pytest.raises(ValueError, match="exceed identity.k_max"):
        model(video, audio, t, text, refs=make_refs(k=5))
    with pytest.raises(ValueError, match="more than text_len"):
        model(video, audio, t, torch.randn(1, 17, 32))


def test_gradient_checkpointing_same_grads():
    video, audio, t, text = make_inputs()
    refs = make_refs(k=2, lens=[[5, 8]])
    grads = []
    for gc in (False, True):
        m = tiny_model(gradient_checkpointing=gc).train()
        v, a = m(video, audio, t, text, refs)
        (v.square().mean() + a.square().mean()).backward()
        grads.append(m.video_model.blocks[0].self_attn.q_ref.weight.grad.clone())
    assert grads[0].abs().sum() > 0
    torch.testing.assert_close(grads[0], grads[1])
