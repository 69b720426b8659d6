"""Seed-TTS-eval normalisation and WER/CER counts."""

from __future__ import annotations

import pytest

from iap_bench.metrics.text_norm import normalize, strip_punctuation, wer


def test_en_keeps_apostrophe_drops_punctuation_and_lowercases() -> None:
    assert normalize("Hello, World! It's  fine.", "en") == "hello world it's fine"
    assert normalize("“Quoted” — dash; (paren)", "en") == "quoted dash paren"


def test_double_space_collapsed_once_like_seed_tts() -> None:
    # str.replace('  ', ' ') once: four spaces become two, not one (jiwer then splits on whitespace)
    assert strip_punctuation("a    b") == "a  b"
    assert wer("a    b", "a b", "en").wer == 0.0


def test_en_wer_counts_words() -> None:
    r = wer("The cat sat on the mat.", "the cat sat on a mat", "en")
    assert (r.substitutions, r.deletions, r.insertions) == (1, 0, 0)
    assert r.wer == pytest.approx(1 / 6)
    assert wer("Don't stop.", "dont stop", "en").wer == pytest.approx(0.5)  # apostrophe is kept


def test_zh_traditional_to_simplified_and_character_level() -> None:
    assert normalize("說話，語言！", "zh") == "说 话 语 言"
    r = wer("今天天气很好。", "今天天氣很好", "zh")  # traditional 氣 == simplified 气
    assert r.wer == 0.0
    r = wer("今天天气很好", "今天天汽很好", "zh")
    assert r.substitutions == 1 and r.wer == pytest.approx(1 / 6)


def test_zh_fullwidth_punctuation_removed() -> None:
    assert normalize("你好「世界」…《书》", "zh") == "你 好 世 界 书"


def test_empty_hypothesis_is_all_deletions_and_empty_reference_raises() -> None:
    assert wer("one two three", "", "en").wer == 1.0
    with pytest.raises(ValueError):
        wer("...", "hello", "en")
    with pytest.raises(ValueError):
        normalize("hello", "fr")
