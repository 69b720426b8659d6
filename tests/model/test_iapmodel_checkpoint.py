"""Ovi key manifest and strict loading (identity key map), IAP save/load round trip, clear errors."""

import pytest
import torch
from iapmodel_helpers import make_inputs, make_refs, tiny_model
from safetensors.torch import save_file

from iap_bench.errors import MissingCheckpointError
from model.checkpoint import (
    CheckpointKeyError,
    build_from_checkpoint,
    export_video_to_diffusers,
    iap_new_keys,
    import_video_from_diffusers,
    load_checkpoint,
    load_ovi_weights,
    manifest_num_params,
    ovi_key_manifest,
    read_safetensors_header,
    save_checkpoint,
)
from model.config import IAPConfig
from model.fusion_model import IAPFusionModel


def _random_ovi_state(cfg: IAPConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random state dict with Ovi's key names and this config's shapes (what an Ovi file holds)."""
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(s, generator=g) for k, s in ovi_key_manifest(cfg).items()}


def test_model_keys_are_ovi_keys_plus_new_iap_keys():
    m = tiny_model()
    own = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    assert own == ovi_key_manifest(m.cfg) | iap_new_keys(m.cfg)
    assert "video_model.blocks.1.modulation.modulation" in own and "audio_model.head.head.weight" in own
    assert "audio_model.patch_embedding.2.w2.weight" in own and "identity_embedding.weight" in own


def test_ovi_preset_on_meta_has_expected_parameter_count():
    cfg = IAPConfig.ovi("960x960_5s")
    with torch.device("meta"):
        m = IAPFusionModel(cfg)
    n = sum(p.numel() for p in m.parameters())
    ovi_n, new_n = manifest_num_params(ovi_key_manifest(cfg)), manifest_num_params(iap_new_keys(cfg))
    assert ovi_n == pytest.approx(11.66e9, rel=1e-3)
    assert new_n == pytest.approx(1.70e9, rel=1e-2)
    assert n == ovi_n + new_n
    sd = m.state_dict()
    assert tuple(sd["video_model.patch_embedding.weight"].shape) == (3072, 48, 1, 2, 2)
    assert tuple(sd["audio_model.patch_embedding.2.w1.weight"].shape) == (8192, 3072, 7)
    assert tuple(sd["video_model.head.head.weight"].shape) == (192, 3072)
    assert tuple(sd["audio_model.head.head.weight"].shape) == (20, 3072)
    assert tuple(sd["video_model.time_projection.1.weight"].shape) == (18432, 3072)
    assert len([k for k in sd if k.startswith("video_model.blocks.") and k.endswith("self_attn.q.weight")]) == 30


def test_load_ovi_file_identity_map_and_init_ref(tmp_path):
    cfg = IAPConfig.tiny()
    state = _random_ovi_state(cfg)
    path = tmp_path / "ovi_tiny.safetensors"
    save_file(state, str(path))
    assert read_safetensors_header(path) == ovi_key_manifest(cfg)
    m = IAPFusionModel(cfg)
    report = load_ovi_weights(m, path)
    assert set(report["missing"]) == set(iap_new_keys(cfg)) and report["unexpected"] == []
    own = m.state_dict()
    for k, v in state.items():
        assert torch.equal(own[k], v), k
    sa = m.audio_model.blocks[1].self_attn
    assert torch.equal(sa.q_ref.weight, sa.q.weight) and torch.equal(sa.norm_k_ref.weight, sa.norm_k.weight)
    v, a, t, text = make_inputs()
    with torch.no_grad():
        out = m(v, a, t, text, make_refs(k=2))
    assert torch.isfinite(out[0]).all()


def test_ovi_key_errors_are_clear(tmp_path):
    cfg = IAPConfig.tiny()
    state = _random_ovi_state(cfg)
    state.pop("video_model.blocks.0.cross_attn.k_fusion.weight")
    state["video_model.blocks.0.bogus"] = torch.zeros(1)
    with pytest.raises(CheckpointKeyError) as ei:
        load_ovi_weights(IAPFusionModel(cfg), state)
    msg = str(ei.value)
    assert "video_model.blocks.0.cross_attn.k_fusion.weight" in msg and "video_model.blocks.0.bogus" in msg
    assert "missing keys (1)" in msg and "unexpected keys (1)" in msg
    bad = _random_ovi_state(cfg)
    bad["audio_model.head.head.weight"] = torch.zeros(3, 64)
    with pytest.raises(CheckpointKeyError, match="shape mismatches"):
        load_ovi_weights(IAPFusionModel(cfg), bad)
    with pytest.raises(MissingCheckpointError) as me:
        load_ovi_weights(IAPFusionModel(cfg), tmp_path / "model_960x960.safetensors")
    assert "model_960x960.safetensors" in str(me.value) and "chetwinlow1/Ovi" in str(me.value)


def test_save_load_same_output(tmp_path):
    m = tiny_model(seed=3, decouple_o=True)
    with torch.no_grad():
        for n, p in m.named_parameters():
            if "_ref" in n:
                p.add_(0.01 * torch.randn_like(p))
    path = save_checkpoint(m, tmp_path / "iap.safetensors", extra={"stage": "2", "step": 17})
    m2 = tiny_model(seed=99, decouple_o=True)
    assert load_checkpoint(m2, path) == {"stage": "2", "step": 17}
    m3 = build_from_checkpoint(path).eval()
    v, a, t, text = make_inputs()
    refs = make_refs(k=2, lens=[[5, 8]])
    with torch.no_grad():
        o1, o2, o3 = m(v, a, t, text, refs), m2(v, a, t, text, refs), m3(v, a, t, text, refs)
    for x, y, z in zip(o1, o2, o3):
        assert torch.equal(x, y) and torch.equal(x, z)
    with pytest.raises(CheckpointKeyError, match="o_ref"):
        load_checkpoint(tiny_model(), path)  # a model without o_ref: unexpected keys named
    with pytest.raises(MissingCheckpointError, match="nope.safetensors"):
        load_checkpoint(m, tmp_path / "nope.safetensors")


def _diffusers_wan(cfg: IAPConfig):
    from diffusers import WanTransformer3DModel

    return WanTransformer3DModel(
        patch_size=cfg.video.patch_size, num_attention_heads=cfg.num_heads, attention_head_dim=cfg.head_dim,
        in_channels=cfg.video.in_dim, out_channels=cfg.video.out_dim, text_dim=cfg.text_dim, freq_dim=cfg.freq_dim,
        ffn_dim=cfg.ffn_dim, num_layers=cfg.num_layers, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
        eps=cfg.eps,
    ).eval()


def test_diffusers_export_roundtrip_and_video_tower_parity():
    """Video tower (no refs, video mode) == diffusers' independent WanTransformer3DModel with exported weights."""
    m = tiny_model(seed=4)
    with torch.no_grad():  # non-trivial modulation tables and norms
        for n, p in m.named_parameters():
            if "modulation" in n or "norm" in n:
                p.add_(0.1 * torch.randn_like(p))
    exported, left = export_video_to_diffusers(m.state_dict())
    assert all(("_fusion" in k or "_ref" in k or not k.startswith("video_model.")) for k in left)
    wan = _diffusers_wan(m.cfg)
    assert {k: tuple(v.shape) for k, v in wan.state_dict().items()} == {k: tuple(v.shape) for k, v in exported.items()}
    wan.load_state_dict(exported, strict=True)
    back = import_video_from_diffusers(exported)
    own = m.state_dict()
    assert all(torch.equal(own[k], v) for k, v in back.items()) and len(back) == len(exported)
    v, _, _, _ = make_inputs()
    text = torch.randn(1, m.cfg.text_len, m.cfg.text_dim)  # full length: diffusers does not pad
    t = torch.tensor([637.0])
    with torch.no_grad():
        ours, _ = m(v, None, t, text, mode="video")
        theirs = wan(hidden_states=v, timestep=t, encoder_hidden_states=text, return_dict=False)[0]
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
