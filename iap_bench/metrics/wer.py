"""WER, offline backend: Whisper tiny.en (faster-whisper, int8 CPU) + Seed-TTS-eval normalisation.

Hypothesis = the whole generated track; reference = ``item.speech_text()`` (all lines in script order).
English only: the offline model cannot transcribe Mandarin, so ZH items are recorded failures.
Not comparable with the paper's SenseVoice numbers (different ASR).
"""

from __future__ import annotations

from collections.abc import Sequence

from iap_bench.benchmark.schema import Item
from iap_bench.errors import MediaError
from iap_bench.metrics.base import EvalSample, Metric, MetricValue, register_metric
from iap_bench.metrics.text_norm import wer


@register_metric("wer/offline")
class OfflineWER(Metric):
    """Per-item word error rate (fraction); extras hold hypothesis, reference and the > 0.5 flag."""

    name = "wer"
    direction = "lower"
    backend = "offline-whisper-tiny.en"
    version = "1"
    views = ("audio16k",)
    worst = 1.0  # silent / speechless output: every reference word deleted
    path_params = ("model_dir",)

    def __init__(self, model_dir: str | None = None, beam_size: int = 5) -> None:
        self.model_dir = model_dir
        self.beam_size = beam_size
        self._asr = None

    def load(self) -> None:
        if self._asr is None:
            from iap_bench.backends.asr import WhisperASR

            self._asr = WhisperASR(self.model_dir, beam_size=self.beam_size, cpu_threads=self.threads,
                                   device=self.device)

    def weight_files(self) -> list:
        from iap_bench.backends.asr import whisper_weight_specs

        return [(spec, self.model_dir) for spec in whisper_weight_specs()]

    def aux_identity(self) -> dict[str, str]:
        from iap_bench.media.audio import resampler_identity
        from iap_bench.metrics.text_norm import NORMALISER

        return {"resampler": resampler_identity(), "normaliser": NORMALISER, "decoding": "int8 temperature=0"}

    def checkpoint_id(self) -> str:
        from iap_bench.backends.asr import dir_sha256, resolve_model_dir

        return dir_sha256(resolve_model_dir(self.model_dir))

    def score(self, samples: Sequence[EvalSample]) -> list[MetricValue]:
        self.load()
        cache: dict[str, str] = {}  # same clip scored for several items: transcribe it once
        return [self._score_one(s, cache) for s in samples]

    def _transcript(self, sample: EvalSample, cache: dict[str, str]) -> str:
        key = sample.media.content_hash
        if key not in cache:
            cache[key] = self._asr.transcribe(sample.media.audio(16000), "en")
        return cache[key]

    def item_failure(self, item: Item) -> str | None:
        return None if item.language == "en" else f"unsupported_language:{item.language}"

    def _score_one(self, sample: EvalSample, cache: dict[str, str]) -> MetricValue:
        pre = self.item_failure(sample.item)
        if pre:
            return MetricValue.fail(pre)
        lang = sample.item.language
        ref = sample.item.speech_text()
        try:
            hyp = self._transcript(sample, cache)
            r = wer(ref, hyp, lang)
        except MediaError as e:
            return MetricValue.fail(e.reason, detail=e.detail)
        except ValueError as e:  # empty reference after normalisation
            return MetricValue.fail("bad_reference", detail=str(e))
        return MetricValue(r.wer, extras={"hyp": hyp, "ref": ref, "over_0.5": r.wer > 0.5,
                                          "substitutions": r.substitutions, "deletions": r.deletions,
                                          "insertions": r.insertions})
