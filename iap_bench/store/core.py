"""Content-addressed SQLite result store: samples, per-sample scores, dataset-level aggregates and runs.

A score is keyed by everything it depends on: the sample's content hash, the item's inputs hash (reference
files, speech text, language, subject order, prompt), and the metric identity (metric, backend, checkpoint
sha256, params hash, version). Re-running never re-scores what is stored; changing any part recomputes.
A sample row says which content a (model, item, seed) produced; several rows for one (model, item, seed)
(a retried failure, a non-deterministic regeneration, overlapping merged shards) are resolved by the
leaderboard: the newest successful generation wins, and a superseded failure is deleted when its retry
succeeds.
The database runs in WAL mode; every write is one short transaction, so a killed writer loses at most
the row (or batch) in flight, and several processes on one host may write to one file at once. WAL needs
the writers on one host and a local disk: across machines, give each job its own store and combine them
with ``merge_from`` / ``python -m iap_bench.store merge DEST SRC...``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from iap_bench.errors import UsageError

if TYPE_CHECKING:
    import pandas as pd

SCHEMA_VERSION = 3
ALL_SPLIT = "all"  # split label of aggregates computed over every item of a model

IDENTITY_FIELDS = ("metric", "backend", "checkpoint", "params", "version")
SCORE_KEY = ("sample_hash", "inputs_hash", *IDENTITY_FIELDS)
VALUE_TOLERANCE = 1e-6  # merged values closer than this are the same number

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS samples (
    model TEXT NOT NULL, benchmark TEXT NOT NULL, pack_hash TEXT NOT NULL, item_id TEXT NOT NULL,
    seed INTEGER NOT NULL, sample_hash TEXT NOT NULL, split TEXT NOT NULL, generator TEXT,
    inputs_hash TEXT NOT NULL, path TEXT, failure TEXT, sidecar_json TEXT, created REAL NOT NULL, run_id TEXT,
    PRIMARY KEY (model, benchmark, pack_hash, item_id, seed, sample_hash));
CREATE TABLE IF NOT EXISTS generations (
    generation_key TEXT PRIMARY KEY, sample_hash TEXT NOT NULL, path TEXT, model TEXT, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS scores (
    sample_hash TEXT NOT NULL, inputs_hash TEXT NOT NULL, metric TEXT NOT NULL, backend TEXT NOT NULL,
    checkpoint TEXT NOT NULL, params TEXT NOT NULL, version TEXT NOT NULL, value REAL, failure TEXT,
    extras_json TEXT, created REAL NOT NULL, run_id TEXT,
    PRIMARY KEY (sample_hash, inputs_hash, metric, backend, checkpoint, params, version));
CREATE TABLE IF NOT EXISTS metric_params (params TEXT PRIMARY KEY, metric TEXT, backend TEXT, params_json TEXT);
CREATE TABLE IF NOT EXISTS aggregates (
    model TEXT NOT NULL, benchmark TEXT NOT NULL, split TEXT NOT NULL, pack_hash TEXT NOT NULL,
    metric TEXT NOT NULL, backend TEXT NOT NULL, checkpoint TEXT NOT NULL, params TEXT NOT NULL,
    version TEXT NOT NULL, set_hash TEXT NOT NULL, value REAL, extras_json TEXT, created REAL NOT NULL,
    PRIMARY KEY (model, benchmark, split, pack_hash, metric, backend, checkpoint, params, version, set_hash));
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, started REAL NOT NULL, finished REAL, label TEXT, benchmark TEXT, pack_hash TEXT,
    config_json TEXT, env_json TEXT, host TEXT, pid INTEGER);
CREATE INDEX IF NOT EXISTS scores_identity ON scores (metric, backend, checkpoint, params, version);
CREATE INDEX IF NOT EXISTS samples_model ON samples (model);
"""

_COLUMNS = {
    "samples": ("model", "benchmark", "pack_hash", "item_id", "seed", "sample_hash", "split", "generator",
                "inputs_hash", "path", "failure", "sidecar_json", "created", "run_id"),
    "generations": ("generation_key", "sample_hash", "path", "model", "created"),
    "scores": ("sample_hash", "inputs_hash", "metric", "backend", "checkpoint", "params", "version", "value",
               "failure", "extras_json", "created", "run_id"),
    "metric_params": ("params", "metric", "backend", "params_json"),
    "aggregates": ("model", "benchmark", "split", "pack_hash", "metric", "backend", "checkpoint", "params",
                   "version", "set_hash", "value", "extras_json", "created"),
    "runs": ("run_id", "started", "finished", "label", "benchmark", "pack_hash", "config_json", "env_json",
             "host", "pid"),
}


@dataclass
class SampleRecord:
    """What one (model, item, seed) produced: a clip on disk, or a generation failure with its reason."""

    sample_hash: str
    item_id: str
    split: str
    model: str
    generator: str = ""
    seed: int = 0
    path: str | None = ""
    pack_hash: str = ""
    benchmark: str = ""
    inputs_hash: str = ""
    failure: str | None = None
    sidecar: dict[str, Any] = field(default_factory=dict)
    created: float | None = None
    run_id: str | None = None
    generation_key: str | None = None  # content key of the request that produced it (for reuse on re-runs)


@dataclass
class ScoreRecord:
    """One per-sample metric value and/or failure reason under a full key (see module docstring).

    ``value`` not None counts in the mean (a penalised sample fault keeps its reason in ``failure``);
    ``value`` None with a ``failure`` is excluded from the mean and lowers the coverage.
    """

    sample_hash: str
    inputs_hash: str
    metric: str
    backend: str
    checkpoint: str
    params: str
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
    params: str
    version: str
    set_hash: str
    value: float | None
    extras: dict[str, Any] = field(default_factory=dict)
    created: float | None = None


@dataclass
class MergeReport:
    """What a merge did: rows inserted, failures replaced by values, and values that disagree."""

    inserted: int = 0
    replaced: int = 0
    conflicts: list[dict[str, Any]] = field(default_factory=list)


MetricIdentity = Mapping[str, str] | Sequence[str]


def identity_tuple(identity: MetricIdentity) -> tuple[str, str, str, str, str]:
    """(metric, backend, checkpoint, params, version) from Metric.identity()'s dict or a 5-sequence."""
    if isinstance(identity, Mapping):
        missing_keys = [k for k in IDENTITY_FIELDS if k not in identity]
        if missing_keys:
            raise ValueError(f"metric identity lacks {missing_keys}: {dict(identity)}")
        return tuple(str(identity[k]) for k in IDENTITY_FIELDS)  # type: ignore[return-value]
    parts = tuple(str(x) for x in identity)
    if len(parts) != len(IDENTITY_FIELDS):
        raise ValueError(f"metric identity must be {IDENTITY_FIELDS}, got {parts}")
    return parts  # type: ignore[return-value]


def set_hash(sample_hashes: Iterable[str]) -> str:
    """Order-independent identity of a set of samples (what an aggregate was computed over)."""
    joined = "\n".join(sorted(set(sample_hashes)))
    return hashlib.sha256(joined.encode()).hexdigest()


def _ro_uri(path: Path) -> str:
    """A read-only SQLite URI for a path (escaped: '#', '?' and '%' in a path stay part of it)."""
    return Path(path).absolute().as_uri() + "?mode=ro"


def _json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


def _clean_value(value: float | None) -> float | None:
    """NaN/inf are not scores: store them as NULL (the caller should also record a failure)."""
    if value is None:
        return None
    v = float(value)
    return v if math.isfinite(v) else None


class ResultStore:
    """SQLite store, one connection per (process, thread); safe to resume and to share between local writers.

    ``readonly=True`` opens an existing store without creating or changing anything (leaderboards).
    """

    def __init__(self, path: str | os.PathLike, timeout_s: float = 30.0, readonly: bool = False,
                 check_filesystem: bool = True):
        self.path = Path(path)
        self.timeout_s = timeout_s
        self.readonly = readonly
        self._local = threading.local()
        if readonly:
            if not self.path.is_file():
                raise UsageError(f"no result store at {self.path}")
            self._check_schema(self.conn, "main", self.path)
            return
        if check_filesystem:
            from iap_bench.store.fs import check_local

            check_local(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UsageError(f"cannot create the store's folder {self.path.parent}: {e.strerror}") from None
        try:
            self._init_schema()
        except sqlite3.DatabaseError as e:
            raise UsageError(f"cannot write the store {self.path}: {e}") from None

    # -- connections -------------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        if self.readonly:
            conn = sqlite3.connect(_ro_uri(self.path), uri=True, timeout=self.timeout_s,
                                   isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout={int(self.timeout_s * 1000)}")
            return conn
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

    def checkpoint(self) -> None:
        """Fold the WAL into the main file, so a copied .sqlite file alone is complete."""
        if not self.readonly:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        """Checkpoint the WAL and close this thread's connection (others close when their threads end)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            try:
                self.checkpoint()
            except sqlite3.OperationalError:
                pass  # another writer is active: it will checkpoint
            conn.close()
        self._local = threading.local()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction (BEGIN IMMEDIATE takes the write lock up front: no upgrade deadlock)."""
        if self.readonly:
            raise RuntimeError(f"{self.path} was opened read-only")
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _init_schema(self) -> None:
        if self.conn.execute("SELECT 1 FROM sqlite_master WHERE type='table'").fetchone() is not None:
            self._check_schema(self.conn, "main", self.path)  # an existing file: never alter a non-store
            return
        with self._write() as conn:
            for stmt in _SCHEMA.strip().split(";"):
                if stmt.strip():
                    conn.execute(stmt)
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        self._check_schema(self.conn, "main", self.path)

    @staticmethod
    def _check_schema(conn: sqlite3.Connection, db: str, path: Path) -> None:
        """Refuse a file that is not a store of this schema version (one clear line)."""
        try:
            tables = {r[0] for r in conn.execute(f"SELECT name FROM {db}.sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as e:
            raise UsageError(f"{path} is not an IAP-Bench result store ({e})") from None
        if not set(_COLUMNS) | {"meta"} <= tables:
            if "meta" in tables and "scores" in tables:
                found = conn.execute(f"SELECT value FROM {db}.meta WHERE key='schema_version'").fetchone()
                raise UsageError(f"{path}: store schema v{found[0] if found else '?'}, this code reads "
                                 f"v{SCHEMA_VERSION} (older stores lack the inputs/params keys); move it aside "
                                 "and re-run, samples are regenerated only where missing")
            raise UsageError(f"{path} is not an IAP-Bench result store (tables: {sorted(tables)})")
        found = conn.execute(f"SELECT value FROM {db}.meta WHERE key='schema_version'").fetchone()
        if found is None or int(found[0]) != SCHEMA_VERSION:
            raise UsageError(f"{path}: store schema v{found[0] if found else '?'}, this code reads "
                             f"v{SCHEMA_VERSION}; move it aside and re-run")

    # -- runs ---------------------------------------------------------------------------------------
    def add_run(self, run_id: str, config: Mapping[str, Any], env: Mapping[str, Any] | None = None,
                label: str | None = None, benchmark: str | None = None, pack_hash: str | None = None) -> None:
        """Record a run once (a resumed run keeps its first start time, config and environment)."""
        if env is None:
            from iap_bench.store.env import default_env

            env = default_env()
        with self._write() as conn:
            conn.execute("INSERT OR IGNORE INTO runs VALUES (?,?,?,?,?,?,?,?,?,?)",
                         (run_id, time.time(), None, label, benchmark, pack_hash or "", _json(dict(config)),
                          _json(dict(env)), socket.gethostname(), os.getpid()))

    def finish_run(self, run_id: str) -> None:
        """Mark a run complete (its rows are final); unfinished runs mark their rows incomplete."""
        with self._write() as conn:
            conn.execute("UPDATE runs SET finished=? WHERE run_id=?", (time.time(), run_id))

    def runs_frame(self) -> pd.DataFrame:
        """All runs, config/env kept as JSON text."""
        return self._frame("SELECT * FROM runs ORDER BY started")

    def unfinished_labels(self, benchmark: str | None = None) -> set[str]:
        """Labels whose newest run has not finished (still writing, or killed before the end)."""
        rows = self.conn.execute("SELECT label, finished, benchmark, config_json FROM runs ORDER BY started")
        latest: dict[tuple[Any, ...], tuple[str, float | None]] = {}
        for label, finished, bench, config in rows.fetchall():
            if label is None or (benchmark is not None and bench != benchmark):
                continue
            cfg = json.loads(config or "{}")
            shard = cfg.get("shard") or {}
            # a sweep's jobs (seeds, shards) are separate parts of one row: each must have finished
            part = (label, bench, cfg.get("seed"), shard.get("index"), shard.get("count"))
            latest[part] = (label, finished)
        return {lab for lab, fin in latest.values() if fin is None}

    # -- samples ------------------------------------------------------------------------------------
    def add_sample(self, rec: SampleRecord) -> None:
        """Record what a (model, item, seed) produced. A success deletes that tuple's earlier failures.

        Re-adding the same content (a reuse) updates path, inputs and run, and makes it the newest sample of
        its (model, item, seed) again: the leaderboard shows what the latest run produced or confirmed.
        """
        now = rec.created or time.time()
        key = (rec.model, rec.benchmark or "", rec.pack_hash or "", rec.item_id, int(rec.seed or 0))
        row = (*key, rec.sample_hash, rec.split, rec.generator, rec.inputs_hash, rec.path, rec.failure,
               _json(rec.sidecar), now, rec.run_id)
        with self._write() as conn:
            if rec.generation_key and rec.failure is None:
                conn.execute("INSERT OR REPLACE INTO generations VALUES (?,?,?,?,?)",
                             (rec.generation_key, rec.sample_hash, rec.path, rec.model, now))
            conn.execute(
                "INSERT INTO samples VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT "
                "(model, benchmark, pack_hash, item_id, seed, sample_hash) DO UPDATE SET "
                "path=excluded.path, inputs_hash=excluded.inputs_hash, failure=excluded.failure, "
                "run_id=excluded.run_id, split=excluded.split, created=max(created, excluded.created)", row)
            if rec.failure is None:
                self._drop_superseded_failures(conn, key)

    @staticmethod
    def _drop_superseded_failures(conn: sqlite3.Connection, key: tuple[Any, ...]) -> None:
        """Delete failed-generation rows (and their scores) of a (model, item, seed) that now has a sample."""
        where = "model=? AND benchmark=? AND pack_hash=? AND item_id=? AND seed=? AND failure IS NOT NULL " \
                "AND path IS NULL"
        failed = [r[0] for r in conn.execute(f"SELECT sample_hash FROM samples WHERE {where}", key)]
        conn.execute(f"DELETE FROM samples WHERE {where}", key)
        for h in failed:  # scores go only when no other (pack, inputs, ...) row still refers to them
            conn.execute("DELETE FROM scores WHERE sample_hash=? AND NOT EXISTS "
                         "(SELECT 1 FROM samples WHERE sample_hash=?)", (h, h))

    def find_generation(self, generation_key: str) -> SampleRecord | None:
        """The sample an identical generation request produced earlier (path may since have vanished)."""
        row = self.conn.execute("SELECT sample_hash, path, model FROM generations WHERE generation_key=?",
                                (generation_key,)).fetchone()
        if row is None:
            return None
        return SampleRecord(sample_hash=row[0], item_id="", split="", model=row[2] or "", path=row[1],
                            generation_key=generation_key)

    def forget_generation(self, generation_key: str) -> None:
        """Drop a generation whose file changed on disk (it is regenerated)."""
        with self._write() as conn:
            conn.execute("DELETE FROM generations WHERE generation_key=?", (generation_key,))

    def samples_frame(self) -> pd.DataFrame:
        return self._frame("SELECT * FROM samples ORDER BY created")

    # -- scores -------------------------------------------------------------------------------------
    def has_score(self, sample_hash: str, inputs_hash: str, identity: MetricIdentity) -> bool:
        """True when this exact (sample, inputs, metric identity) is stored, as a value or as a failure."""
        row = self.conn.execute(
            "SELECT 1 FROM scores WHERE sample_hash=? AND inputs_hash=? AND metric=? AND backend=? AND "
            "checkpoint=? AND params=? AND version=?", (sample_hash, inputs_hash, *identity_tuple(identity))
        ).fetchone()
        return row is not None

    def scored_keys(self, identity: MetricIdentity) -> set[tuple[str, str]]:
        """(sample_hash, inputs_hash) pairs already scored under one metric identity (one query)."""
        return {(r[0], r[1]) for r in self.conn.execute(
            "SELECT sample_hash, inputs_hash FROM scores WHERE metric=? AND backend=? AND checkpoint=? AND "
            "params=? AND version=?", identity_tuple(identity))}

    def missing(self, keys: Iterable[tuple[str, str]], identity: MetricIdentity) -> list[tuple[str, str]]:
        """The given (sample_hash, inputs_hash) keys (input order, de-duplicated) not yet scored."""
        done = self.scored_keys(identity)
        out: list[tuple[str, str]] = []
        seen: set[tuple[str, str]] = set()
        for k in keys:
            if k not in done and k not in seen:
                out.append(k)
                seen.add(k)
        return out

    @staticmethod
    def _score_row(rec: ScoreRecord) -> tuple[Any, ...]:
        value = _clean_value(rec.value)
        failure = rec.failure
        if value is None and failure is None and (rec.value is not None or not rec.extras):
            # a set-level metric's per-sample record (value None, what its aggregate needs in extras) is kept
            failure = "non_finite" if rec.value is not None else "no_value"
        return (rec.sample_hash, rec.inputs_hash, rec.metric, rec.backend, rec.checkpoint, rec.params,
                str(rec.version), value, failure, _json(rec.extras), rec.created or time.time(), rec.run_id)

    def put_score(self, rec: ScoreRecord | None = None, /, **fields: Any) -> None:
        """Insert or replace one score in its own transaction (ScoreRecord or its fields as keywords)."""
        self.put_scores([rec if rec is not None else ScoreRecord(**fields)])

    def put_scores(self, recs: Sequence[ScoreRecord]) -> None:
        """Insert or replace a batch atomically (one short transaction; a crash loses only this batch)."""
        rows = [self._score_row(r) for r in recs]
        if not rows:
            return
        with self._write() as conn:
            conn.executemany("INSERT OR REPLACE INTO scores VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", rows)

    def put_metric_params(self, params: str, metric: str, backend: str, params_json: Mapping[str, Any]) -> None:
        """Record what a params hash stands for (provenance shown under the tables)."""
        with self._write() as conn:
            conn.execute("INSERT OR IGNORE INTO metric_params VALUES (?,?,?,?)",
                         (params, metric, backend, _json(dict(params_json))))

    def metric_params(self) -> dict[str, dict[str, Any]]:
        """params hash -> the parameters and auxiliary identities it stands for."""
        return {r[0]: json.loads(r[1]) for r in self.conn.execute("SELECT params, params_json FROM metric_params")}

    def get_score(self, sample_hash: str, inputs_hash: str, identity: MetricIdentity) -> ScoreRecord | None:
        """The stored score for one key, or None."""
        row = self.conn.execute(
            "SELECT * FROM scores WHERE sample_hash=? AND inputs_hash=? AND metric=? AND backend=? AND "
            "checkpoint=? AND params=? AND version=?", (sample_hash, inputs_hash, *identity_tuple(identity))
        ).fetchone()
        if row is None:
            return None
        d = dict(zip(_COLUMNS["scores"], row))
        d["extras"] = json.loads(d.pop("extras_json") or "{}")
        return ScoreRecord(**d)

    def count(self, table: str = "scores") -> int:
        if table not in _COLUMNS:
            raise ValueError(f"unknown table {table!r}")
        return int(self.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    def scores_frame(self, metrics: Sequence[str] | None = None) -> pd.DataFrame:
        """The current sample of each (model, item, seed) joined with its scores under its inputs.

        The current sample is the newest successful take (a failure only while no success exists); a metric
        it has no score for is missing (lower coverage), never filled in from an older take.
        Columns: the score key and value/failure, plus model, item_id, split, seed, generator, path,
        pack_hash, benchmark, sample_failure and sample_created.
        """
        sql = ("WITH cur AS (SELECT *, ROW_NUMBER() OVER (PARTITION BY model, benchmark, pack_hash, item_id, "
               "seed ORDER BY (failure IS NULL) DESC, created DESC, sample_hash) AS rn FROM samples) "
               "SELECT s.sample_hash, s.inputs_hash, s.metric, s.backend, s.checkpoint, s.params, s.version, "
               "s.value, s.failure, s.extras_json, s.created, s.run_id, sa.model, sa.item_id, sa.split, "
               "sa.generator, sa.seed, sa.path, sa.pack_hash, sa.benchmark, sa.failure AS sample_failure, "
               "sa.created AS sample_created FROM cur sa JOIN scores s "
               "ON s.sample_hash = sa.sample_hash AND s.inputs_hash = sa.inputs_hash WHERE sa.rn = 1")
        params: tuple[Any, ...] = ()
        if metrics:
            sql += f" AND s.metric IN ({','.join('?' * len(metrics))})"
            params = tuple(metrics)
        return self._frame(sql + " ORDER BY sa.model, sa.item_id, s.metric", params)

    # -- aggregates ---------------------------------------------------------------------------------
    def put_aggregate(self, rec: AggregateRecord) -> None:
        """Insert or replace one dataset-level value."""
        row = (rec.model, rec.benchmark or "", rec.split, rec.pack_hash or "", rec.metric, rec.backend,
               rec.checkpoint, rec.params, str(rec.version), rec.set_hash, _clean_value(rec.value),
               _json(rec.extras), rec.created or time.time())
        with self._write() as conn:
            conn.execute("INSERT OR REPLACE INTO aggregates VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", row)

    def has_aggregate(self, model: str, benchmark: str, split: str, pack_hash: str,
                      metric_identity: MetricIdentity, set_hash_: str) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM aggregates WHERE model=? AND benchmark=? AND split=? AND pack_hash=? AND metric=? "
            "AND backend=? AND checkpoint=? AND params=? AND version=? AND set_hash=?",
            (model, benchmark or "", split, pack_hash or "", *identity_tuple(metric_identity), set_hash_)
        ).fetchone()
        return row is not None

    def aggregates_frame(self) -> pd.DataFrame:
        return self._frame("SELECT * FROM aggregates ORDER BY model, metric, created")

    # -- merge --------------------------------------------------------------------------------------
    @staticmethod
    def check_mergeable(other_path: str | os.PathLike) -> None:
        """UsageError unless ``other_path`` is a store of this schema (checked before anything is merged)."""
        other = Path(other_path)
        if not other.is_file():
            raise UsageError(f"no result store at {other}")
        ResultStore(other, readonly=True).close()

    def merge_from(self, other_path: str | os.PathLike) -> MergeReport:
        """Copy every row of another store that this one lacks.

        On a score key present in both, a value beats a failure; two different values are kept as ours and
        reported in ``MergeReport.conflicts``. A merged success deletes superseded generation failures.
        """
        other = Path(other_path)
        self.check_mergeable(other)
        report = MergeReport()
        if other.resolve() == self.path.resolve():
            return report
        conn = self.conn
        conn.execute("ATTACH DATABASE ? AS src", (_ro_uri(other),))
        try:
            self._check_schema(conn, "src", other)
            key = " AND ".join(f"m.{k} = s.{k}" for k in SCORE_KEY)
            report.conflicts = [dict(zip((*SCORE_KEY, "ours", "theirs"), r)) for r in conn.execute(
                f"SELECT s.{', s.'.join(SCORE_KEY)}, m.value, s.value FROM src.scores s JOIN main.scores m "
                f"ON {key} WHERE m.value IS NOT NULL AND s.value IS NOT NULL "
                f"AND abs(m.value - s.value) > {VALUE_TOLERANCE}")]
            before = conn.total_changes
            with self._write():
                replaced = conn.execute(
                    f"INSERT OR REPLACE INTO main.scores SELECT s.* FROM src.scores s JOIN main.scores m "
                    f"ON {key} WHERE m.value IS NULL AND s.value IS NOT NULL").rowcount
                for table, cols in _COLUMNS.items():
                    names = ", ".join(cols)
                    conn.execute(f"INSERT OR IGNORE INTO main.{table} ({names}) SELECT {names} FROM src.{table}")
                copied = conn.total_changes - before
                # the same take in both: the more recent confirmation (inputs, path, time) wins, in any order
                conn.execute(
                    "UPDATE main.samples AS m SET inputs_hash=s.inputs_hash, path=s.path, failure=s.failure, "
                    "split=s.split, run_id=s.run_id, created=s.created FROM src.samples AS s WHERE "
                    "m.model=s.model AND m.benchmark=s.benchmark AND m.pack_hash=s.pack_hash AND "
                    "m.item_id=s.item_id AND m.seed=s.seed AND m.sample_hash=s.sample_hash AND s.created > m.created")
                ok = conn.execute("SELECT DISTINCT model, benchmark, pack_hash, item_id, seed FROM main.samples "
                                  "WHERE failure IS NULL OR path IS NOT NULL").fetchall()
                for k in ok:
                    self._drop_superseded_failures(conn, tuple(k))
            report.replaced = max(replaced, 0)
            report.inserted = copied - report.replaced
            return report
        finally:
            conn.execute("DETACH DATABASE src")

    # -- helpers ------------------------------------------------------------------------------------
    def _frame(self, sql: str, params: tuple[Any, ...] = ()) -> pd.DataFrame:
        import pandas as pd

        cur = self.conn.execute(sql, params)
        cols = [d[0] for d in cur.description]
        return pd.DataFrame(cur.fetchall(), columns=cols)


def open_stores(paths: Sequence[str | os.PathLike]) -> tuple[ResultStore, MergeReport]:
    """One store to read: the store itself when one path is given, else a temporary merge of all of them."""
    import atexit
    import shutil
    import tempfile

    if len(paths) == 1:
        return ResultStore(paths[0], readonly=True), MergeReport()
    tmp = tempfile.mkdtemp(prefix="iap-merge-")
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    st = ResultStore(Path(tmp) / "merged.sqlite", check_filesystem=False)
    total = MergeReport()
    for p in paths:
        st.check_mergeable(p)
    for p in paths:
        r = st.merge_from(p)
        total.inserted += r.inserted
        total.replaced += r.replaced
        total.conflicts += r.conflicts
    return st, total
