"""Orchestration: benchmark -> generator -> samples on disk -> decode once -> metrics -> store.

Each stage hands the next one object. Generation and scoring are both content-keyed, so an unchanged
re-run reuses every sample and every score, and a killed run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from iap_bench.benchmark.schema import Benchmark, Item
from iap_bench.errors import IAPBenchError, MediaError, MissingCheckpointError
from iap_bench.generators.base import GeneratedSample, Generator
from iap_bench.hashing import file_sha256
from iap_bench.metrics.base import EvalSample, Metric, MetricValue

log = logging.getLogger(__name__)

GENERATION_FAILED = "generation_failed"


@dataclass
class SampleRef:
    """A generated (or failed) sample of one item, as recorded in the store."""

    item: Item
    sample_hash: str
    path: Path | None
    failure: str | None = None


@dataclass
class RunSummary:
    """What one run did: counts and timings printed at the end and written to the run dir."""

    generated: int = 0
    reused: int = 0
    gen_failed: int = 0
    scored: int = 0
    skipped_scores: int = 0
    score_failures: int = 0
    decoded_samples: int = 0
    decodes: int = 0  # container decode passes during evaluation (DECODE_COUNTS), for decode-once checks
    timings: dict[str, float] = field(default_factory=dict)


def generation_key(description: dict[str, Any], item: Item, seed: int, pack_hash: str | None) -> str:
    """Content key of a generation request: same generator config + item + seed + pack -> same sample."""
    payload = json.dumps(
        {"gen": description, "item": item.id, "prompt": item.text_prompt(), "seed": seed,
         "pack": pack_hash},
        sort_keys=True, default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def make_progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=False, disable=not console.is_terminal and os.environ.get("CI") == "true",
    )


class Runner:
    """Runs generation and evaluation of one benchmark for one model label into one store."""

    def __init__(self, benchmark: Benchmark, store: Any, run_dir: Path, console: Console | None = None,
                 seed: int = 0, chunk_size: int = 8, decode_workers: int = 2):
        self.benchmark = benchmark
        self.store = store
        self.run_dir = Path(run_dir)
        self.console = console or Console()
        self.seed = seed
        self.chunk_size = chunk_size
        self.decode_workers = decode_workers
        self.summary = RunSummary()

    # ---------------------------------------------------------------- generation
    def generate(self, generator: Generator, label: str, items: Sequence[Item],
                 run_id: str) -> list[SampleRef]:
        """Generate every item (reusing content-keyed samples already on disk); failures are recorded."""
        from iap_bench.store import SampleRecord

        out_dir = self.run_dir / "samples" / re.sub(r"[^A-Za-z0-9._-]+", "_", label)
        out_dir.mkdir(parents=True, exist_ok=True)
        refs: list[SampleRef] = []
        loaded = False
        description = generator.describe()  # stable across load(): one identity for the whole run
        t0 = time.perf_counter()
        with make_progress(self.console) as progress:
            task = progress.add_task(f"generate [{label}]", total=len(items))
            for item in items:
                key = generation_key(description, item, self.seed, self.benchmark.pack_hash)
                ref = self._reuse(key, item, out_dir)
                if ref is not None:
                    self.summary.reused += 1
                    refs.append(ref)
                    progress.advance(task)
                    continue
                try:
                    self._check_capabilities(generator, item)
                    if not loaded:
                        generator.load()
                        loaded = True
                    tg = time.perf_counter()
                    sample = generator.generate(item, self.seed)
                    gen_s = time.perf_counter() - tg
                    path = self._write(sample, out_dir / f"{item.id}.mp4")
                    sample_hash = file_sha256(path)
                    sidecar = {
                        "item_id": item.id, "split": item.split, "model": label, "generator": generator.name,
                        "config": description, "seed": self.seed, "generation_key": key,
                        "timings": {"generate_s": round(gen_s, 3)}, "pack_hash": self.benchmark.pack_hash,
                        "benchmark": self.benchmark.name, "sample_hash": sample_hash, "info": sample.info,
                        "run_id": run_id,
                    }
                    path.with_suffix(".json").write_text(json.dumps(sidecar, indent=2, default=str))
                    self.store.add_sample(SampleRecord(
                        sample_hash=sample_hash, item_id=item.id, split=item.split, model=label,
                        generator=generator.name, seed=self.seed, path=str(path),
                        pack_hash=self.benchmark.pack_hash, benchmark=self.benchmark.name,
                        sidecar=sidecar, generation_key=key))
                    refs.append(SampleRef(item, sample_hash, path))
                    self.summary.generated += 1
                except (MediaError, IAPBenchError, ValueError, RuntimeError, OSError) as e:
                    if isinstance(e, MissingCheckpointError):  # a setup error, not a per-item failure
                        raise
                    detail = str(e) if isinstance(e, MediaError) else f"{type(e).__name__}: {e}"
                    reason = f"{GENERATION_FAILED}: {detail}"[:500]
                    log.warning("item %s: %s", item.id, reason)
                    refs.append(self._record_generation_failure(item, label, generator, key, reason))
                    self.summary.gen_failed += 1
                progress.advance(task)
        self.summary.timings["generate_s"] = time.perf_counter() - t0
        return refs

    @staticmethod
    def _check_capabilities(generator: Generator, item: Item) -> None:
        caps = generator.capabilities
        if item.split == "multi" and not caps.multi_subject:
            raise MediaError("unsupported", f"{generator.name} does not support multi-subject items")
        if item.reference_mode == "multi-view" and not caps.multi_view:
            log.info("%s: multi-view references reduced to the first view by %s", item.id, generator.name)

    def _reuse(self, key: str, item: Item, out_dir: Path) -> SampleRef | None:
        """An earlier sample with the same generation key whose file is intact, linked into this run."""
        rec = self.store.find_generation(key)
        if rec is None:
            return None
        if rec.path is None:  # an earlier failure is not reused: retry it
            return None
        src = Path(rec.path)
        if not src.exists():
            return None
        dst = out_dir / f"{item.id}.mp4"
        if src.resolve() != dst.resolve():
            for s, d in ((src, dst), (src.with_suffix(".json"), dst.with_suffix(".json"))):
                if s.exists() and not d.exists():
                    _link_or_copy(s, d)
        return SampleRef(item, rec.sample_hash, src)

    def _record_generation_failure(self, item: Item, label: str, generator: Generator, key: str,
                                   reason: str) -> SampleRef:
        from iap_bench.store import SampleRecord

        fake_hash = "failed:" + hashlib.sha256(f"{key}:{label}".encode()).hexdigest()[:32]
        self.store.add_sample(SampleRecord(
            sample_hash=fake_hash, item_id=item.id, split=item.split, model=label, generator=generator.name,
            seed=self.seed, path=None, pack_hash=self.benchmark.pack_hash, benchmark=self.benchmark.name,
            sidecar={"failure": reason}, generation_key=None))
        return SampleRef(item, fake_hash, None, failure=reason)

    def _write(self, sample: GeneratedSample, dst: Path) -> Path:
        from iap_bench.media.writer import mux_mp4, write_mp4

        if sample.source is not None:
            src = Path(sample.source)
            if sample.source_audio is not None:
                mux_mp4(src, Path(sample.source_audio), dst)
                return dst
            if not src.exists():
                raise MediaError("missing_sample", str(src))
            dst.unlink(missing_ok=True)
            _link_or_copy(src, dst)
            return dst
        if sample.video is None or sample.audio is None:
            raise MediaError("empty", "generator returned neither arrays nor a source file")
        write_mp4(dst, sample.video, sample.fps, sample.audio, sample.sample_rate)
        return dst

    # ---------------------------------------------------------------- evaluation
    def evaluate(self, refs: Sequence[SampleRef], metrics: Sequence[Metric], run_id: str) -> None:
        """Score every (sample, metric) pair not already in the store; each sample is decoded once."""
        from iap_bench.media.pool import MediaPool
        from iap_bench.store import ScoreRecord

        t0 = time.perf_counter()
        identities = {m.name + "/" + m.backend: m.identity() for m in metrics}
        todo: dict[str, list[Metric]] = {}
        by_hash: dict[str, SampleRef] = {}
        for ref in refs:
            by_hash[ref.sample_hash] = ref
            for m in metrics:
                ident = identities[m.name + "/" + m.backend]
                if not m.applies(ref.item):
                    continue
                if self.store.has_score(ref.sample_hash, ident["metric"], ident["backend"],
                                        ident["checkpoint"], ident["version"]):
                    self.summary.skipped_scores += 1
                    continue
                if ref.failure is not None:  # generation failed: excluded from every metric, with reason
                    self.store.put_scores([ScoreRecord(ref.sample_hash, **ident, value=None,
                                                       failure=ref.failure, extras={}, run_id=run_id)])
                    self.summary.score_failures += 1
                    continue
                todo.setdefault(ref.sample_hash, []).append(m)
        if not todo:
            self.summary.timings["evaluate_s"] = time.perf_counter() - t0
            return
        needed = {id(m): m for ms in todo.values() for m in ms}
        from iap_bench.media.sample import DECODE_COUNTS

        before = {h: DECODE_COUNTS[str(by_hash[h].path)] for h in todo}
        with make_progress(self.console) as progress:
            for m in needed.values():
                progress.console.print(f"loading metric [bold]{m.name}[/] ({m.backend})")
                m.load()
            hashes = list(todo)
            task = progress.add_task("evaluate", total=len(hashes))
            pool = MediaPool(max_workers=self.decode_workers, prefetch=self.chunk_size)
            media_iter = pool.iter_open([by_hash[h].path for h in hashes])
            hash_iter = iter(hashes)
            while True:
                chunk = list(zip(itertools.islice(hash_iter, self.chunk_size),
                                 itertools.islice(media_iter, self.chunk_size), strict=False))
                if not chunk:
                    break
                self.summary.decoded_samples += len(chunk)
                for m in needed.values():
                    batch = [(h, EvalSample(by_hash[h].item, media)) for h, media in chunk if m in todo[h]]
                    if not batch:
                        continue
                    values = _safe_score(m, [s for _, s in batch])
                    ident = identities[m.name + "/" + m.backend]
                    records = []
                    for (h, _), v in zip(batch, values, strict=True):
                        records.append(ScoreRecord(h, **ident, value=v.value, failure=v.failure,
                                                   extras=v.extras, run_id=run_id))
                        self.summary.scored += 1
                        self.summary.score_failures += v.failure is not None
                    self.store.put_scores(records)  # written per chunk: a kill loses at most one chunk
                for _, media in chunk:
                    media.release()  # every metric has read it: free the decoded frames
                progress.advance(task, len(chunk))
        from iap_bench.media.sample import DECODE_COUNTS

        self.summary.decodes = sum(DECODE_COUNTS[str(by_hash[h].path)] - before.get(h, 0) for h in hashes)
        self.summary.timings["evaluate_s"] = time.perf_counter() - t0


def _link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link a sample into the run dir (no extra disk), copying across filesystems."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _safe_score(metric: Metric, samples: list[EvalSample]) -> list[MetricValue]:
    """Batch score; if the batch raises, fall back to one-by-one so one bad sample never sinks the rest."""
    try:
        values = metric.score(samples)
        if len(values) != len(samples):
            raise RuntimeError(f"{metric.name} returned {len(values)} values for {len(samples)} samples")
        return values
    except Exception:  # noqa: BLE001 - isolate the culprit below
        out = []
        for s in samples:
            try:
                out.append(metric.score([s])[0])
            except MediaError as e:
                out.append(MetricValue.fail(e.reason, detail=e.detail))
            except Exception as e:  # noqa: BLE001 - recorded, never fatal to the sweep
                log.exception("metric %s failed on %s", metric.name, s.item.id)
                out.append(MetricValue.fail(f"metric_error: {type(e).__name__}: {e}"[:300]))
        return out
