"""Speed of the paper's audio metrics: this harness's path against each package's own scorer, same clips.

Clips: every iap-mini item as an mp4 (a still reference face, the item's real ground-truth audio), and the
same audio as a wav for the packages (they read files themselves). Weights: seeded random checkpoints in the
real file formats (``iap_bench.testing.*``): timing does not depend on the weights' values.

Harness: one decode per clip shared by all metrics, each model loaded once, batched ``score``.
Package: each package's own scoring path run on the files one after another as a user would (its own
loading and decoding): ``iap_bench.testing.<metric>.package_scores``, the same function the parity tests
compare numbers with.

Usage: .venv/bin/python benchmarks/bench_audio_metrics.py [--device cpu|cuda] [--repeat N]
Prints one table: per-metric load time, time per clip for both paths, and the ratio; then the suite total.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# config name -> the iap_bench.testing module with write_random_weights / package_scores
METRICS = {"pq/reference": "pq", "clap/reference": "clap", "fd/reference": "fd",
           "wer/reference": "sensevoice", "aid_sim/reference": "aid_sim_wavlm"}


def make_clips(out: Path) -> tuple[list, list[Path], list[Path]]:
    """iap-mini items, an mp4 per item (reference face + ground-truth audio) and the same audio as wav."""
    import numpy as np
    import soundfile as sf

    from iap_bench.benchmark.loader import load_benchmark
    from iap_bench.media.refs import load_audio, load_image
    from iap_bench.media.writer import write_mp4

    data = ROOT / "benchmark_data" / "iap-mini"
    bench = load_benchmark(data / "manifest.yaml", data / "pack")
    items, mp4s, wavs = [], [], []
    for item in bench.items:
        if item.ground_truth_audio is None:
            continue
        audio = load_audio(item.ground_truth_audio, 16000)
        face = load_image(item.subjects[0].faces[0])
        h, w = (face.shape[0] // 2) * 2, (face.shape[1] // 2) * 2
        n_frames = max(1, int(round(audio.size / 16000 * 25)))
        video = np.repeat(face[None, :h, :w], n_frames, axis=0)
        mp4 = out / f"{item.id}.mp4"
        write_mp4(mp4, video, 25, audio=audio, sample_rate=16000)
        wav = out / f"{item.id}.wav"
        sf.write(wav, audio, 16000)
        items.append(item)
        mp4s.append(mp4)
        wavs.append(wav)
    return items, mp4s, wavs


def time_harness(names: list[str], items: list, mp4s: list[Path], device: str) -> dict[str, dict[str, float]]:
    """Harness path: decode each clip once (shared), load each metric once, score the batch."""
    import torch

    from iap_bench.media.sample import SampleMedia
    from iap_bench.metrics.base import EvalSample, build_metric

    t0 = time.perf_counter()
    media = [SampleMedia(p).load() for p in mp4s]
    for m in media:
        m.audio(16000)
    decode = time.perf_counter() - t0
    out: dict[str, dict[str, float]] = {"_decode": {"total": decode}}
    for name in names:
        metric = build_metric(name)
        metric.configure(device=device, threads=torch.get_num_threads())
        t0 = time.perf_counter()
        metric.load()
        t_load = time.perf_counter() - t0
        samples = [EvalSample(i, m) for i, m in zip(items, media)]
        t0 = time.perf_counter()
        values = metric.score(samples)
        if getattr(metric, "set_level", False):
            metric.aggregate(values)
        t_score = time.perf_counter() - t0
        out[name] = {"load": t_load, "score": t_score, "total": t_load + t_score}
    return out


def time_packages(names: list[str], root: Path, items: list, wavs: list[Path]) -> dict[str, float]:
    """Each package's own scorer, file after file, including its own model loading."""
    out = {}
    for name in names:
        mod = importlib.import_module(f"iap_bench.testing.{METRICS[name]}")
        t0 = time.perf_counter()
        mod.package_scores(root, wavs, items)
        out[name] = time.perf_counter() - t0
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--metrics", nargs="*", default=list(METRICS))
    args = ap.parse_args()
    import torch
    from rich.console import Console
    from rich.table import Table

    from iap_bench.weights import ROOT_ENV

    console = Console(width=160)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        (tmp_path / "w").mkdir()
        (tmp_path / "clips").mkdir()
        for name in args.metrics:
            importlib.import_module(f"iap_bench.testing.{METRICS[name]}").write_random_weights(tmp_path / "w")
        os.environ[ROOT_ENV] = str(tmp_path / "w")
        items, mp4s, wavs = make_clips(tmp_path / "clips")
        n = len(items)
        console.print(f"{n} iap-mini clips, device {args.device}, torch threads {torch.get_num_threads()}")
        pkg = time_packages(args.metrics, tmp_path / "w", items, wavs)
        ours = time_harness(args.metrics, items, mp4s, args.device)
    table = Table(title=f"audio metrics on {n} iap-mini clips ({args.device})")
    for col in ("metric", "harness load s", "harness ms/clip", "harness total s", "package total s",
                "package ms/clip", "package / harness"):
        table.add_column(col, justify="right", no_wrap=col == "metric")
    for name in args.metrics:
        h, p = ours[name], pkg[name]
        table.add_row(name, f"{h['load']:.2f}", f"{1000 * h['score'] / n:.0f}", f"{h['total']:.2f}", f"{p:.2f}",
                      f"{1000 * p / n:.0f}", f"{p / h['total']:.2f}x")
    h_all = sum(ours[m]["total"] for m in args.metrics) + ours["_decode"]["total"]
    p_all = sum(pkg.values())
    table.add_row("suite + 1 decode", "", "", f"{h_all:.2f}", f"{p_all:.2f}", "", f"{p_all / h_all:.2f}x")
    console.print(table)


if __name__ == "__main__":
    main()
