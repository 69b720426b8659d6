"""Worker functions run in spawned child processes by the store tests (importable by module name)."""

from __future__ import annotations

import time

from iap_bench.store import ResultStore, SampleRecord, ScoreRecord

IDENTITY = {"metric": "pq", "backend": "reference", "checkpoint": "c" * 64, "params": "p" * 16, "version": "1"}


def sample_hash(prefix: str, i: int) -> str:
    return f"{prefix}-{i:05d}"


def inputs_hash(i: int) -> str:
    return f"in-{i:05d}"


def index_of(sample_hash_: str) -> int:
    return int(sample_hash_.rsplit("-", 1)[1])


def expected_value(i: int) -> float:
    """Deterministic value a worker writes for index i (so a reader can check every committed row)."""
    return i * 0.25 + 1.0 / (i + 3)


def write_scores(db: str, prefix: str, n: int, delay_s: float = 0.0, batch: int = 1) -> int:
    """Register n samples and score the (sample, inputs) keys still missing, one short transaction per batch."""
    store = ResultStore(db)
    keys = [(sample_hash(prefix, i), inputs_hash(i)) for i in range(n)]
    todo = store.missing(keys, IDENTITY)
    for h, inp in todo:
        i = index_of(h)
        store.add_sample(SampleRecord(h, f"item{i}", "single" if i % 3 else "multi", prefix, inputs_hash=inp,
                                      path=f"/x/{h}.mp4", pack_hash="P", benchmark="iap-mini"))
    written = 0
    for start in range(0, len(todo), batch):
        chunk = todo[start:start + batch]
        recs = [ScoreRecord(h, inp, value=expected_value(index_of(h)), failure=None,
                            extras={"i": index_of(h)}, run_id=prefix, **IDENTITY) for h, inp in chunk]
        store.put_scores(recs)
        written += len(recs)
        if delay_s:
            time.sleep(delay_s)
    store.close()
    return written
