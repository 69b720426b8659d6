"""Installed flite/festival voices speak, the voice bank caches embeddings, nearest_voice recognises voices."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from iap_bench.errors import MediaError
from iap_bench.generators import tts

pytestmark = pytest.mark.skipif(shutil.which("flite") is None or shutil.which("text2wave") is None,
                                reason="needs apt packages flite and festival")

EXPECTED = {"flite:kal", "flite:kal16", "flite:awb", "flite:rms", "flite:slt", "festival:kal_diphone",
            "festival:ked_diphone", "festival:cmu_us_slt_arctic_hts"}
SENTENCE = "Please call Stella and ask her to bring these things with her from the store."


@pytest.fixture(scope="module")
def encoder():
    from iap_bench.backends.speaker import SpeakerEncoder

    return SpeakerEncoder()


@pytest.fixture(scope="module")
def bank(encoder) -> tts.VoiceBank:
    return tts.VoiceBank(encoder)  # default on-disk cache: computed once per machine


def _voiced_fraction(wav: np.ndarray, sr: int) -> float:
    """Fraction of 20 ms frames within 30 dB of the loudest frame."""
    hop = sr // 50
    frames = wav[: len(wav) // hop * hop].reshape(-1, hop)
    rms = np.sqrt((frames.astype(np.float64) ** 2).mean(axis=1)) + 1e-9
    return float((20 * np.log10(rms / rms.max()) > -30).mean())


def test_catalogue_lists_every_installed_voice() -> None:
    names = {v.name for v in tts.installed_voices()}
    assert EXPECTED <= names
    assert tts.voice_by_name("slt").name == "flite:slt"
    assert tts.voice_by_name("voice_ked_diphone").name == "festival:ked_diphone"
    with pytest.raises(KeyError, match="not installed"):
        tts.voice_by_name("nonexistent_voice")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_voice_speaks_plausibly(name: str) -> None:
    voice = tts.voice_by_name(name)
    short, sr = tts.synthesize("Good morning.", voice)
    wav, sr2 = tts.synthesize(SENTENCE, voice)
    assert sr == sr2 and sr in (8000, 16000, 22050, 32000, 44100, 48000)
    assert wav.dtype == np.float32 and wav.ndim == 1
    dur = len(wav) / sr
    assert 2.5 < dur < 8.0, dur  # ~15 words at a normal speaking rate
    assert len(short) / sr < 0.6 * dur  # length follows the text
    assert np.abs(wav).max() > 0.05 and np.sqrt(np.mean(wav**2)) > 0.01
    assert 0.3 < _voiced_fraction(wav, sr) < 0.98  # speech with pauses, not silence or a constant tone


def test_resampled_output_rate() -> None:
    wav = tts.synthesize_at("Testing one two three.", tts.voice_by_name("kal"), 16000)  # kal is 8 kHz native
    native, sr = tts.synthesize("Testing one two three.", tts.voice_by_name("kal"))
    assert sr == 8000 and abs(len(wav) - 2 * len(native)) <= 2


def test_typographic_text_is_folded_and_cjk_refused() -> None:
    assert tts.to_ascii("It\u2019s \u201cfine\u201d \u2014 caf\u00e9") == "It's \"fine\" ,  cafe"
    wav, _ = tts.synthesize("It\u2019s a caf\u00e9.", tts.voice_by_name("slt"))
    assert np.abs(wav).max() > 0.05
    with pytest.raises(MediaError) as e:
        tts.synthesize("\u4f60\u597d\uff0c\u4eca\u5929\u5929\u6c14\u5f88\u597d\u3002", tts.voice_by_name("slt"))
    assert e.value.reason == "tts_language_unsupported"
    with pytest.raises(MediaError, match="empty"):
        tts.synthesize("   ", tts.voice_by_name("slt"))


def test_missing_binary_names_the_apt_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(FileNotFoundError, match="apt-get install flite"):
        tts.synthesize("hello", tts.Voice("flite", "slt"))
    with pytest.raises(FileNotFoundError, match="apt-get install festival"):
        tts.synthesize("hello", tts.Voice("festival", "ked_diphone"))


def test_voice_bank_caches_embeddings(encoder, tmp_path) -> None:
    voices = [tts.voice_by_name("awb")]
    first = tts.VoiceBank(encoder, voices, cache_dir=tmp_path)
    files = list(tmp_path.glob("*.npy"))
    assert len(files) == 1
    emb = first.embeddings["flite:awb"]
    assert emb.shape == (256,) and abs(float(np.linalg.norm(emb)) - 1) < 1e-3
    marker = np.roll(emb, 1)  # a second bank must read the cache, not recompute: plant a recognisable vector
    np.save(files[0], marker)
    second = tts.VoiceBank(encoder, voices, cache_dir=tmp_path)
    np.testing.assert_array_equal(second.embeddings["flite:awb"], marker)


@pytest.mark.parametrize("name", ["flite:awb", "flite:rms", "flite:slt", "festival:ked_diphone"])
def test_nearest_voice_recognises_the_speaker(bank: tts.VoiceBank, name: str) -> None:
    other_sentence = "Four score and seven years ago, our fathers brought forth a new nation on this continent."
    ref = tts.synthesize_at(other_sentence, tts.voice_by_name(name), 16000)
    voice, cos = bank.nearest_voice(ref)
    assert voice.name == name
    assert cos > 0.8
    scores = bank.scores(ref)
    assert set(scores) == {v.name for v in bank.voices}
    assert max(s for v, s in scores.items() if v != name) < cos
