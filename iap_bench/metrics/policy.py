"""Failure policy: which per-sample failures count against the model and which are excluded.

A fault of the generated sample (no audio stream, silence, no speech, no face, undecodable or missing
output, a failed generation) counts against the model: the metric's worst value (WER 1.0, similarities 0).
For unbounded metrics (no worst value: FD, Sync-D) such a sample is excluded and the leaderboard shows the
row's coverage. Faults outside the model (a language the metric's backend does not support, a missing or
unusable reference) are excluded. Transient errors (bugs, out of memory) are never stored.
"""

from __future__ import annotations

from iap_bench.metrics.base import Metric, MetricValue

# Reason codes (the text before the first ':') that are faults of the generated sample.
SAMPLE_FAULTS = frozenset({
    "decode_error", "empty", "no_video", "no_audio", "silent", "no_face", "no_speech", "missing_sample",
    "generation_failed", "unsupported", "nonfinite_audio",
})
# Generation failures caused by the item's own inputs (a missing or unusable reference, an empty script):
# recorded with their own code, not as generation_failed, so they are excluded rather than penalised.
INPUT_FAULTS = frozenset({"bad_reference", "bad_input", "unbound_reference"})


def reason_code(failure: str) -> str:
    """Pure: the short code of a failure reason ('no_speech: ...' -> 'no_speech')."""
    return failure.split(":", 1)[0].strip()


def is_sample_fault(failure: str | None) -> bool:
    """Pure: True when the failure is the generated sample's (counts against the model)."""
    return failure is not None and reason_code(failure) in SAMPLE_FAULTS


def apply_policy(worst: float | None, value: MetricValue) -> MetricValue:
    """Pure: a sample fault becomes the metric's worst value (reason kept); everything else is unchanged."""
    if value.value is not None or value.transient or not is_sample_fault(value.failure):
        return value
    if worst is None:
        return value  # unbounded metric: excluded, shown as lower coverage
    return MetricValue(float(worst), value.failure, {**value.extras, "penalised": True})


def apply_metric_policy(metric: Metric, value: MetricValue) -> MetricValue:
    """``apply_policy`` with the metric's own worst value."""
    return apply_policy(metric.worst, value)
