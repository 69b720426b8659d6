"""Worker functions run in spawned child processes by the store tests (importable by module name)."""

from __future__ import annotations

import time

from iap_bench.store import ResultStore, SampleRecord, ScoreRecord

IDENTITY = {"metric": "pq", "backend": "reference", "checkpoint": "c" * 64, "version": "1"}


def sample_hash(prefix: str, i: int) -> str:
    return f"{prefix}-{i:05d}"


def expected_value(i: int) -> float:
    """Deterministic value a worker writes for index i (so a reader can check every committed row)."""
    return i * 0.25 + 1.0 / (i + 3)


def write_scores(db: str, prefix: str, n: int, delay_s: float = 0.0, batch: int = 1) -> int:
    """Register n samples and score the ones still missing, one short transaction per batch."""
    store = ResultStore(db)
    hashes = [sample_hash(prefix, i) for i in range(n)]
    todo = store.missing(hashes, IDENTITY)
    for h in todo:
        i = int(h.rsplit("-", 1)[1])
        store.add_sample(SampleRecord(h, f"item{i}", "single" if i % 3 else "multi", prefix))
    written = 0
    for start in range(0, len(todo), batch):
        chunk = todo[start:start + batch]
        recs = [ScoreRecord(h, value=expected_value(int(h.rsplit("-", 1)[1])), failure=None,
                            extras={"i": int(h.rsplit("-", 1)[1])}, run_id=prefix, **IDENTITY) for h in chunk]
        store.put_scores(recs)
        written += len(recs)
        if delay_s:
            time.sleep(delay_s)
    store.close()
    return written
