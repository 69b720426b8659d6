"""ResultStore (schema v3): keys, resume, crash safety (SIGKILL), concurrent writers, merges, read-only use."""

from __future__ import annotations

import multiprocessing as mp
import shutil
import sqlite3
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import store_workers as W  # noqa: E402

from iap_bench.errors import UsageError  # noqa: E402
from iap_bench.store import (  # noqa: E402
    SCHEMA_VERSION,
    SCORE_KEY,
    AggregateRecord,
    MergeReport,
    ResultStore,
    SampleRecord,
    ScoreRecord,
    collect_env,
    default_env,
    identity_tuple,
    open_stores,
    set_hash,
)
from iap_bench.store.__main__ import main as store_main  # noqa: E402

CTX = mp.get_context("spawn")
ID = W.IDENTITY
IDT = identity_tuple(ID)
FAILED = "generation_failed: boom"


def _score(h: str, value: float | None, failure: str | None = None, inputs: str = "in", **over: str) -> ScoreRecord:
    return ScoreRecord(h, inputs, value=value, failure=failure, **{**ID, **over})


def _sample(h: str, model: str = "cascade", split: str = "single", pack: str = "P1", item: str | None = None,
            inputs: str = "in", seed: int = 0, created: float | None = None) -> SampleRecord:
    return SampleRecord(h, item or f"item-{h}", split, model, generator="cascade", seed=seed, path=f"/x/{h}.mp4",
                        pack_hash=pack, benchmark="iap-mini", inputs_hash=inputs, sidecar={"fps": 25},
                        created=created)


def _failed(h: str, model: str = "cascade", item: str = "i0", inputs: str = "in", seed: int = 0,
            created: float | None = None) -> SampleRecord:
    return SampleRecord(h, item, "single", model, generator="cascade", seed=seed, path=None, pack_hash="P1",
                        benchmark="iap-mini", inputs_hash=inputs, failure=FAILED, created=created)


def _dump(db: Path) -> list[str]:
    con = sqlite3.connect(db)
    try:
        return list(con.iterdump())
    finally:
        con.close()


def _not_a_store(tmp_path: Path, kind: str) -> Path:
    """A file that must never be merged: text, an empty (0-byte) file, or a foreign SQLite database."""
    p = tmp_path / f"bad-{kind}.sqlite"
    if kind == "text":
        p.write_text("these are notes, not a store\n")
    elif kind == "empty":
        p.write_bytes(b"")
    else:
        con = sqlite3.connect(p)
        con.execute("CREATE TABLE t (x)")
        con.commit()
        con.close()
    return p


# -- basics ----------------------------------------------------------------------------------------------


def test_wal_mode_and_pragmas(tmp_path: Path) -> None:
    st = ResultStore(tmp_path / "s.db")
    assert st.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert st.conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert st.conn.execute("PRAGMA busy_timeout").fetchone()[0] == 30000
    meta = st.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
    assert meta == str(SCHEMA_VERSION) == "3"
    assert SCORE_KEY == ("sample_hash", "inputs_hash", "metric", "backend", "checkpoint", "params", "version")


def test_identity_tuple_forms() -> None:
    assert identity_tuple(ID) == ("pq", "reference", "c" * 64, "p" * 16, "1")
    assert identity_tuple(list(IDT)) == IDT
    with pytest.raises(ValueError, match="lacks"):
        identity_tuple({k: v for k, v in ID.items() if k != "params"})
    with pytest.raises(ValueError, match="must be"):
        identity_tuple(("pq", "reference", "c", "1"))  # a v2 (params-less) identity


def test_put_get_has_missing(tmp_path: Path) -> None:
    st = ResultStore(tmp_path / "s.db")
    for h in ("a", "b", "c"):
        st.add_sample(_sample(h))
    st.put_score(_score("a", 0.5))
    st.put_scores([_score("b", None, "no_face"), _score("b", 0.9, backend="offline")])
    assert st.has_score("a", "in", ID)
    assert st.has_score("b", "in", IDT)  # a failure counts as scored: never re-run
    assert not st.has_score("c", "in", ID)
    assert not st.has_score("a", "in", {**ID, "version": "2"})  # new version = new key
    assert not st.has_score("a", "in", {**ID, "params": "q" * 16})  # new params = new key
    assert not st.has_score("a", "other-inputs", ID)  # new item inputs = new key
    keys = [("a", "in"), ("b", "in"), ("c", "in"), ("c", "in"), ("a", "in2")]
    assert st.missing(keys, ID) == [("c", "in"), ("a", "in2")]  # input order, de-duplicated
    assert st.missing(keys[:3], {**ID, "backend": "offline"}) == [("a", "in"), ("c", "in")]
    assert st.scored_keys(ID) == {("a", "in"), ("b", "in")}
    got = st.get_score("b", "in", ID)
    assert got is not None and got.value is None and got.failure == "no_face"
    assert got.inputs_hash == "in" and got.params == ID["params"]
    assert st.get_score("a", "in", ID).value == pytest.approx(0.5)
    assert st.get_score("a", "in2", ID) is None
    # INSERT OR REPLACE: re-putting a key overwrites, never duplicates
    st.put_score(_score("a", 0.75))
    assert st.get_score("a", "in", ID).value == pytest.approx(0.75)
    assert st.count("scores") == 3
    # NaN/inf are not scores: stored as NULL with a reason
    st.put_score(_score("c", float("nan")))
    st.put_score(_score("c", float("inf"), backend="offline"))
    assert st.get_score("c", "in", ID).failure == "non_finite"
    assert st.get_score("c", "in", {**ID, "backend": "offline"}).value is None
    st.put_scores([])  # no-op
    with pytest.raises(ValueError, match="unknown table"):
        st.count("nope")


def test_keyword_put_score_and_frames(tmp_path: Path) -> None:
    st = ResultStore(tmp_path / "s.db")
    st.add_run("run1", {"generator": "cascade"}, {"python": "3.11"}, label="iap:ckpt_a", benchmark="iap-mini")
    st.add_sample(_sample("a", model="iap:ckpt_a", split="multi", created=1234.5))
    st.put_score(sample_hash="a", inputs_hash="in", value=7.0, run_id="run1", **ID)
    st.put_metric_params(ID["params"], "pq", "reference", {"params": {"k": 3}, "aux": {}})
    df = st.scores_frame()
    assert len(df) == 1
    row = df.iloc[0]
    assert (row.model, row.split, row.pack_hash, row.benchmark, row.run_id, row.params, row.inputs_hash) == (
        "iap:ckpt_a", "multi", "P1", "iap-mini", "run1", ID["params"], "in")
    assert row.value == 7.0 and row.seed == 0 and row.sample_failure is None
    assert row.sample_created == pytest.approx(1234.5)
    assert len(st.scores_frame(metrics=["pq"])) == 1 and st.scores_frame(metrics=["wer"]).empty
    runs = st.runs_frame()
    assert list(runs.run_id) == ["run1"] and "cascade" in runs.config_json.iloc[0]
    assert runs.label.iloc[0] == "iap:ckpt_a" and runs.finished.isna().all()
    assert st.metric_params() == {ID["params"]: {"params": {"k": 3}, "aux": {}}}
    assert set(st.samples_frame().columns) >= {"inputs_hash", "failure", "created", "seed"}


def test_runs_finished_and_unfinished_labels(tmp_path: Path) -> None:
    st = ResultStore(tmp_path / "s.db")
    st.add_run("r1", {}, {}, label="m", benchmark="iap-mini")
    st.add_run("r2", {}, {}, label="n", benchmark="other")
    assert st.unfinished_labels() == {"m", "n"}
    assert st.unfinished_labels("iap-mini") == {"m"}
    st.finish_run("r1")
    assert st.unfinished_labels() == {"n"}
    time.sleep(0.01)
    st.add_run("r3", {}, {}, label="m", benchmark="iap-mini")  # newer run of m, not finished: m again
    assert st.unfinished_labels("iap-mini") == {"m"}
    st.add_run("r3", {"changed": 1}, {}, label="m")  # a resumed run keeps its first record
    assert len(st.runs_frame()) == 3 and "changed" not in st.runs_frame().config_json.iloc[-1]


# -- sample keys -----------------------------------------------------------------------------------------


def test_readding_same_content_updates_path_inputs_and_makes_it_newest(tmp_path: Path) -> None:
    st = ResultStore(tmp_path / "s.db")
    st.add_sample(_sample("a", created=100.0))
    rec = _sample("a", split="multi", inputs="in2", created=999.0)
    rec.path = "/elsewhere/a.mp4"
    st.add_sample(rec)
    sf = st.samples_frame()
    assert len(sf) == 1
    assert (sf.split.iloc[0], sf.inputs_hash.iloc[0], sf.path.iloc[0]) == ("multi", "in2", "/elsewhere/a.mp4")
    assert sf.created.iloc[0] == pytest.approx(999.0)  # a reuse confirms it as the newest take
    st.add_sample(_sample("a", created=50.0))  # an older timestamp never moves it back
    assert st.samples_frame().created.iloc[0] == pytest.approx(999.0)


def test_same_content_under_two_models_shares_scores(tmp_path: Path) -> None:
    st = ResultStore(tmp_path / "s.db")
    st.add_sample(_sample("a", model="cascade", item="i0"))
    st.add_sample(_sample("a", model="rival", item="i0"))
    st.put_score(ScoreRecord("a", "in", "wer", "offline", "ck", "pp", "1", 0.25, None, {}, "r"))
    df = st.scores_frame()
    assert sorted(df.model) == ["cascade", "rival"] and list(df.value) == [0.25, 0.25]
    assert st.count("scores") == 1


def test_two_items_with_identical_content_under_one_model_both_appear(tmp_path: Path) -> None:
    """Samples are keyed by (model, benchmark, pack, item, seed, content): no item hides another."""
    st = ResultStore(tmp_path / "s.db")
    st.add_sample(_sample("same", item="i0", inputs="in-shared"))
    st.add_sample(_sample("same", item="i1", inputs="in-shared"))
    st.put_score(_score("same", 0.4, inputs="in-shared"))
    df = st.scores_frame()
    assert sorted(df.item_id) == ["i0", "i1"] and list(df.value) == [0.4, 0.4]
    assert st.count("samples") == 2 and st.count("scores") == 1


def test_same_content_under_two_inputs_hashes_keeps_both_scores(tmp_path: Path) -> None:
    """A model that ignores its inputs: one clip, two items with different references -> two scores."""
    st = ResultStore(tmp_path / "s.db")
    st.add_sample(_sample("clip", item="i0", inputs="inA"))
    st.add_sample(_sample("clip", item="i1", inputs="inB"))
    st.put_score(_score("clip", 0.9, inputs="inA"))
    st.put_score(_score("clip", 0.1, inputs="inB"))  # must not overwrite inA's value
    assert st.count("scores") == 2
    assert st.get_score("clip", "inA", ID).value == pytest.approx(0.9)
    assert st.get_score("clip", "inB", ID).value == pytest.approx(0.1)
    df = st.scores_frame().set_index("item_id")
    assert df.loc["i0", "value"] == pytest.approx(0.9) and df.loc["i1", "value"] == pytest.approx(0.1)
    # the item's inputs change (edited speech text): a new key, the old score is kept but no longer joined
    assert st.missing([("clip", "inC")], ID) == [("clip", "inC")]
    st.add_sample(_sample("clip", item="i0", inputs="inC"))
    st.put_score(_score("clip", 0.5, inputs="inC"))
    df = st.scores_frame().set_index("item_id")
    assert df.loc["i0", "value"] == pytest.approx(0.5) and st.count("scores") == 3


def test_successful_retry_deletes_the_failed_generation_and_its_scores(tmp_path: Path) -> None:
    st = ResultStore(tmp_path / "s.db")
    st.add_sample(_failed("failed:1", item="i0"))
    st.put_score(_score("failed:1", 1.0, FAILED, metric="wer"))
    st.add_sample(_failed("failed:other", item="i1"))  # another item's failure stays
    st.add_sample(_failed("failed:seed1", item="i0", seed=1))  # another seed's failure stays
    st.add_sample(_failed("failed:rival", model="rival", item="i0"))  # another model's failure stays
    st.add_sample(_sample("ok", item="i0"))
    st.put_score(_score("ok", 0.2, metric="wer"))
    sf = st.samples_frame()
    mine = sf[(sf.model == "cascade") & (sf.item_id == "i0") & (sf.seed == 0)]
    assert list(mine.sample_hash) == ["ok"] and mine.failure.isna().all()
    assert sorted(sf.sample_hash) == ["failed:other", "failed:rival", "failed:seed1", "ok"]
    assert st.get_score("failed:1", "in", {**ID, "metric": "wer"}) is None
    assert st.count("scores") == 1
    # a later failure never deletes a success (the leaderboard prefers the success)
    st.add_sample(_failed("failed:2", item="i0"))
    assert sorted(st.samples_frame().sample_hash) == ["failed:2", "failed:other", "failed:rival",
                                                      "failed:seed1", "ok"]


def test_generation_key_lookup(tmp_path: Path) -> None:
    st = ResultStore(tmp_path / "s.db")
    assert st.find_generation("k1") is None
    rec = _sample("a", model="cascade")
    rec.generation_key = "k1"
    st.add_sample(rec)
    found = st.find_generation("k1")
    assert found is not None and found.sample_hash == "a" and found.path == rec.path
    assert found.model == "cascade" and found.generation_key == "k1"
    st.forget_generation("k1")
    assert st.find_generation("k1") is None
    failed = _failed("failed:x")
    failed.generation_key = "k2"
    st.add_sample(failed)
    assert st.find_generation("k2") is None  # a failed generation is never reused


def test_rerun_skips_everything_already_scored(tmp_path: Path) -> None:
    db = str(tmp_path / "s.db")
    assert W.write_scores(db, "m", 40) == 40
    assert W.write_scores(db, "m", 40) == 0  # resume: nothing left to score
    assert W.write_scores(db, "m", 50) == 10  # only the new samples
    assert ResultStore(db).count("scores") == 50


def test_aggregates_round_trip(tmp_path: Path) -> None:
    st = ResultStore(tmp_path / "s.db")
    hs = set_hash(["b", "a", "a"])
    assert hs == set_hash(["a", "b"]) and hs != set_hash(["a"])
    ident = ("fd", "vgg", "k" * 64, "pp", "1")
    rec = AggregateRecord("cascade", "iap-mini", "all", "P1", *ident, hs, 0.73)
    st.put_aggregate(rec)
    st.put_aggregate(rec)
    assert st.has_aggregate("cascade", "iap-mini", "all", "P1", ident, hs)
    assert not st.has_aggregate("cascade", "iap-mini", "all", "P1", ident, "other")
    assert not st.has_aggregate("cascade", "iap-mini", "all", "P1", ("fd", "vgg", "k" * 64, "qq", "1"), hs)
    agg = st.aggregates_frame()
    assert len(agg) == 1 and agg.value.iloc[0] == pytest.approx(0.73) and agg.params.iloc[0] == "pp"


def test_threads_share_a_store_with_own_connections(tmp_path: Path) -> None:
    st = ResultStore(tmp_path / "s.db")
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(100):
                st.put_score(_score(f"t{t}-{i}", float(i)))
        except BaseException as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert st.count("scores") == 400


# -- crash safety and concurrency ------------------------------------------------------------------------


def _wait_for_rows(db: Path, n: int, proc: mp.Process, timeout_s: float = 60.0) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if db.exists():
            try:
                con = sqlite3.connect(db, timeout=5)
                got = con.execute("SELECT COUNT(*) FROM scores").fetchone()[0]
                con.close()
                if got >= n:
                    return
            except sqlite3.OperationalError:
                pass  # schema not created yet
        assert proc.is_alive(), "writer exited before it was killed"
        time.sleep(0.02)
    raise AssertionError("writer too slow")


def test_sigkill_mid_run_keeps_committed_rows_and_resume_completes(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    n = 400
    proc = CTX.Process(target=W.write_scores, args=(str(db), "m", n, 0.005))
    proc.start()
    _wait_for_rows(db, 60, proc)
    proc.kill()  # SIGKILL: no cleanup, WAL possibly mid-write
    proc.join()
    assert proc.exitcode == -9

    st = ResultStore(db)
    assert st.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    df = st.scores_frame()
    k = len(df)
    assert 60 <= k < n
    for row in df.itertuples():
        i = W.index_of(row.sample_hash)
        assert row.value == pytest.approx(W.expected_value(i))  # every committed row intact
        assert row.inputs_hash == W.inputs_hash(i)
    # writes are sequential, so the committed rows are exactly the first k
    assert sorted(df.sample_hash) == [W.sample_hash("m", i) for i in range(k)]
    st.close()

    resumed = CTX.Process(target=W.write_scores, args=(str(db), "m", n))
    resumed.start()
    resumed.join()
    assert resumed.exitcode == 0
    df = ResultStore(db, readonly=True).scores_frame()
    assert len(df) == n and df.sample_hash.is_unique
    assert sorted(df.sample_hash) == [W.sample_hash("m", i) for i in range(n)]


def test_two_processes_write_concurrently(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    ResultStore(db).close()
    procs = [CTX.Process(target=W.write_scores, args=(str(db), "a", 1500)),
             CTX.Process(target=W.write_scores, args=(str(db), "b", 1500, 0.0, 7))]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0]
    st = ResultStore(db)
    assert st.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    df = st.scores_frame()
    assert len(df) == 3000 and df.sample_hash.is_unique
    assert set(df.model) == {"a", "b"}
    for row in df.itertuples():
        assert row.value == pytest.approx(W.expected_value(W.index_of(row.sample_hash)))
    assert st.count("samples") == 3000


# -- read-only use, filesystems, WAL checkpoint ----------------------------------------------------------


def test_readonly_open_of_a_missing_path_creates_nothing(tmp_path: Path) -> None:
    target = tmp_path / "nested" / "absent.sqlite"
    with pytest.raises(UsageError, match="no result store"):
        ResultStore(target, readonly=True)
    assert not target.exists() and not target.parent.exists()
    assert list(tmp_path.iterdir()) == []


def test_readonly_store_reads_and_refuses_writes(tmp_path: Path) -> None:
    st = ResultStore(tmp_path / "s.db")
    st.add_sample(_sample("a"))
    st.put_score(_score("a", 0.5))
    st.close()
    ro = ResultStore(tmp_path / "s.db", readonly=True)
    assert ro.count("scores") == 1 and len(ro.scores_frame()) == 1
    with pytest.raises(RuntimeError, match="read-only"):
        ro.put_score(_score("b", 0.1))
    ro.checkpoint()  # no-op, never writes
    ro.close()
    for kind in ("text", "empty", "foreign"):
        with pytest.raises(UsageError, match="not an IAP-Bench result store"):
            ResultStore(_not_a_store(tmp_path, kind), readonly=True)


V2_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE samples (sample_hash TEXT NOT NULL, item_id TEXT NOT NULL, split TEXT NOT NULL, model TEXT NOT NULL,
    generator TEXT, seed INTEGER, path TEXT, pack_hash TEXT, benchmark TEXT, sidecar_json TEXT,
    created REAL NOT NULL, PRIMARY KEY (sample_hash, model));
CREATE TABLE generations (generation_key TEXT PRIMARY KEY, sample_hash TEXT NOT NULL, path TEXT, model TEXT,
    created REAL NOT NULL);
CREATE TABLE scores (sample_hash TEXT NOT NULL, metric TEXT NOT NULL, backend TEXT NOT NULL,
    checkpoint TEXT NOT NULL, version TEXT NOT NULL, value REAL, failure TEXT, extras_json TEXT,
    created REAL NOT NULL, run_id TEXT, PRIMARY KEY (sample_hash, metric, backend, checkpoint, version));
CREATE TABLE aggregates (model TEXT NOT NULL, benchmark TEXT NOT NULL, split TEXT NOT NULL,
    pack_hash TEXT NOT NULL, metric TEXT NOT NULL, backend TEXT NOT NULL, checkpoint TEXT NOT NULL,
    version TEXT NOT NULL, set_hash TEXT NOT NULL, value REAL, extras_json TEXT, created REAL NOT NULL,
    PRIMARY KEY (model, benchmark, split, pack_hash, metric, backend, checkpoint, version, set_hash));
CREATE TABLE runs (run_id TEXT PRIMARY KEY, started REAL NOT NULL, config_json TEXT, env_json TEXT, host TEXT);
CREATE INDEX scores_identity ON scores (metric, backend, checkpoint, version);
CREATE INDEX samples_model ON samples (model);
INSERT INTO meta VALUES ('schema_version', '2');
"""


def _v2_store(path: Path) -> Path:
    """A store written by the previous (schema v2) code."""
    con = sqlite3.connect(path)
    con.executescript(V2_SCHEMA)
    con.commit()
    con.close()
    return path


@pytest.mark.parametrize("folder", ["c#d", "g?h", "e%41f"])
def test_readonly_open_and_merge_of_paths_with_uri_characters(tmp_path: Path, folder: str) -> None:
    src = tmp_path / folder / "s.sqlite"
    src.parent.mkdir()
    W.write_scores(str(src), "m", 3)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert ResultStore(src, readonly=True).count("scores") == 3
    assert ResultStore(tmp_path / "dest.sqlite").merge_from(src).inserted > 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "dest.sqlite"
                  and not p.name.startswith("dest.sqlite-")) == before  # no stray file created


def test_older_schema_is_refused_with_one_clear_line(tmp_path: Path) -> None:
    old = _v2_store(tmp_path / "v2.sqlite")
    for kw in ({"readonly": True}, {}):
        with pytest.raises(UsageError, match=r"schema v2, this code reads v3") as e:
            ResultStore(old, **kw)
        assert "\n" not in str(e.value)
    with pytest.raises(UsageError, match=r"schema v2"):
        ResultStore(tmp_path / "new.sqlite").merge_from(old)


@pytest.mark.parametrize("kind", ["text", "foreign", "v2"])
def test_writable_open_refuses_non_stores_without_touching_them(tmp_path: Path, kind: str) -> None:
    path = _v2_store(tmp_path / "v2.sqlite") if kind == "v2" else _not_a_store(tmp_path, kind)
    before = path.read_bytes() if kind == "text" else _dump(path)
    with pytest.raises(UsageError):
        ResultStore(path)
    assert (path.read_bytes() if kind == "text" else _dump(path)) == before


def test_network_filesystem_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from iap_bench.store import fs

    monkeypatch.setattr(fs, "filesystem_type", lambda path, mounts_file="/proc/mounts": "nfs4")
    target = tmp_path / "shared" / "s.sqlite"
    with pytest.raises(UsageError) as e:
        ResultStore(target)
    msg = str(e.value)
    assert str(target) in msg and "network" in msg and "nfs4" in msg and "merge" in msg
    assert not target.parent.exists()
    ResultStore(target, check_filesystem=False).close()  # explicit opt-out (temporary merges)
    ResultStore(target, readonly=True).close()  # reading is safe anywhere
    monkeypatch.setattr(fs, "filesystem_type", lambda path, mounts_file="/proc/mounts": "ext4")
    ResultStore(tmp_path / "local.sqlite").close()


def test_filesystem_type_from_a_mounts_file(tmp_path: Path) -> None:
    from iap_bench.store.fs import NETWORK_FS, check_local, filesystem_type

    root = tmp_path.resolve()
    mounts = tmp_path / "mounts"
    mounts.write_text(
        "/dev/sda1 / ext4 rw 0 0\n"
        f"server:/export {root}/cluster nfs4 rw 0 0\n"
        f"tmpfs {root}/cluster/scratch tmpfs rw 0 0\n"
        f"//nas/share {root}/my\\040share cifs rw 0 0\n"
        "garbage\n")
    (root / "cluster" / "scratch").mkdir(parents=True)
    (root / "my share").mkdir()
    ft = str(mounts)
    assert filesystem_type(root / "cluster" / "runs" / "s.sqlite", ft) == "nfs4"  # not yet created: parent
    assert filesystem_type(root / "cluster" / "scratch" / "s.sqlite", ft) == "tmpfs"  # longest mount wins
    assert filesystem_type(root / "clusterX" / "s.sqlite", ft) == "ext4"  # a prefix is not a mount
    assert filesystem_type(root / "my share" / "s.sqlite", ft) == "cifs"
    assert filesystem_type(root, str(tmp_path / "no-such-mounts")) == ""
    assert {"nfs4", "cifs", "lustre"} <= NETWORK_FS and "ext4" not in NETWORK_FS
    check_local(tmp_path / "s.sqlite")  # the test machine's own disk


def test_copied_main_file_alone_is_complete_after_close(tmp_path: Path) -> None:
    db = tmp_path / "live" / "s.sqlite"
    st = ResultStore(db)
    other = ResultStore(db)  # another open connection: SQLite will not fold the WAL on its own
    other.count("scores")
    for i in range(30):
        st.add_sample(_sample(f"h{i}", item=f"i{i}"))
    st.put_scores([_score(f"h{i}", i / 10) for i in range(30)])
    assert (tmp_path / "live" / "s.sqlite-wal").stat().st_size > 0
    st.close()
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copyfile(db, copy / "s.sqlite")  # the main file only, no -wal / -shm
    ro = ResultStore(copy / "s.sqlite", readonly=True)
    assert ro.count("samples") == 30 and ro.count("scores") == 30 and len(ro.scores_frame()) == 30
    # checkpoint() does the same without closing
    st2 = ResultStore(db)
    st2.put_score(_score("h0", 9.0, inputs="later"))
    st2.add_sample(_sample("h0", item="i-later", inputs="later"))
    st2.checkpoint()
    shutil.copyfile(db, copy / "s2.sqlite")
    assert ResultStore(copy / "s2.sqlite", readonly=True).count("scores") == 31
    other.close()


# -- merges ----------------------------------------------------------------------------------------------


def test_merge_two_machines_union_and_dedup(tmp_path: Path) -> None:
    m1, m2 = ResultStore(tmp_path / "m1.db"), ResultStore(tmp_path / "m2.db")
    shared = [_score(f"s{i}", i / 10) for i in range(5)]
    for st, own in ((m1, "x"), (m2, "y")):
        st.add_run(f"run-{own}", {"rank": own}, {"python": "3.11"}, label="cascade")
        for i in range(5):
            st.add_sample(_sample(f"s{i}"))
        st.put_scores(shared)  # same content on both machines
        for i in range(3):
            st.add_sample(_sample(f"{own}{i}"))
            st.put_score(_score(f"{own}{i}", 1.0 + i))
    m2.put_aggregate(AggregateRecord("cascade", "iap-mini", "all", "P1", "fd", "vgg", "k", "pp", "1", "h", 0.9))
    m2.put_metric_params("pp", "fd", "vgg", {"params": {}})

    report = m1.merge_from(tmp_path / "m2.db")
    assert isinstance(report, MergeReport)
    # 3 samples + 3 scores + 1 aggregate + 1 metric_params + 1 run from m2 are new; shared rows deduplicated
    assert (report.inserted, report.replaced, report.conflicts) == (9, 0, [])
    assert m1.count("scores") == 5 + 3 + 3
    assert m1.count("samples") == 5 + 3 + 3
    assert m1.count("runs") == 2 and m1.count("aggregates") == 1 and m1.count("metric_params") == 1
    again = m1.merge_from(tmp_path / "m2.db")  # idempotent
    assert (again.inserted, again.replaced, again.conflicts) == (0, 0, [])
    self_merge = m1.merge_from(tmp_path / "m1.db")  # self-merge is a no-op
    assert (self_merge.inserted, self_merge.replaced) == (0, 0)
    con = sqlite3.connect(tmp_path / "m1.db")
    keys = con.execute(f"SELECT {', '.join(SCORE_KEY)} FROM scores").fetchall()
    con.close()
    assert len(keys) == len(set(keys)) == 11


def test_merge_value_beats_failure_and_conflicts_are_reported(tmp_path: Path) -> None:
    ours, theirs = ResultStore(tmp_path / "ours.db"), ResultStore(tmp_path / "theirs.db")
    for st in (ours, theirs):
        for h in ("f", "g", "c", "same"):
            st.add_sample(_sample(h))
    ours.put_scores([_score("f", None, "metric_error"), _score("g", 0.7), _score("c", 0.25),
                     _score("same", 0.5)])
    theirs.put_scores([_score("f", 0.4), _score("g", None, "no_face"), _score("c", 0.75),
                       _score("same", 0.5 + 1e-9)])
    report = ours.merge_from(tmp_path / "theirs.db")
    assert report.replaced == 1 and report.inserted == 0
    assert ours.get_score("f", "in", ID).value == pytest.approx(0.4)  # their value beats our failure
    assert ours.get_score("f", "in", ID).failure is None
    assert ours.get_score("g", "in", ID).value == pytest.approx(0.7)  # our value beats their failure
    assert ours.get_score("c", "in", ID).value == pytest.approx(0.25)  # conflict: ours kept
    assert len(report.conflicts) == 1  # values within tolerance are the same number
    c = report.conflicts[0]
    assert (c["sample_hash"], c["inputs_hash"], c["metric"], c["params"]) == ("c", "in", "pq", ID["params"])
    assert c["ours"] == pytest.approx(0.25) and c["theirs"] == pytest.approx(0.75)


def _merge_success_over_failure(tmp_path: Path) -> tuple[ResultStore, MergeReport]:
    ours, theirs = ResultStore(tmp_path / "ours.db"), ResultStore(tmp_path / "theirs.db")
    ours.add_sample(_failed("failed:x", item="i0"))
    ours.put_score(_score("failed:x", 1.0, FAILED))
    theirs.add_sample(_sample("ok", item="i0"))
    theirs.put_score(_score("ok", 0.2))
    return ours, ours.merge_from(tmp_path / "theirs.db")


def test_merged_success_deletes_our_failed_generation(tmp_path: Path) -> None:
    ours, _ = _merge_success_over_failure(tmp_path)
    assert list(ours.samples_frame().sample_hash) == ["ok"]
    assert ours.count("scores") == 1 and ours.get_score("failed:x", "in", ID) is None
    assert ours.get_score("ok", "in", ID).value == pytest.approx(0.2)


def test_merge_report_counts_only_inserted_rows(tmp_path: Path) -> None:
    _, report = _merge_success_over_failure(tmp_path)
    assert report.inserted == 2  # one sample + one score; the two deleted rows are not insertions


def test_merge_refuses_non_stores(tmp_path: Path) -> None:
    st = ResultStore(tmp_path / "s.db")
    st.add_sample(_sample("a"))
    before = _dump(tmp_path / "s.db")
    for kind in ("text", "empty", "foreign"):
        with pytest.raises(UsageError, match="not an IAP-Bench result store"):
            st.merge_from(_not_a_store(tmp_path, kind))
    with pytest.raises(UsageError, match="no result store"):
        st.merge_from(tmp_path / "absent.db")
    with pytest.raises(UsageError, match="no result store"):
        st.check_mergeable(tmp_path)  # a folder
    assert _dump(tmp_path / "s.db") == before
    assert not (tmp_path / "absent.db").exists()


def test_open_stores_reads_several_as_one(tmp_path: Path) -> None:
    W.write_scores(str(tmp_path / "a.db"), "a", 5)
    W.write_scores(str(tmp_path / "b.db"), "b", 7)
    one, rep = open_stores([tmp_path / "a.db"])
    assert one.readonly and one.count("scores") == 5 and rep == MergeReport()
    both, rep = open_stores([tmp_path / "a.db", tmp_path / "b.db"])
    assert both.count("scores") == 12 and rep.conflicts == [] and rep.inserted > 0
    assert set(both.scores_frame().model) == {"a", "b"}
    with pytest.raises(UsageError, match="not an IAP-Bench result store"):
        open_stores([tmp_path / "a.db", _not_a_store(tmp_path, "text")])
    with pytest.raises(UsageError, match="no result store"):
        open_stores([tmp_path / "absent.db"])


def test_env_collection() -> None:
    env = default_env()
    assert env["python"].count(".") == 2
    assert env["packages"]["numpy"] and env["packages"]["pandas"]
    assert env["torch"] == env["packages"]["torch"]
    assert env["git_commit"] is None or len(env["git_commit"]) == 40
    custom = collect_env(["pytest", "surely-not-installed-pkg"])
    assert custom["packages"]["surely-not-installed-pkg"] is None and custom["packages"]["pytest"]


# -- CLI -------------------------------------------------------------------------------------------------


def test_merge_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name, prefix in (("r0.db", "a"), ("r1.db", "b")):
        W.write_scores(str(tmp_path / name), prefix, 20)
    assert store_main(["merge", str(tmp_path / "all.db"), str(tmp_path / "r0.db"), str(tmp_path / "r1.db")]) == 0
    out = capsys.readouterr().out
    assert "r0.db: 40 new rows" in out and "0 conflicting values" in out
    assert ResultStore(tmp_path / "all.db", readonly=True).count("scores") == 40
    assert store_main(["info", str(tmp_path / "all.db")]) == 0
    out = capsys.readouterr().out
    assert "scores: 40" in out and "samples: 40" in out
    assert store_main(["info", str(tmp_path / "absent.db")]) == 2
    assert capsys.readouterr().err.startswith("error: no result store")


def test_merge_cli_reports_conflicts_with_both_numbers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name, value in (("dest.db", 0.25), ("src.db", 0.75)):
        st = ResultStore(tmp_path / name)
        st.add_sample(_sample("abcdef0123456789"))
        st.put_score(_score("abcdef0123456789", value))
        st.close()
    assert store_main(["merge", str(tmp_path / "dest.db"), str(tmp_path / "src.db")]) == 1
    out = capsys.readouterr().out
    assert "1 conflicting values" in out
    assert "conflict pq/reference sample abcdef012345: ours 0.25 vs theirs 0.75" in out
    assert ResultStore(tmp_path / "dest.db", readonly=True).get_score("abcdef0123456789", "in", ID).value == 0.25


@pytest.mark.parametrize("kind", ["text", "empty"])
def test_merge_cli_refuses_a_non_store_before_merging_anything(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str) -> None:
    W.write_scores(str(tmp_path / "good.db"), "g", 10)
    dest = tmp_path / "dest.db"
    W.write_scores(str(dest), "d", 3)
    before = _dump(dest)
    bad = _not_a_store(tmp_path, kind)
    # the good source comes first: a merge that checked sources one by one would already have copied it
    assert store_main(["merge", str(dest), str(tmp_path / "good.db"), str(bad)]) == 2
    cap = capsys.readouterr()
    lines = cap.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(bad) in lines[0]
    assert cap.out == ""
    assert _dump(dest) == before


def test_merge_cli_refused_merge_creates_no_dest(tmp_path: Path) -> None:
    dest = tmp_path / "new.db"
    assert store_main(["merge", str(dest), str(_not_a_store(tmp_path, "text"))]) == 2
    assert not dest.exists()
