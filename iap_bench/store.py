"""Content-addressed SQLite result store: samples, per-sample scores, dataset-level aggregates and runs.

A score is keyed by (sample hash, metric, backend, checkpoint sha256, metric version), so re-running a
sweep never re-scores what is already stored, and stores written on different machines merge by key.
The database runs in WAL mode; every write is one short transaction, so a killed writer loses at most
the row (or batch) in flight, and several processes may write to one file at once.
WAL needs the writers on one host (shared memory index): across machines, give each rank its own store
and combine them with ``merge_from`` / ``python -m iap_bench.store merge DEST SRC...``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import math
import os
import platform
import socket
import sqlite3
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

SCHEMA_VERSION = 2
ALL_SPLIT = "all"  # split label of aggregates computed over every item of a model

SCORE_KEY = ("sample_hash", "metric", "backend", "checkpoint", "version")
IDENTITY_FIELDS = ("metric", "backend", "checkpoint", "version")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS samples (
    sample_hash TEXT NOT NULL, item_id TEXT NOT NULL, split TEXT NOT NULL, model TEXT NOT NULL,
    generator TEXT, seed INTEGER, path TEXT, pack_hash TEXT, benchmark TEXT, sidecar_json TEXT,
    created REAL NOT NULL, PRIMARY KEY (sample_hash, model));
CREATE TABLE IF NOT EXISTS generations (
    generation_key TEXT PRIMARY KEY, sample_hash TEXT NOT NULL, path TEXT, model TEXT, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS scores (
    sample_hash TEXT NOT NULL, metric TEXT NOT NULL, backend TEXT NOT NULL, checkpoint TEXT NOT NULL,
    version TEXT NOT NULL, value REAL, failure TEXT, extras_json TEXT, created REAL NOT NULL, run_id TEXT,
    PRIMARY KEY (sample_hash, metric, backend, checkpoint, version));
CREATE TABLE IF NOT EXISTS aggregates (
    model TEXT NOT NULL, benchmark TEXT NOT NULL, split TEXT NOT NULL, pack_hash TEXT NOT NULL,
    metric TEXT NOT NULL, backend TEXT NOT NULL, checkpoint TEXT NOT NULL, version TEXT NOT NULL,
    set_hash TEXT NOT NULL, value REAL, extras_json TEXT, created REAL NOT NULL,
    PRIMARY KEY (model, benchmark, split, pack_hash, metric, backend, checkpoint, version, set_hash));
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, started REAL NOT NULL, config_json TEXT, env_json TEXT, host TEXT);
CREATE INDEX IF NOT EXISTS scores_identity ON scores (metric, backend, checkpoint, version);
CREATE INDEX IF NOT EXISTS samples_model ON samples (model);
"""

_COLUMNS = {
    "samples": ("sample_hash", "item_id", "split", "model", "generator", "seed", "path", "pack_hash",
                "benchmark", "sidecar_json", "created"),
    "scores": ("sample_hash", "metric", "backend", "checkpoint", "version", "value", "failure",
               "extras_json", "created", "run_id"),
    "aggregates": ("model", "benchmark", "split", "pack_hash", "metric", "backend", "checkpoint", "version",
                   "set_hash", "value", "extras_json", "created"),
    "runs": ("run_id", "started", "config_json", "env_json", "host"),
    "generations": ("generation_key", "sample_hash", "path", "model", "created"),
}

DEFAULT_PACKAGES = (
    "torch", "torchaudio", "torchvision", "numpy", "av", "soundfile", "hydra-core", "omegaconf", "pandas",
    "diffusers", "transformers", "faster-whisper", "dlib", "opencv-python-headless", "resemblyzer", "librosa",
    "jiwer", "onnxruntime", "insightface", "rich",
)


@dataclass
class SampleRecord:
    """One generated clip on disk, labelled with the leaderboard row (``model``) it belongs to."""

    sample_hash: str
    item_id: str
    split: str
    model: str
    generator: str = ""
    seed: int | None = None
    path: str = ""
    pack_hash: str = ""
    benchmark: str = ""
    sidecar: dict[str, Any] = field(default_factory=dict)
    created: float | None = None
    generation_key: str | None = None  # content key of the request that produced it (for reuse on re-runs)


@dataclass
class ScoreRecord:
    """One per-sample metric value (or failure reason) under a full metric identity."""

    sample_hash: str
    metric: str
    backend: str
    checkpoint: str
    version: str
    value: float | None
    failure: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    run_id: str | None = None
    created: float | None = None


@dataclass
class AggregateRecord:
    """One dataset-level value (FD-style) for a model over a set of samples (``set_hash``)."""

    model: str
    benchmark: str
    split: str
    pack_hash: str
    metric: str
    backend: str
    checkpoint: str
    version: str
    set_hash: str
    value: float | None
    extras: dict[str, Any] = field(default_factory=dict)
    created: float | None = None


MetricIdentity = Mapping[str, str] | Sequence[str]


def identity_tuple(identity: MetricIdentity) -> tuple[str, str, str, str]:
    """(metric, backend, checkpoint, version) from Metric.identity()'s dict or a 4-sequence."""
    if isinstance(identity, Mapping):
        missing_keys = [k for k in IDENTITY_FIELDS if k not in identity]
        if missing_keys:
            raise ValueError(f"metric identity lacks {missing_keys}: {dict(identity)}")
        return tuple(str(identity[k]) for k in IDENTITY_FIELDS)  # type: ignore[return-value]
    parts = tuple(str(x) for x in identity)
    if len(parts) != 4:
        raise ValueError(f"metric identity must be (metric, backend, checkpoint, version), got {parts}")
    return parts  # type: ignore[return-value]


def set_hash(sample_hashes: Iterable[str]) -> str:
    """Order-independent identity of a set of samples (what an aggregate was computed over)."""
    joined = "\n".join(sorted(set(sample_hashes)))
    return hashlib.sha256(joined.encode()).hexdigest()


def _json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


def _clean_value(value: float | None) -> float | None:
    """NaN/inf are not scores: store them as NULL (the caller should also record a failure)."""
    if value is None:
        return None
    v = float(value)
    return v if math.isfinite(v) else None


def _git_commit(start: Path) -> str | None:
    """HEAD commit of the repository containing ``start``, read from .git without running git."""
    for d in [start, *start.parents]:
        git = d / ".git"
        if not git.is_dir():
            continue
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head
        ref = head[5:]
        ref_file = git / ref
        if ref_file.exists():
            return ref_file.read_text().strip()
        packed = git / "packed-refs"
        if packed.exists():
            for line in packed.read_text().splitlines():
                if line.endswith(" " + ref):
                    return line.split()[0]
        return None
    return None


def collect_env(packages: Iterable[str] = DEFAULT_PACKAGES, repo: Path | None = None) -> dict[str, Any]:
    """Python, platform, installed package versions (importlib.metadata), git commit and host."""
    versions: dict[str, str | None] = {}
    for name in packages:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    env: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "host": socket.gethostname(),
        "torch": versions.get("torch"),
        "packages": versions,
        "git_commit": _git_commit((repo or Path(__file__).resolve().parent).resolve()),
    }
    torch = sys.modules.get("torch")  # only describe the GPU if torch is already loaded (no slow import)
    if torch is not None and torch.cuda.is_available():
        env["cuda"] = torch.version.cuda
        env["gpu"] = torch.cuda.get_device_name(0)
    return env


def default_env() -> dict[str, Any]:
    """The environment recorded with every run (see collect_env)."""
    return collect_env()


class ResultStore:
    """SQLite store, one connection per (process, thread); safe to resume and to share between writers."""

    def __init__(self, path: str | os.PathLike, timeout_s: float = 30.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.timeout_s = timeout_s
        self._local = threading.local()
        self._init_schema()

    # -- connections -------------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None, check_same_thread=True)
        conn.execute(f"PRAGMA busy_timeout={int(self.timeout_s * 1000)}")
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise RuntimeError(f"{self.path}: could not enable WAL journal mode (got {mode})")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=OFF")
        return conn

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection (re-opened after fork: connections never cross processes)."""
        pid = os.getpid()
        if getattr(self._local, "pid", None) != pid:
            self._local.conn = self._connect()
            self._local.pid = pid
        return self._local.conn

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            conn.close()
        self._local = threading.local()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction (BEGIN IMMEDIATE takes the write lock up front: no upgrade deadlock)."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _init_schema(self) -> None:
        with self._write() as conn:
            for stmt in _SCHEMA.strip().split(";"):
                if stmt.strip():
                    conn.execute(stmt)
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        found = self.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
        if int(found) != SCHEMA_VERSION:
            raise RuntimeError(f"{self.path}: store schema v{found}, this code reads v{SCHEMA_VERSION}")

    # -- runs & samples -----------------------------------------------------------------------------
    def add_run(self, run_id: str, config: Mapping[str, Any], env: Mapping[str, Any] | None = None) -> None:
        """Record a run once (a resumed run keeps its first start time, config and environment)."""
        env = dict(env) if env is not None else default_env()
        with self._write() as conn:
            conn.execute("INSERT OR IGNORE INTO runs VALUES (?,?,?,?,?)",
                         (run_id, time.time(), _json(dict(config)), _json(env), socket.gethostname()))

    def runs_frame(self) -> pd.DataFrame:
        """All runs, config/env kept as JSON text."""
        return self._frame("SELECT * FROM runs ORDER BY started")

    def add_sample(self, rec: SampleRecord, replace: bool = False) -> None:
        """Register a sample under a model label; re-adding is a no-op unless its labels differ (then an error).

        The same content may appear under several models (e.g. one file scored as two rivals); its scores,
        keyed by content, are then shared.
        """
        now = rec.created or time.time()
        row = (rec.sample_hash, rec.item_id, rec.split, rec.model, rec.generator, rec.seed, rec.path,
               rec.pack_hash or "", rec.benchmark or "", _json(rec.sidecar), now)
        with self._write() as conn:
            if rec.generation_key:
                conn.execute("INSERT OR REPLACE INTO generations VALUES (?,?,?,?,?)",
                             (rec.generation_key, rec.sample_hash, rec.path, rec.model, now))
            if replace:
                conn.execute("INSERT OR REPLACE INTO samples VALUES (?,?,?,?,?,?,?,?,?,?,?)", row)
                return
            old = conn.execute("SELECT item_id, split, model, pack_hash FROM samples WHERE sample_hash=? "
                               "AND model=?", (rec.sample_hash, rec.model)).fetchone()
            if old is None:
                conn.execute("INSERT INTO samples VALUES (?,?,?,?,?,?,?,?,?,?,?)", row)
            elif tuple(old) != (rec.item_id, rec.split, rec.model, rec.pack_hash or ""):
                raise ValueError(
                    f"sample {rec.sample_hash[:12]} already stored as (item, split, model, pack)={tuple(old)}, "
                    f"now claimed as {(rec.item_id, rec.split, rec.model, rec.pack_hash)}; "
                    "pass replace=True to relabel it")

    def find_generation(self, generation_key: str) -> SampleRecord | None:
        """The sample an identical generation request produced earlier (path may since have vanished)."""
        row = self.conn.execute("SELECT sample_hash, path, model FROM generations WHERE generation_key=?",
                                (generation_key,)).fetchone()
        if row is None:
            return None
        return SampleRecord(sample_hash=row[0], item_id="", split="", model=row[2] or "", path=row[1],
                            generation_key=generation_key)

    def samples_frame(self) -> pd.DataFrame:
        return self._frame("SELECT * FROM samples ORDER BY created")

    # -- scores -------------------------------------------------------------------------------------
    def has_score(self, sample_hash: str, metric: str, backend: str, checkpoint: str, version: str) -> bool:
        """True when this exact (sample, metric identity) is stored, as a value or as a failure."""
        row = self.conn.execute(
            "SELECT 1 FROM scores WHERE sample_hash=? AND metric=? AND backend=? AND checkpoint=? AND version=?",
            (sample_hash, metric, backend, checkpoint, str(version))).fetchone()
        return row is not None

    def missing(self, sample_hashes: Iterable[str], metric_identity: MetricIdentity) -> list[str]:
        """The given sample hashes (input order, de-duplicated) that have no score for this identity yet."""
        metric, backend, checkpoint, version = identity_tuple(metric_identity)
        done = {r[0] for r in self.conn.execute(
            "SELECT sample_hash FROM scores WHERE metric=? AND backend=? AND checkpoint=? AND version=?",
            (metric, backend, checkpoint, version))}
        out: list[str] = []
        seen: set[str] = set()
        for h in sample_hashes:
            if h not in done and h not in seen:
                out.append(h)
                seen.add(h)
        return out

    @staticmethod
    def _score_row(rec: ScoreRecord) -> tuple[Any, ...]:
        value = _clean_value(rec.value)
        failure = rec.failure
        if value is None and failure is None:
            failure = "non_finite" if rec.value is not None else "no_value"
        return (rec.sample_hash, rec.metric, rec.backend, rec.checkpoint, str(rec.version), value, failure,
                _json(rec.extras), rec.created or time.time(), rec.run_id)

    def put_score(self, rec: ScoreRecord | None = None, /, **fields: Any) -> None:
        """Insert or replace one score in its own transaction (ScoreRecord or its fields as keywords)."""
        self.put_scores([rec if rec is not None else ScoreRecord(**fields)])

    def put_scores(self, recs: Sequence[ScoreRecord]) -> None:
        """Insert or replace a batch atomically (one short transaction; a crash loses only this batch)."""
        rows = [self._score_row(r) for r in recs]
        if not rows:
            return
        with self._write() as conn:
            conn.executemany("INSERT OR REPLACE INTO scores VALUES (?,?,?,?,?,?,?,?,?,?)", rows)

    def get_score(self, sample_hash: str, metric: str, backend: str, checkpoint: str,
                  version: str) -> ScoreRecord | None:
        """The stored score for one key, or None."""
        row = self.conn.execute(
            "SELECT * FROM scores WHERE sample_hash=? AND metric=? AND backend=? AND checkpoint=? AND version=?",
            (sample_hash, metric, backend, checkpoint, str(version))).fetchone()
        if row is None:
            return None
        d = dict(zip(_COLUMNS["scores"], row))
        return ScoreRecord(sample_hash=d["sample_hash"], metric=d["metric"], backend=d["backend"],
                           checkpoint=d["checkpoint"], version=d["version"], value=d["value"],
                           failure=d["failure"], extras=json.loads(d["extras_json"] or "{}"),
                           run_id=d["run_id"], created=d["created"])

    def count(self, table: str = "scores") -> int:
        if table not in _COLUMNS:
            raise ValueError(f"unknown table {table!r}")
        return int(self.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    def scores_frame(self, metrics: Sequence[str] | None = None) -> pd.DataFrame:
        """Scores joined with their sample labels (model, item_id, split, pack_hash, benchmark, ...)."""
        sql = ("SELECT s.sample_hash, s.metric, s.backend, s.checkpoint, s.version, s.value, s.failure, "
               "s.extras_json, s.created, s.run_id, sa.model, sa.item_id, sa.split, sa.generator, sa.seed, "
               "sa.path, sa.pack_hash, sa.benchmark FROM scores s LEFT JOIN samples sa USING (sample_hash)")
        params: tuple[Any, ...] = ()
        if metrics:
            sql += f" WHERE s.metric IN ({','.join('?' * len(metrics))})"
            params = tuple(metrics)
        return self._frame(sql + " ORDER BY sa.model, sa.item_id, s.metric", params)

    # -- aggregates ---------------------------------------------------------------------------------
    def put_aggregate(self, rec: AggregateRecord) -> None:
        """Insert or replace one dataset-level value."""
        row = (rec.model, rec.benchmark or "", rec.split, rec.pack_hash or "", rec.metric, rec.backend,
               rec.checkpoint, str(rec.version), rec.set_hash, _clean_value(rec.value), _json(rec.extras),
               rec.created or time.time())
        with self._write() as conn:
            conn.execute("INSERT OR REPLACE INTO aggregates VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", row)

    def has_aggregate(self, model: str, benchmark: str, split: str, pack_hash: str,
                      metric_identity: MetricIdentity, set_hash_: str) -> bool:
        metric, backend, checkpoint, version = identity_tuple(metric_identity)
        row = self.conn.execute(
            "SELECT 1 FROM aggregates WHERE model=? AND benchmark=? AND split=? AND pack_hash=? AND metric=? "
            "AND backend=? AND checkpoint=? AND version=? AND set_hash=?",
            (model, benchmark or "", split, pack_hash or "", metric, backend, checkpoint, version,
             set_hash_)).fetchone()
        return row is not None

    def aggregates_frame(self) -> pd.DataFrame:
        return self._frame("SELECT * FROM aggregates ORDER BY model, metric, created")

    # -- merge --------------------------------------------------------------------------------------
    def merge_from(self, other_path: str | os.PathLike) -> int:
        """Copy every row of another store that this one lacks (content keys; ours wins on conflict).

        Returns the number of rows inserted across all tables.
        """
        other = Path(other_path)
        if not other.exists():
            raise FileNotFoundError(f"no store at {other}")
        if other.resolve() == self.path.resolve():
            return 0
        conn = self.conn
        conn.execute("ATTACH DATABASE ? AS src", (str(other),))
        try:
            self._check_attached_schema(conn, other)
            before = conn.total_changes
            with self._write():
                for table, cols in _COLUMNS.items():
                    names = ", ".join(cols)
                    conn.execute(f"INSERT OR IGNORE INTO main.{table} ({names}) SELECT {names} FROM src.{table}")
            return conn.total_changes - before
        finally:
            conn.execute("DETACH DATABASE src")

    @staticmethod
    def _check_attached_schema(conn: sqlite3.Connection, other: Path) -> None:
        """Refuse to merge a file that is not a store of this schema version."""
        tables = {r[0] for r in conn.execute("SELECT name FROM src.sqlite_master WHERE type='table'")}
        if not set(_COLUMNS) | {"meta"} <= tables:
            raise ValueError(f"{other} is not an IAP-Bench result store (tables: {sorted(tables)})")
        found = conn.execute("SELECT value FROM src.meta WHERE key='schema_version'").fetchone()
        if found is None or int(found[0]) != SCHEMA_VERSION:
            raise ValueError(f"{other}: store schema {found}, this code reads v{SCHEMA_VERSION}")

    # -- helpers ------------------------------------------------------------------------------------
    def _frame(self, sql: str, params: tuple[Any, ...] = ()) -> pd.DataFrame:
        import pandas as pd

        cur = self.conn.execute(sql, params)
        cols = [d[0] for d in cur.description]
        return pd.DataFrame(cur.fetchall(), columns=cols)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``merge DEST SRC...`` unions stores written on different machines; ``info DB`` counts rows."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m iap_bench.store", description=main.__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("merge")
    m.add_argument("dest")
    m.add_argument("sources", nargs="+")
    i = sub.add_parser("info")
    i.add_argument("db")
    args = ap.parse_args(argv)
    if args.cmd == "merge":
        dest = ResultStore(args.dest)
        for src in args.sources:
            print(f"{src}: {dest.merge_from(src)} new rows")
    else:
        st = ResultStore(args.db)
        for table in _COLUMNS:
            print(f"{table}: {st.count(table)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
