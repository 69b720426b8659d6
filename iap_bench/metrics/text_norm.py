"""Seed-TTS-eval text normalisation and per-utterance WER (METRICS.md §1 WER).

Delete ASCII + ``zhon.hanzi`` punctuation except the ASCII apostrophe, collapse double spaces once;
EN: lowercase, word-level; ZH: zhconv to zh-cn, one token per character (CER reported as WER).
Counts come from ``jiwer.process_words`` (the jiwer>=3 replacement of ``compute_measures``).
"""

from __future__ import annotations

import string
from dataclasses import dataclass

from zhon.hanzi import punctuation as _HANZI_PUNCT

NORMALISER = "seed-tts-eval v1"  # bump when the normalisation changes: part of WER's identity
PUNCTUATION = "".join(c for c in _HANZI_PUNCT + string.punctuation if c != "'")
_DELETE = str.maketrans("", "", PUNCTUATION)


@dataclass(frozen=True)
class WerResult:
    """Per-utterance error counts on normalised text; ``wer`` = (S + D + I) / len(ref)."""

    wer: float
    substitutions: int
    deletions: int
    insertions: int
    hits: int
    ref_norm: str
    hyp_norm: str


def strip_punctuation(text: str) -> str:
    """Delete every ASCII and zhon.hanzi punctuation character except the apostrophe; collapse '  ' once."""
    return text.translate(_DELETE).replace("  ", " ")


def normalize(text: str, lang: str) -> str:
    """Seed-TTS-eval normalisation: EN -> lowercase words; ZH -> simplified chars separated by spaces."""
    if lang == "zh":
        import zhconv

        text = strip_punctuation(zhconv.convert(text, "zh-cn"))
        return " ".join(c for c in text if not c.isspace())
    if lang == "en":
        return strip_punctuation(text).lower()
    raise ValueError(f"unsupported language {lang!r} (expected 'en' or 'zh')")


def wer(ref: str, hyp: str, lang: str) -> WerResult:
    """Word (EN) or character (ZH) error rate of one utterance after normalisation.

    Raises ValueError if the normalised reference is empty (WER undefined).
    """
    import jiwer

    r, h = normalize(ref, lang), normalize(hyp, lang)
    if not r.split():
        raise ValueError("empty reference after normalisation")
    if not h.split():  # all deletions; jiwer needs a non-empty hypothesis string in some versions
        n = len(r.split())
        return WerResult(1.0, 0, n, 0, 0, r, h)
    out = jiwer.process_words(r, h)
    return WerResult(float(out.wer), out.substitutions, out.deletions, out.insertions, out.hits, r, h)
