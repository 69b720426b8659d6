"""ResultStore: keys, resume, crash safety (SIGKILL), concurrent writers and cross-machine merges."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import store_workers as W  # noqa: E402

from iap_bench.store import (  # noqa: E402
    AggregateRecord,
    ResultStore,
    SampleRecord,
    ScoreRecord,
    collect_env,
    default_env,
    set_hash,
)

CTX = mp.get_context("spawn")
ID = W.IDENTITY


def _score(h: str, value: float | None, failure: str | None = None, **over: str) -> ScoreRecord:
    ident = {**ID, **over}
    return ScoreRecord(h, value=value, failure=failure, **ident)


def _sample(h: str, model: str = "cascade", split: str = "single", pack: str = "P1") -> SampleRecord:
    return SampleRecord(h, f"item-{h}", split, model, generator="cascade", seed=0, path=f"/x/{h}.mp4",
                        pack_hash=pack, benchmark="iap-mini", sidecar={"fps": 25})


def _rows(db: Path) -> list[tuple]:
    con = sqlite3.connect(db)
    try:
        return sorted(con.execute("SELECT sample_hash, metric, backend, checkpoint, version, value, failure "
                                  "FROM scores").fetchall())
    finally:
        con.close()


def test_wal_mode_and_pragmas(tmp_path: Path) -> None:
    st = ResultStore(tmp_path / "s.db")
    assert st.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert st.conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert st.conn.execute("PRAGMA busy_timeout").fetchone()[0] == 30000


def test_put_get_has_missing(tmp_path: Path) -> None:
    st = ResultStore(tmp_path / "s.db")
    for h in ("a", "b", "c"):
        st.add_sample(_sample(h))
    st.put_score(_score("a", 0.5))
    st.put_scores([_score("b", None, "no_face"), _score("b", 0.9, backend="offline")])
    assert st.has_score("a", *ID.values())
    assert st.has_score("b", *ID.values())  # a failure counts as scored: never re-run
    assert not st.has_score("c", *ID.values())
    assert not st.has_score("a", "pq", "reference", ID["checkpoint"], "2")  # new version = new key
    assert st.missing(["a", "b", "c", "c"], ID) == ["c"]
    assert st.missing(["a", "b", "c"], ("pq", "offline", ID["checkpoint"], "1")) == ["a", "c"]
    got = st.get_score("b", *ID.values())
    assert got is not None and got.value is None and got.failure == "no_face"
    assert st.get_score("a", *ID.values()).value == pytest.approx(0.5)
    # INSERT OR REPLACE: re-putting a key overwrites, never duplicates
    st.put_score(_score("a", 0.75))
    assert st.get_score("a", *ID.values()).value == pytest.approx(0.75)
    assert st.count("scores") == 3
    # NaN is not a score: stored as NULL with a reason
    st.put_score(_score("c", float("nan")))
    assert st.get_score("c", *ID.values()).failure == "non_finite"


def test_keyword_put_score_and_frames(tmp_path: Path) -> None:
    st = ResultStore(tmp_path / "s.db")
    st.add_run("run1", {"generator": "cascade"}, {"python": "3.11"})
    st.add_sample(_sample("a", model="iap:ckpt_a", split="multi"))
    st.put_score(sample_hash="a", value=7.0, run_id="run1", **ID)
    df = st.scores_frame()
    assert len(df) == 1
    row = df.iloc[0]
    assert (row.model, row.split, row.pack_hash, row.benchmark, row.run_id) == (
        "iap:ckpt_a", "multi", "P1", "iap-mini", "run1")
    assert row.value == 7.0
    runs = st.runs_frame()
    assert list(runs.run_id) == ["run1"] and "cascade" in runs.config_json.iloc[0]


def test_sample_relabel_is_an_error(tmp_path: Path) -> None:
    st = ResultStore(tmp_path / "s.db")
    st.add_sample(_sample("a", model="cascade"))
    st.add_sample(_sample("a", model="cascade"))  # same labels: no-op
    with pytest.raises(ValueError, match="already stored"):
        st.add_sample(_sample("a", model="cascade", split="multi"))
    st.add_sample(_sample("a", model="cascade", split="multi"), replace=True)
    assert list(st.samples_frame().split) == ["multi"]


def test_same_content_under_two_models_shares_scores(tmp_path: Path) -> None:
    st = ResultStore(tmp_path / "s.db")
    st.add_sample(_sample("a", model="cascade"))
    st.add_sample(_sample("a", model="rival"))
    st.put_score(ScoreRecord("a", "wer", "offline", "ck", "1", 0.25, None, {}, "r"))
    df = st.scores_frame()
    assert sorted(df.model) == ["cascade", "rival"] and list(df.value) == [0.25, 0.25]


def test_generation_key_lookup(tmp_path: Path) -> None:
    st = ResultStore(tmp_path / "s.db")
    assert st.find_generation("k1") is None
    rec = _sample("a", model="cascade")
    rec.generation_key = "k1"
    st.add_sample(rec)
    found = st.find_generation("k1")
    assert found is not None and found.sample_hash == "a" and found.path == rec.path


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
    rec = AggregateRecord("cascade", "iap-mini", "all", "P1", "fd", "vgg", "k" * 64, "1", hs, 0.73)
    st.put_aggregate(rec)
    st.put_aggregate(rec)
    assert st.has_aggregate("cascade", "iap-mini", "all", "P1", ("fd", "vgg", "k" * 64, "1"), hs)
    assert not st.has_aggregate("cascade", "iap-mini", "all", "P1", ("fd", "vgg", "k" * 64, "1"), "other")
    agg = st.aggregates_frame()
    assert len(agg) == 1 and agg.value.iloc[0] == pytest.approx(0.73)


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
        i = int(row.sample_hash.rsplit("-", 1)[1])
        assert row.value == pytest.approx(W.expected_value(i))  # every committed row intact
    # writes are sequential, so the committed rows are exactly the first k
    assert sorted(df.sample_hash) == [W.sample_hash("m", i) for i in range(k)]

    resumed = CTX.Process(target=W.write_scores, args=(str(db), "m", n))
    resumed.start()
    resumed.join()
    assert resumed.exitcode == 0
    df = ResultStore(db).scores_frame()
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
        assert row.value == pytest.approx(W.expected_value(int(row.sample_hash.rsplit("-", 1)[1])))
    assert st.count("samples") == 3000


def test_merge_two_machines_union_and_dedup(tmp_path: Path) -> None:
    m1, m2 = ResultStore(tmp_path / "m1.db"), ResultStore(tmp_path / "m2.db")
    shared = [_score(f"s{i}", i / 10) for i in range(5)]
    for st, own in ((m1, "x"), (m2, "y")):
        st.add_run(f"run-{own}", {"rank": own}, {"python": "3.11"})
        for i in range(5):
            st.add_sample(_sample(f"s{i}"))
        st.put_scores(shared)  # same content on both machines
        for i in range(3):
            st.add_sample(_sample(f"{own}{i}"))
            st.put_score(_score(f"{own}{i}", 1.0 + i))
    m2.put_aggregate(AggregateRecord("cascade", "iap-mini", "all", "P1", "fd", "vgg", "k", "1", "h", 0.9))
    # a conflicting value for one shared key: the receiving store keeps its own
    m2.put_score(_score("s0", 99.0))

    inserted = m1.merge_from(tmp_path / "m2.db")
    # 3 samples + 3 scores + 1 aggregate + 1 run from m2 are new; shared rows are deduplicated
    assert inserted == 8
    assert m1.count("scores") == 5 + 3 + 3
    assert m1.count("samples") == 5 + 3 + 3
    assert m1.count("runs") == 2 and m1.count("aggregates") == 1
    assert m1.get_score("s0", *ID.values()).value == pytest.approx(0.0)
    assert m1.merge_from(tmp_path / "m2.db") == 0  # idempotent
    assert m1.merge_from(tmp_path / "m1.db") == 0  # self-merge is a no-op
    rows = _rows(tmp_path / "m1.db")
    assert len(rows) == len(set(r[:5] for r in rows))


def test_merge_rejects_foreign_files(tmp_path: Path) -> None:
    st = ResultStore(tmp_path / "s.db")
    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    with pytest.raises(ValueError, match="not an IAP-Bench result store"):
        st.merge_from(other)
    with pytest.raises(FileNotFoundError):
        st.merge_from(tmp_path / "absent.db")


def test_env_collection() -> None:
    env = default_env()
    assert env["python"].count(".") == 2
    assert env["packages"]["numpy"] and env["packages"]["pandas"]
    assert env["torch"] == env["packages"]["torch"]
    assert env["git_commit"] is None or len(env["git_commit"]) == 40
    custom = collect_env(["pytest", "surely-not-installed-pkg"])
    assert custom["packages"]["surely-not-installed-pkg"] is None and custom["packages"]["pytest"]


def test_merge_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from iap_bench.store import main

    for name, prefix in (("r0.db", "a"), ("r1.db", "b")):
        W.write_scores(str(tmp_path / name), prefix, 20)
    assert main(["merge", str(tmp_path / "all.db"), str(tmp_path / "r0.db"), str(tmp_path / "r1.db")]) == 0
    assert ResultStore(tmp_path / "all.db").count("scores") == 40
    assert main(["info", str(tmp_path / "all.db")]) == 0
    assert "scores: 40" in capsys.readouterr().out
