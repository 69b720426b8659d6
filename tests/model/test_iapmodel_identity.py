"""Multi-view packing grids and cell alignment; the identity embedding is one table shared by both towers."""

import pytest
import torch
from iapmodel_helpers import make_refs, tiny_model

from model.identity import IdentityRefs, cell_boxes, grid_shape, pack_multiview

EXPECTED = {1: (1, 1), 2: (1, 2), 3: (2, 2), 4: (2, 2), 5: (2, 3), 6: (2, 3), 7: (3, 3), 8: (3, 3), 9: (3, 3)}


@pytest.mark.parametrize("n", range(1, 10))
def test_grid_shapes_and_alignment(n):
    assert grid_shape(n) == EXPECTED[n]
    H, W = 704, 1280
    boxes = cell_boxes(n, H, W)
    assert len(boxes) == n
    for y0, x0, h, w in boxes:
        assert y0 % 32 == 0 and x0 % 32 == 0 and h % 32 == 0 and w % 32 == 0  # no token straddles views
        assert y0 + h <= H and x0 + w <= W
    # cells do not overlap
    occ = torch.zeros(H, W, dtype=torch.int32)
    for y0, x0, h, w in boxes:
        occ[y0 : y0 + h, x0 : x0 + w] += 1
    assert occ.max() == 1


def test_pack_multiview_places_each_view_in_its_cell_aspect_preserved():
    H, W = 256, 384
    views = [torch.full((3, 100, 50), float(i + 1)) for i in range(5)]  # tall 1:2 views
    canvas = pack_multiview(views, H, W)
    assert canvas.shape == (3, H, W)
    for i, (y0, x0, h, w) in enumerate(cell_boxes(5, H, W)):
        cell = canvas[0, y0 : y0 + h, x0 : x0 + w]
        filled = cell == float(i + 1)
        rows, cols = filled.any(1).sum().item(), filled.any(0).sum().item()
        assert rows == h  # the tall view fills the cell height
        assert abs(cols / rows - 0.5) < 0.05  # aspect ratio kept
        assert set(cell.unique().tolist()) <= {0.0, float(i + 1)}  # nothing from other views
    # constant token count per identity whatever the number of views
    assert pack_multiview(views[:1], H, W).shape == canvas.shape


def test_pack_multiview_errors():
    with pytest.raises(ValueError, match="1..9"):
        pack_multiview([torch.zeros(3, 8, 8)] * 10, 256, 256)
    with pytest.raises(ValueError, match="multiple of 32"):
        pack_multiview([torch.zeros(3, 8, 8)], 250, 256)


def test_identity_embedding_shared_across_towers():
    m = tiny_model()
    with torch.no_grad():
        m.identity_embedding.weight.copy_(torch.randn_like(m.identity_embedding.weight))
    refs = make_refs(k=3, lens=[[8, 8, 8]])
    with torch.no_grad():
        raw_v = m.video_model.ref_tokens_raw(refs)
        raw_a = m.audio_model.ref_tokens_raw(refs)
        tok = m.ref_tokens(refs)
    dv = tok["video"][0] - raw_v[0]  # what was added to the visual refs
    da = tok["audio"][0] - raw_a[0]
    e = m.identity_embedding.weight
    for k in range(3):
        torch.testing.assert_close(dv[0, 16 * k : 16 * (k + 1)], e[k].expand(16, -1))
        torch.testing.assert_close(da[0, 8 * k : 8 * (k + 1)], e[k].expand(8, -1))
    # one parameter object, reached by both towers through the model (no per-tower copy)
    names = [n for n, _ in m.named_parameters() if "identity_embedding" in n]
    assert names == ["identity_embedding.weight"] and m.e_id is m.identity_embedding.weight
    # gradients from either tower land in the same table
    m.train()
    tok["audio"] = m.audio_model.embed_refs(refs, m.e_id)
    tok["audio"][0].sum().backward()
    assert m.identity_embedding.weight.grad[:3].abs().sum() > 0


def test_no_identity_embedding_ablation_adds_nothing():
    m = tiny_model(use_identity_embedding=False)
    refs = make_refs(k=2)
    assert m.identity_embedding is None
    torch.testing.assert_close(m.ref_tokens(refs)["video"][0], m.video_model.ref_tokens_raw(refs)[0])


def test_from_lists_builds_padded_slots():
    refs = IdentityRefs.from_lists(
        video=[torch.zeros(4, 8, 8), torch.ones(4, 8, 8)], audio=[torch.ones(5, 4), None], audio_ref_len=8
    )
    assert refs.video.shape == (1, 2, 4, 8, 8) and refs.audio.shape == (1, 2, 8, 4)
    assert refs.audio_lens.tolist() == [[5, 0]] and refs.audio[0, 0, 5:].abs().sum() == 0
    refs.validate(k_max=4, audio_ref_len=8)


def test_audio_stem_padding_is_exact():
    """A voice zero-padded to L embeds exactly like the same clip alone (masked stem)."""
    m = tiny_model()
    clip = torch.randn(5, 4)
    padded = IdentityRefs.from_lists(audio=[clip], audio_ref_len=8)
    with torch.no_grad():
        tok = m.audio_model.ref_tokens_raw(padded)[0][0, :5]
        alone = m.audio_model.patch_embedding(clip[None])[0]
    torch.testing.assert_close(tok, alone)
