"""Installed flite/festival voices speak; classical voice features and the standardised matcher; the voice bank
caches features per voice and method version; nearest_voice recognises voices."""

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
def bank() -> tts.VoiceBank:
    return tts.VoiceBank()  # default on-disk cache: computed once per machine


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


# ---- the matcher: a pure function of feature arrays ------------------------------------------------------------
def _synthetic_bank(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Eight synthetic voices [8, D] with very different scales per feature, and a noisy copy of voice 5 [D]."""
    rng = np.random.default_rng(seed)
    d = tts.FEATURE_DIM
    scale = np.concatenate([np.geomspace(1e-3, 1e3, d - 2), [0.2, 0.05]])  # wildly different units per column
    voices = rng.standard_normal((8, d)) * scale + rng.standard_normal(d) * 10 * scale
    ref = voices[5] + 0.05 * rng.standard_normal(d) * scale
    return voices, ref


def test_match_distances_is_a_pure_function_of_features() -> None:
    voices, ref = _synthetic_bank()
    v0, r0 = voices.copy(), ref.copy()
    dist = tts.match_distances(ref, voices)
    assert dist.shape == (8,) and dist.dtype == np.float64 and (dist >= 0).all()
    assert int(np.argmin(dist)) == 5  # the planted voice, despite columns spanning six orders of magnitude
    np.testing.assert_array_equal(voices, v0)  # inputs untouched
    np.testing.assert_array_equal(ref, r0)
    np.testing.assert_array_equal(tts.match_distances(ref, voices), dist)  # no hidden state
    np.testing.assert_array_equal(tts.match_distances(ref.tolist(), voices.tolist()), dist)  # plain lists too
    # z-scoring: any affine change of units of a feature (same for every row) leaves the distances unchanged
    a = np.random.default_rng(1).uniform(0.1, 10, tts.FEATURE_DIM) * np.where(np.arange(tts.FEATURE_DIM) % 2, 1, -1)
    b = np.random.default_rng(2).normal(0, 100, tts.FEATURE_DIM)
    np.testing.assert_allclose(tts.match_distances(ref * a + b, voices * a + b), dist, rtol=1e-9, atol=1e-9)
    # the order of the catalogue does not matter
    perm = np.random.default_rng(3).permutation(8)
    np.testing.assert_allclose(tts.match_distances(ref, voices[perm]), dist[perm], rtol=1e-12)
    # a feature with no spread (same in every voice and the reference) contributes nothing
    flat_v, flat_r = voices.copy(), ref.copy()
    flat_v[:, 3] = flat_r[3] = 7.0
    assert np.isfinite(tts.match_distances(flat_r, flat_v)).all()
    # the reference identical to a catalogue voice is at distance 0 from it
    assert tts.match_distances(voices[2], voices)[2] == 0.0
    with pytest.raises(ValueError, match="need ref"):
        tts.match_distances(ref[:-1], voices)
    with pytest.raises(ValueError, match="finite"):
        tts.match_distances(np.full_like(ref, np.nan), voices)


def test_matcher_blocks_weigh_equally() -> None:
    """Pitch (2 of 42 features) counts as much as the 20 MFCC means: each block weighs the same."""
    ref = np.zeros(tts.FEATURE_DIM)
    voices = np.zeros((3, tts.FEATURE_DIM))
    voices[0, -2:] = 1.0  # voice 0 differs from the reference only in its two log-F0 statistics
    voices[1, :20] = 1.0  # voice 1 differs only in its twenty MFCC means; voice 2 equals the reference
    dist = tts.match_distances(ref, voices)
    assert dist[2] == 0 and dist[0] > 0
    assert abs(dist[0] - dist[1]) < 1e-12 * dist[0]  # unweighted, the MFCC offset would count sqrt(10)x more


def test_voice_features_of_a_synthetic_voice() -> None:
    sr = tts.FEATURE_SR
    t = np.arange(int(2.5 * sr)) / sr
    f0 = 150 * (1 + 0.05 * np.sin(2 * np.pi * 1.5 * t))  # a gently gliding 150 Hz "voice" with harmonics
    phase = 2 * np.pi * np.cumsum(f0) / sr
    wav = sum(np.sin(k * phase) / k for k in range(1, 12)).astype(np.float32)
    wav *= (0.5 + 0.5 * (np.sin(2 * np.pi * 2 * t) > -0.6)).astype(np.float32)  # syllable-like level changes
    feats = tts.voice_features(wav)
    assert feats.shape == (tts.FEATURE_DIM,) and np.isfinite(feats).all()
    assert abs(np.exp(feats[-2]) - 150) < 6  # median F0
    assert 0 < feats[-1] < np.log(1.1)  # IQR of log F0: the +-5 % glide
    np.testing.assert_allclose(tts.voice_features(0.1 * wav), feats, rtol=1e-4, atol=1e-4)  # level-invariant
    with pytest.raises(MediaError, match="silent") as e:
        tts.voice_features(np.zeros(sr, np.float32))
    assert e.value.reason == "no_speech"
    blip = 1e-3 * np.random.default_rng(0).standard_normal(sr).astype(np.float32)  # 80 ms of voice in 1 s of hiss
    blip[8000:8000 + 1280] += np.sin(2 * np.pi * 150 * np.arange(1280) / sr).astype(np.float32)
    with pytest.raises(MediaError, match="voiced frames") as e:
        tts.voice_features(blip)
    assert e.value.reason == "no_speech"


# ---- the bank on real voices ------------------------------------------------------------------------------------
def test_voice_bank_caches_features(bank: tts.VoiceBank, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    voices = [tts.voice_by_name("awb")]
    first = tts.VoiceBank(voices, cache_dir=tmp_path)
    files = list(tmp_path.glob("*.npy"))
    assert len(files) == 1 and files[0] == first.cache_path(voices[0])
    feats = first.features["flite:awb"]
    assert feats.shape == (tts.FEATURE_DIM,) and np.isfinite(feats).all()
    np.testing.assert_allclose(feats, bank.features["flite:awb"], rtol=1e-6)  # synthesis + features: deterministic
    marker = feats + 1.0  # a second bank must read the cache, not recompute: plant a recognisable vector
    np.save(files[0], marker)
    second = tts.VoiceBank(voices, cache_dir=tmp_path)
    np.testing.assert_array_equal(second.features["flite:awb"], marker)
    monkeypatch.setattr(tts, "FEATURE_VERSION", tts.FEATURE_VERSION + "-next")  # a new method: a new cache entry
    assert tts.VoiceBank(voices, cache_dir=tmp_path, load_features=False).cache_path(voices[0]) != files[0]
    lazy = tts.VoiceBank(voices, cache_dir=None, load_features=False)
    assert lazy._features is None and lazy.voice("awb").name == "flite:awb"


@pytest.mark.parametrize("name", ["flite:awb", "flite:rms", "flite:slt", "festival:cmu_us_slt_arctic_hts"])
def test_nearest_voice_recognises_the_speaker(bank: tts.VoiceBank, name: str) -> None:
    other_sentence = "Four score and seven years ago, our fathers brought forth a new nation on this continent."
    ref = tts.synthesize_at(other_sentence, tts.voice_by_name(name), 16000)
    voice, dist = bank.nearest_voice(ref)
    assert voice.name == name
    distances = bank.distances(ref)
    assert set(distances) == {v.name for v in bank.voices}
    assert distances[name] == dist and min(d for v, d in distances.items() if v != name) > 1.2 * dist
