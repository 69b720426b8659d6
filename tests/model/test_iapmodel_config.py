"""Config presets, YAML building, serialisation, and ablation configs differing only where named."""

from pathlib import Path

import pytest
import yaml

from model.config import IAPConfig, build_config

CONF = Path(__file__).resolve().parents[2] / "conf"


def _load(p: Path) -> dict:
    return yaml.safe_load(p.read_text())


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out |= _flat(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out


def test_presets_and_roundtrip():
    for cfg in (IAPConfig.tiny(), IAPConfig.mid(), IAPConfig.ovi(), IAPConfig.ovi("960x960_10s")):
        assert IAPConfig.from_dict(cfg.to_dict()) == cfg
    o = IAPConfig.ovi()
    assert (o.dim, o.num_layers, o.num_heads, o.ffn_dim, o.text_dim, o.freq_dim) == (3072, 30, 24, 14336, 4096, 256)
    assert (o.video.in_dim, o.video.patch_size, o.audio.in_dim, o.audio.stem_hidden_dim) == (48, (1, 2, 2), 20, 8192)
    assert (o.video.max_latent_frames, o.audio.max_latent_len, o.identity.audio_ref_len) == (31, 157, 157)
    ten = IAPConfig.ovi("960x960_10s")
    assert (ten.video.max_latent_frames, ten.audio.max_latent_len) == (61, 314)
    assert IAPConfig.tiny().head_dim == 32 and IAPConfig.mid().head_dim % 6 < 3


def test_yaml_model_configs_build():
    assert build_config(_load(CONF / "model" / "tiny.yaml")) == IAPConfig.tiny()
    assert build_config(_load(CONF / "model" / "mid.yaml")).dim == 256
    ovi = build_config(_load(CONF / "model" / "ovi.yaml"))
    assert ovi.ovi_checkpoint == "960x960_5s" and ovi.gradient_checkpointing
    over = build_config({"preset": "tiny", "fusion": {"ref_policy": "none"}, "ref_time_layout": "scaled_aligned"})
    assert over.fusion.ref_policy == "none" and over.ref_time_layout == "scaled_aligned" and over.dim == 64


def test_bad_config_values_are_clear_errors():
    with pytest.raises(ValueError, match="unknown IAPConfig keys"):
        build_config({"preset": "tiny", "dimm": 3})
    with pytest.raises(ValueError, match="attention_backend"):
        build_config({"preset": "tiny", "attention_backend": "flash"})
    with pytest.raises(ValueError, match="unknown model preset"):
        build_config({"preset": "huge"})
    with pytest.raises(ValueError, match="unknown Ovi checkpoint"):
        IAPConfig.ovi("1080p")


EXPECTED_DIFFS = {
    "full": set(),
    "multi_view": set(),
    "no_subject_anchor": {"use_subject_anchor"},
    "no_identity_embedding": {"use_identity_embedding"},
    "one_stage": {"stages", "identity.max_views"},
    "two_stage": {"stages", "identity.max_views"},
}


@pytest.mark.parametrize("name", sorted(EXPECTED_DIFFS))
def test_ablation_differs_from_full_only_where_named(name):
    base = _load(CONF / "model" / "tiny.yaml")
    full = _flat(build_config(base, _load(CONF / "ablation" / "full.yaml")).to_dict())
    abl_yaml = _load(CONF / "ablation" / f"{name}.yaml")
    assert abl_yaml["name"] == name and abl_yaml["label"]
    abl = _flat(build_config(base, abl_yaml).to_dict())
    assert {k for k in full if full[k] != abl[k]} == EXPECTED_DIFFS[name]


def test_ablation_models_build():
    from model.fusion_model import IAPFusionModel

    base = _load(CONF / "model" / "tiny.yaml")
    m = IAPFusionModel(build_config(base, _load(CONF / "ablation" / "no_identity_embedding.yaml")))
    assert m.identity_embedding is None
    assert build_config(base, _load(CONF / "ablation" / "one_stage.yaml")).stages == ("2",)
