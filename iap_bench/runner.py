"""Orchestration: benchmark -> generator -> samples on disk -> decode once -> metrics -> store.

Each stage hands the next one object. Generation and scoring are both content-keyed, so an unchanged
re-run reuses every sample and every score, and a killed run resumes where it stopped. A reused sample is
re-hashed before it is trusted; the failure policy (iap_bench.metrics.policy) decides what a failed sample
counts as; transient errors (bugs, out of memory) are reported and never stored, so the next run retries.
"""

from __future__ import annotations

import dataclasses
import hashlib
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

from iap_bench.benchmark.inputs import item_inputs_hash
from iap_bench.benchmark.schema import Benchmark, Item
from iap_bench.errors import MediaError, MissingCheckpointError, UsageError
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
    inputs_hash: str = ""

    @property
    def key(self) -> tuple[str, str]:
        """What a score is keyed by besides the metric: (sample content, item inputs)."""
        return self.sample_hash, self.inputs_hash


@dataclass
class RunSummary:
    """What one run did: counts and timings printed at the end and written to the run dir."""

    generated: int = 0
    reused: int = 0
    gen_failed: int = 0
    changed_on_disk: int = 0  # reused samples whose file no longer had the recorded content
    scored: int = 0
    skipped_scores: int = 0
    score_failures: int = 0
    penalised: int = 0
    transient: list[str] = field(default_factory=list)  # not stored: retried by the next run
    decoded_samples: int = 0
    decodes: int = 0  # container decode passes during evaluation (DECODE_COUNTS), for decode-once checks
    timings: dict[str, float] = field(default_factory=dict)


def generation_key(description: dict[str, Any], item: Item, seed: int, pack_hash: str | None,
                   item_identity: dict[str, Any] | None = None) -> str:
    """Content key of a generation request: same generator config + item + seed + pack -> same sample.

    ``item_identity`` is what an adapter reads per item beyond the benchmark (a precomputed file's hash).
    """
    payload = json.dumps(
        {"gen": description, "item": item.id, "prompt": item.text_prompt(), "inputs": item_inputs_hash(item),
         "seed": seed, "pack": pack_hash, "item_identity": item_identity or {}},
        sort_keys=True, default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def make_progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=False, disable=not console.is_terminal and os.environ.get("CI") == "true",
    )


def _is_fatal(e: BaseException) -> bool:
    """Setup errors stop the run (one clear message) instead of failing every item."""
    return isinstance(e, MissingCheckpointError | UsageError)


class Runner:
    """Runs generation and evaluation of one benchmark for one model label into one store."""

    def __init__(self, benchmark: Benchmark, store: Any, run_dir: Path, console: Console | None = None,
                 seed: int = 0, chunk_size: int = 8, decode_workers: int = 2, device: str = "cpu",
                 threads: int = 1):
        self.benchmark = benchmark
        self.store = store
        self.run_dir = Path(run_dir)
        self.console = console or Console()
        self.seed = seed
        self.chunk_size = chunk_size
        self.decode_workers = decode_workers
        self.device = device
        self.threads = threads
        self.summary = RunSummary()
        self._hashed: dict[str, str] = {}  # path -> content hash read from disk by this run (read once)

    def _content_hash(self, path: Path) -> str:
        """sha256 of the file's bytes, read from disk (never an mtime cache) once per run."""
        key = str(path)
        if key not in self._hashed:
            self._hashed[key] = file_sha256(path, fresh=True)
        return self._hashed[key]

    # ---------------------------------------------------------------- generation
    def generate(self, generator: Generator, label: str, items: Sequence[Item],
                 run_id: str) -> list[SampleRef]:
        """Generate every item (reusing verified content-keyed samples); failures are recorded."""
        out_dir = self.run_dir / "samples" / re.sub(r"[^A-Za-z0-9._-]+", "_", label)
        out_dir.mkdir(parents=True, exist_ok=True)
        refs: list[SampleRef] = []
        loaded = False
        description = generator.describe()  # stable across load(): one identity for the whole run
        per_item = getattr(generator, "item_identity", None)
        t0 = time.perf_counter()
        with make_progress(self.console) as progress:
            task = progress.add_task(f"generate [{label}]", total=len(items))
            for item in items:
                inputs = item_inputs_hash(item)
                try:
                    key = generation_key(description, item, self.seed, self.benchmark.pack_hash,
                                         per_item(item) if per_item else None)
                    ref = self._reuse(key, item, inputs, label, generator, run_id, out_dir)
                    if ref is not None:
                        self.summary.reused += 1
                        refs.append(ref)
                        progress.advance(task)
                        continue
                    self._check_capabilities(generator, item)
                    if not loaded:
                        generator.load()
                        loaded = True
                    refs.append(self._generate_one(generator, item, label, key, inputs, run_id, description,
                                                   out_dir))
                    self.summary.generated += 1
                except MediaError as e:  # the model's fault (penalised), or the item's inputs' (excluded)
                    from iap_bench.metrics.policy import INPUT_FAULTS

                    reason = (str(e) if e.reason in INPUT_FAULTS else f"{GENERATION_FAILED}: {e}")[:500]
                    log.warning("item %s: %s", item.id, reason)
                    refs.append(self._record_generation_failure(item, label, generator, inputs, reason, run_id))
                    self.summary.gen_failed += 1
                except Exception as e:  # noqa: BLE001 - transient (bug, OOM): not stored, retried next run
                    if _is_fatal(e):
                        raise
                    msg = f"generate {item.id}: {type(e).__name__}: {e}"[:300]
                    log.warning("%s (not stored; retried on the next run)", msg)
                    self.summary.transient.append(msg)
                progress.advance(task)
        self.summary.timings["generate_s"] = time.perf_counter() - t0
        return refs

    def _generate_one(self, generator: Generator, item: Item, label: str, key: str, inputs: str, run_id: str,
                      description: dict[str, Any], out_dir: Path) -> SampleRef:
        from iap_bench.store import SampleRecord

        tg = time.perf_counter()
        sample = generator.generate(item, self.seed)
        gen_s = time.perf_counter() - tg
        path, written = self._write(sample, out_dir / f"{item.id}.mp4")
        self._hashed.pop(str(path), None)  # just written: hash the new bytes
        sample_hash = self._content_hash(path)
        sidecar = {
            "item_id": item.id, "split": item.split, "model": label, "generator": generator.name,
            "config": description, "seed": self.seed, "generation_key": key, "inputs_hash": inputs,
            "timings": {"generate_s": round(gen_s, 3)}, "pack_hash": self.benchmark.pack_hash,
            "benchmark": self.benchmark.name, "sample_hash": sample_hash, "info": sample.info,
            "encoding": written, "run_id": run_id,
        }
        path.with_suffix(".json").write_text(json.dumps(sidecar, indent=2, default=str))
        self.store.add_sample(SampleRecord(
            sample_hash=sample_hash, item_id=item.id, split=item.split, model=label, generator=generator.name,
            seed=self.seed, path=str(path), pack_hash=self.benchmark.pack_hash or "",
            benchmark=self.benchmark.name, inputs_hash=inputs, sidecar=sidecar, run_id=run_id,
            generation_key=key))
        return SampleRef(item, sample_hash, path, inputs_hash=inputs)

    @staticmethod
    def _check_capabilities(generator: Generator, item: Item) -> None:
        caps = generator.capabilities
        if item.split == "multi" and not caps.multi_subject:
            raise MediaError("unsupported", f"{generator.name} does not support multi-subject items")
        if item.reference_mode == "multi-view" and not caps.multi_view:
            log.info("%s: multi-view references reduced to the first view by %s", item.id, generator.name)

    def _reuse(self, key: str, item: Item, inputs: str, label: str, generator: Generator, run_id: str,
               out_dir: Path) -> SampleRef | None:
        """An earlier sample with the same generation key whose file still has the recorded content."""
        from iap_bench.store import SampleRecord

        rec = self.store.find_generation(key)
        if rec is None or not rec.path:
            return None
        src = Path(rec.path)
        if not src.is_file():
            return None
        if self._content_hash(src) != rec.sample_hash:  # replaced in place: regenerate, never trust
            log.warning("%s: %s changed on disk since it was generated; generating again", item.id, src)
            self.summary.changed_on_disk += 1
            self.store.forget_generation(key)
            return None
        dst = out_dir / f"{item.id}.mp4"
        if src.resolve() != dst.resolve():
            for s, d in ((src, dst), (src.with_suffix(".json"), dst.with_suffix(".json"))):
                if s.exists() and not d.exists() and not d.is_symlink():
                    d.symlink_to(s.resolve())  # a pointer, never a hard link to shared bytes
        self.store.add_sample(SampleRecord(
            sample_hash=rec.sample_hash, item_id=item.id, split=item.split, model=label,
            generator=generator.name, seed=self.seed, path=str(src), pack_hash=self.benchmark.pack_hash or "",
            benchmark=self.benchmark.name, inputs_hash=inputs, run_id=run_id))
        return SampleRef(item, rec.sample_hash, src, inputs_hash=inputs)

    def _record_generation_failure(self, item: Item, label: str, generator: Generator, inputs: str,
                                   reason: str, run_id: str) -> SampleRef:
        from iap_bench.store import SampleRecord

        key = f"{label}:{self.benchmark.name}:{self.benchmark.pack_hash}:{item.id}:{self.seed}:{inputs}:{reason}"
        fake_hash = "failed:" + hashlib.sha256(key.encode()).hexdigest()[:32]
        self.store.add_sample(SampleRecord(
            sample_hash=fake_hash, item_id=item.id, split=item.split, model=label, generator=generator.name,
            seed=self.seed, path=None, pack_hash=self.benchmark.pack_hash or "", benchmark=self.benchmark.name,
            inputs_hash=inputs, failure=reason, sidecar={"failure": reason}, run_id=run_id))
        return SampleRef(item, fake_hash, None, failure=reason, inputs_hash=inputs)

    def _write(self, sample: GeneratedSample, dst: Path) -> tuple[Path, dict[str, Any]]:
        """Encode or copy a sample to ``dst``; returns the path and how it was written (for the sidecar)."""
        from iap_bench.media.writer import mux_mp4, write_mp4

        dst.unlink(missing_ok=True)  # may be a symlink left by an earlier reuse
        if sample.source is not None:
            src = Path(sample.source)
            if sample.source_audio is not None:
                info = mux_mp4(src, Path(sample.source_audio), dst)
                return dst, _write_info(info)
            if not src.exists():
                raise MediaError("missing_sample", str(src))
            shutil.copyfile(src, dst)  # a copy: never a hard link to a user's file
            return dst, {"copied_from": str(src)}
        if sample.video is None or sample.audio is None:
            raise MediaError("empty", "generator returned neither arrays nor a source file")
        info = write_mp4(dst, sample.video, sample.fps, sample.audio, sample.sample_rate)
        return dst, _write_info(info)

    # ---------------------------------------------------------------- evaluation
    def evaluate(self, refs: Sequence[SampleRef], metrics: Sequence[Metric], run_id: str) -> None:
        """Score every (sample, inputs, metric) not already in the store; each sample is decoded once."""
        from iap_bench.metrics.policy import apply_metric_policy
        from iap_bench.store import ScoreRecord

        t0 = time.perf_counter()
        for m in metrics:
            m.configure(device=self.device, threads=self.threads)
        identities = [m.identity() for m in metrics]
        for m, ident in zip(metrics, identities):
            self.store.put_metric_params(ident["params"], m.name, m.backend, m.identity_params())
        done = [self.store.scored_keys(ident) for ident in identities]
        # work unit: one (sample content, item inputs) pair; its metrics; the refs (items) that share it
        todo: dict[tuple[str, str], list[int]] = {}
        unit_ref: dict[tuple[str, str], SampleRef] = {}
        failed: list[ScoreRecord] = []
        for ref in refs:
            for j, m in enumerate(metrics):
                if not m.applies(ref.item):
                    continue
                if ref.key in done[j]:
                    self.summary.skipped_scores += 1
                    continue
                if ref.failure is not None:  # failed generation: the policy decides (worst value or excluded)
                    pre = m.item_failure(ref.item)  # the metric could not score this item from any model
                    v = MetricValue.fail(pre) if pre else apply_metric_policy(m, MetricValue.fail(ref.failure))
                    failed.append(ScoreRecord(*ref.key, **identities[j], value=v.value, failure=v.failure,
                                              extras=v.extras, run_id=run_id))
                    done[j].add(ref.key)
                    self._count(v)
                    continue
                if j not in todo.setdefault(ref.key, []):
                    todo[ref.key].append(j)
                    unit_ref.setdefault(ref.key, ref)
        self.store.put_scores(failed)
        units = self._verified(list(todo), unit_ref)
        if not units:
            self.summary.timings["evaluate_s"] = time.perf_counter() - t0
            return
        from iap_bench.media.pool import MediaPool
        from iap_bench.media.sample import DECODE_COUNTS

        needed = sorted({j for u in units for j in todo[u]})
        paths = {u: unit_ref[u].path for u in units}
        before = {str(p): DECODE_COUNTS[str(p)] for p in paths.values()}
        with make_progress(self.console) as progress:
            for j in needed:
                progress.console.print(f"loading metric [bold]{metrics[j].name}[/] ({metrics[j].backend})")
                metrics[j].load()
            task = progress.add_task("evaluate", total=len(units))
            pool = MediaPool(max_workers=self.decode_workers, prefetch=self.chunk_size)
            by_path: dict[str, list[tuple[str, str]]] = {}
            for u in units:
                by_path.setdefault(str(paths[u]), []).append(u)
            path_list = list(by_path)  # each file decoded once even if several items share its content
            media_iter = pool.iter_open([Path(p) for p in path_list])  # decodes ahead, across chunks
            for start in range(0, len(path_list), self.chunk_size):
                chunk_paths = path_list[start:start + self.chunk_size]
                media = {p: next(media_iter) for p in chunk_paths}
                self.summary.decoded_samples += len(chunk_paths)
                chunk_units = [u for p in chunk_paths for u in by_path[p]]
                for j in needed:
                    batch = [(u, EvalSample(unit_ref[u].item, media[str(paths[u])]))
                             for u in chunk_units if j in todo[u]]
                    if not batch:
                        continue
                    values = _safe_score(metrics[j], [s for _, s in batch])
                    records = []
                    for (u, s), v in zip(batch, values, strict=True):
                        if v.transient:
                            msg = f"{metrics[j].name}/{metrics[j].backend} on {s.item.id}: {v.failure}"
                            self.summary.transient.append(msg[:300])
                            continue
                        v = apply_metric_policy(metrics[j], v)
                        records.append(ScoreRecord(*u, **identities[j], value=v.value, failure=v.failure,
                                                   extras=v.extras, run_id=run_id))
                        self._count(v)
                    self.store.put_scores(records)  # written per chunk: a kill loses at most one chunk
                for m in media.values():
                    m.release()  # every metric has read it: free the decoded frames
                progress.advance(task, len(chunk_units))
            pool.close()
        self.summary.decodes = sum(DECODE_COUNTS[p] - before.get(p, 0) for p in by_path)
        self.summary.timings["evaluate_s"] = time.perf_counter() - t0

    def _count(self, v: MetricValue) -> None:
        self.summary.scored += 1
        if v.failure is not None:
            self.summary.score_failures += 1
            self.summary.penalised += v.value is not None

    def _verified(self, units: list[tuple[str, str]], unit_ref: dict[tuple[str, str], SampleRef]
                  ) -> list[tuple[str, str]]:
        """Units whose file still has the recorded content; a changed file is reported, not scored."""
        ok = []
        checked: dict[str, bool] = {}
        for u in units:
            path = unit_ref[u].path
            key = str(path)
            if key not in checked:
                checked[key] = path is not None and path.is_file() and self._content_hash(path) == u[0]
            if checked[key]:
                ok.append(u)
            else:
                msg = f"{unit_ref[u].item.id}: {path} no longer has content {u[0][:12]}; not scored"
                log.warning(msg)
                self.summary.transient.append(msg)
        return ok


def _write_info(info: Any) -> dict[str, Any]:
    """The writer's facts (codecs, size, fps) as JSON-able values for the sidecar."""
    if dataclasses.is_dataclass(info):
        return {k: str(v) if not isinstance(v, int | float | str | type(None)) else v
                for k, v in dataclasses.asdict(info).items()}
    return {}


def _safe_score(metric: Metric, samples: list[EvalSample]) -> list[MetricValue]:
    """Batch score; if the batch raises, fall back to one-by-one so one bad sample never sinks the rest.

    A MediaError is a property of the sample (stored); any other exception is transient (not stored).
    """
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
            except Exception as e:  # noqa: BLE001 - reported, never stored, never fatal to the sweep
                if _is_fatal(e):
                    raise
                log.exception("metric %s failed on %s", metric.name, s.item.id)
                out.append(MetricValue.error(f"metric_error: {type(e).__name__}: {e}"[:300]))
        return out
