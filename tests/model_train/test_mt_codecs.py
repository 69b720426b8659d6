"""Codecs: tiny versions of the real classes give the right latent shapes/strides; real loaders are
local-only and name the missing file; the Ovi/Wan checkpoint layouts load into our modules."""

from __future__ import annotations

import pytest
import torch

from iap_bench.errors import MissingCheckpointError
from model import codecs as C


@pytest.fixture(scope="module")
def tiny():
    return C.build_codecs("tiny", 4, 4, 32, 16)


def test_tiny_video_codec_strides(tiny):
    px = torch.rand(1, 3, 9, 64, 96) * 2 - 1
    z = tiny.video.encode(px)
    assert z.shape == (1, 4, 3, 4, 6) == (1, *tiny.video.latent_shape(9, 64, 96))
    out = tiny.video.decode(z)
    assert out.shape == px.shape and out.min() >= -1 and out.max() <= 1
    with pytest.raises(ValueError, match="4n\\+1"):
        tiny.video.encode(torch.zeros(1, 3, 8, 64, 64))


def test_tiny_audio_codec_rate(tiny):
    wave = torch.sin(torch.arange(16000) / 16000 * 2 * torch.pi * 220)[None] * 0.5
    z = tiny.audio.encode(wave)
    assert z.shape == (1, 31, 4) and tiny.audio.latent_len(16000) == 31  # 31.25 latents/s, floor
    assert tiny.audio.samples_per_latent == 512
    y = tiny.audio.decode(z)
    assert y.shape == (1, 31 * 512) and y.abs().max() <= 1


def test_mel_matches_mmaudio_frame_count():
    mel = C.MelSpectrogram()
    n = round(121 / 24 * 16000)  # Ovi's 5 s clip: 80667 samples -> 315 mel frames -> 157 latents
    assert mel(torch.zeros(1, n)).shape == (1, 80, 315)
    # a 1 kHz tone peaks in the right mel bin; silence sits at log10(clip) = -5
    tone = torch.sin(torch.arange(16000) / 16000 * 2 * torch.pi * 1000)[None]
    m = mel(tone)[0].mean(-1)
    import librosa

    centre = librosa.mel_frequencies(82, fmin=0, fmax=8000)[1:-1]
    assert abs(centre[int(m.argmax())] - 1000) < 120
    assert torch.allclose(mel(torch.zeros(1, 4096)), torch.full((1, 80, 16), -5.0))


def test_tiny_text_codec_trims_and_zero_pads(tiny):
    e = tiny.text.encode(["hello world", "a"])
    assert e.shape == (2, 16, 32)
    assert e[1, 2:].abs().sum() == 0 and e[1, :2].abs().sum() > 0  # "a" + EOS, then exact zeros
    assert torch.equal(tiny.text.encode(["a"])[0], e[1])  # batch-independent
    assert C.clean_text("  a&amp;b \n\t c ") == "a&b c"


def test_real_layouts_have_the_checkpoint_keys():
    with torch.device("meta"):
        vae, voc = C.AudioVAE(), C.Vocoder()
    keys = set(vae.state_dict())
    for k in ("data_mean", "encoder.conv_in.weight", "encoder.down.0.downsample.conv1.weight",
              "encoder.down.2.block.1.conv2.weight", "encoder.mid.attn_1.qkv.weight", "encoder.learnable_gain",
              "decoder.up.1.upsample.conv.weight", "decoder.up.0.block.2.conv1.weight", "decoder.conv_out.weight"):
        assert k in keys, k
    assert vae.state_dict()["data_mean"].shape == (1, 80, 1)
    vkeys = set(voc.state_dict())
    assert "resblocks.17.activations.5.downsample.lowpass.filter" in vkeys
    assert "ups.5.0.parametrizations.weight.original1" in vkeys and "activation_post.act.beta" in vkeys
    assert len(voc.resblocks) == 18 and voc.hop == 256


def test_audio_codec_loads_mmaudio_layout_files(tmp_path):
    torch.manual_seed(1)
    vae = C.AudioVAE(C.tiny_audio_vae_config())
    vae.data_mean.normal_()
    voc = C.Vocoder(C.tiny_vocoder_config())
    torch.save(vae.state_dict(), tmp_path / "v1-16.pth")
    torch.save({"generator": voc.state_dict()}, tmp_path / "best_netG.pt")
    codec = C.load_audio_codec(tmp_path, tmp_path / "best_netG.pt", vae_config=C.tiny_audio_vae_config(),
                               vocoder_config=C.tiny_vocoder_config())
    assert torch.equal(codec.vae.data_mean, vae.data_mean)
    wave = torch.randn(1, 8192) * 0.1
    ref = C.AudioCodec(vae.eval(), voc.eval())
    assert torch.allclose(codec.encode(wave), ref.encode(wave), atol=1e-5)
    z = codec.encode(wave)
    assert torch.allclose(codec.decode(z), ref.decode(z), atol=1e-5)  # weight norm folded == parametrised


def test_wan_t5_key_map_round_trips():
    from transformers import UMT5EncoderModel

    torch.manual_seed(0)
    a = UMT5EncoderModel(C.tiny_umt5_config(32)).eval()
    wan = C.hf_t5_to_wan(a.state_dict())
    assert "blocks.1.ffn.gate.0.weight" in wan and "token_embedding.weight" in wan
    b = UMT5EncoderModel(C.tiny_umt5_config(32)).eval()
    b.load_state_dict(C.wan_t5_to_hf(wan), strict=False)
    ids = torch.randint(3, 200, (1, 12))
    assert torch.allclose(a(input_ids=ids).last_hidden_state, b(input_ids=ids).last_hidden_state)


@pytest.mark.parametrize("part, filename", [("audio", "v1-16.pth"), ("video", "config.json"),
                                            ("text", "models_t5_umt5-xxl-enc-bf16.pth")])
def test_missing_files_name_the_file(tmp_path, monkeypatch, part, filename):
    monkeypatch.setenv("IAP_WEIGHTS", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    load = {"audio": lambda: C.load_audio_codec(tmp_path / "nope", None),
            "video": lambda: C.load_video_vae(tmp_path / "vae"),
            "text": lambda: C.load_text_codec(tmp_path / "t5", tmp_path / "tok", 16)}[part]
    with pytest.raises(MissingCheckpointError) as e:
        load()
    msg = str(e.value)
    assert filename in msg and str(tmp_path) in msg and "how to get it" in msg


def test_missing_vocoder_and_bundle_error(tmp_path, monkeypatch):
    monkeypatch.setenv("IAP_WEIGHTS", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    torch.save(C.AudioVAE(C.tiny_audio_vae_config()).state_dict(), tmp_path / "v1-16.pth")
    with pytest.raises(MissingCheckpointError, match="best_netG.pt"):
        C.load_audio_codec(tmp_path, None, vae_config=C.tiny_audio_vae_config())
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("IAP_WEIGHTS", str(empty))
    monkeypatch.chdir(empty)
    with pytest.raises(MissingCheckpointError) as e:
        C.build_codecs("real", 48, 20, 4096, 512, C.CodecPaths(video_vae=str(tmp_path / "v")))
    assert "config.json" in str(e.value) and "models_t5_umt5-xxl-enc-bf16.pth" in str(e.value)


def test_video_vae_loads_a_local_diffusers_folder(tmp_path):
    tiny = C.tiny_video_codec(4, seed=2)
    tiny.vae.save_pretrained(tmp_path / "pipe" / "vae")
    for path in (tmp_path / "pipe", tmp_path / "pipe" / "vae"):
        codec = C.load_video_vae(path)
        px = torch.rand(1, 3, 5, 32, 32) * 2 - 1
        assert torch.allclose(codec.encode(px), tiny.encode(px), atol=1e-5)
    assert C.wan22_vae_kwargs()["z_dim"] == 48 and len(C.WAN22_LATENTS_STD) == 48
    with pytest.raises(ValueError, match="convert_wan_to_diffusers"):
        (tmp_path / "Wan2.2_VAE.pth").write_bytes(b"x")
        C.load_video_vae(tmp_path / "Wan2.2_VAE.pth")


def test_text_codec_loads_wan_pth_and_tokenizer_folder(tmp_path):
    """Wan-layout umT5 .pth + a local T5 tokenizer folder (tiny sentencepiece model trained here)."""
    import sentencepiece as spm
    from transformers import T5Tokenizer, UMT5EncoderModel

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(f"the quick brown fox {i} jumps over the lazy dog" for i in range(200)))
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(tmp_path / "sp"), vocab_size=48, pad_id=0,
                                   eos_id=1, unk_id=2, bos_id=-1, minloglevel=2)
    T5Tokenizer(vocab_file=str(tmp_path / "sp.model"), extra_ids=0).save_pretrained(tmp_path / "tok")
    torch.manual_seed(0)
    ref = UMT5EncoderModel(C.tiny_umt5_config(32)).eval()
    torch.save(C.hf_t5_to_wan(ref.state_dict()), tmp_path / "models_t5_umt5-xxl-enc-bf16.pth")
    codec = C.load_text_codec(tmp_path, tmp_path / "tok", 12, dtype=torch.float32, config=C.tiny_umt5_config(32))
    emb = codec.encode(["the lazy fox", "dog"])
    ids, mask = codec.tokenizer(["the lazy fox"], 12)
    assert emb.shape == (2, 12, 32) and ids[0, int(mask.sum()) - 1] == 1  # EOS closes the real tokens
    want = ref(input_ids=ids, attention_mask=mask).last_hidden_state[0] * mask[0, :, None]
    assert torch.allclose(emb[0], want, atol=1e-5)
    assert emb[1, int(codec.tokenizer(["dog"], 12)[1].sum()):].abs().sum() == 0
