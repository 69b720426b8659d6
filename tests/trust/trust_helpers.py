"""Small real samples for the trust tests: reference face frames + the subject's reference voice (or silence)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from iap_bench.benchmark.loader import load_benchmark
from iap_bench.benchmark.schema import Benchmark, Item
from iap_bench.errors import MediaError
from iap_bench.metrics.base import EvalSample, Metric, MetricValue

ROOT = Path(__file__).resolve().parents[2]
MINI = ROOT / "benchmark_data" / "iap-mini"


def mini() -> Benchmark:
    return load_benchmark(MINI / "manifest.yaml", MINI / "pack")


def write_sample(path: Path, item: Item, silent: bool = False, seconds: float = 2.0, tweak: int = 0) -> Path:
    """MP4 of the first subject's reference face (static) with its reference voice, or silence."""
    from iap_bench.media.refs import load_audio, load_image
    from iap_bench.media.writer import write_mp4

    subject = item.subjects[0]
    face = cv2.resize(np.asarray(load_image(subject.faces[0])), (128, 128))
    video = np.repeat(face[None], int(seconds * 25), axis=0).copy()
    video[0, 0, 0, 0] = tweak  # tweak changes the content hash without changing what metrics see
    audio = np.asarray(load_audio(subject.voice, 16000), dtype=np.float32)[: int(seconds * 16000)]
    if silent:
        audio = np.zeros_like(audio)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_mp4(path, video, 25, audio, 16000)
    return path


class CountingMetric(Metric):
    """A cheap metric: mean |audio| (or a scripted outcome); counts what it scored."""

    name = "loud"
    backend = "test"
    direction = "higher"
    worst = 0.0
    views = ("audio16k",)

    def __init__(self, scale: float = 1.0, raise_on: Sequence[str] = (), worst: float | None = 0.0) -> None:
        self.scale = scale
        self.raise_on = tuple(raise_on)
        self.worst = worst
        self.calls: list[str] = []

    def checkpoint_id(self) -> str:
        return "none"

    def score(self, samples: Sequence[EvalSample]) -> list[MetricValue]:
        out = []
        for s in samples:
            self.calls.append(s.item.id)
            if s.item.id in self.raise_on:
                raise RuntimeError("simulated out of memory")
            try:
                out.append(MetricValue(float(np.abs(s.media.audio(16000)).mean()) * self.scale))
            except MediaError as e:
                out.append(MetricValue.fail(e.reason))
        return out


def with_transcript(bench: Benchmark, item_id: str, text: str) -> Benchmark:
    """The benchmark with one item's first line of script replaced (a corrected transcript)."""
    items = []
    for it in bench.items:
        if it.id == item_id:
            script = (dataclasses.replace(it.script[0], text=text), *it.script[1:])
            it = dataclasses.replace(it, script=script)
        items.append(it)
    return dataclasses.replace(bench, items=tuple(items))
