"""Bad use of `iap-bench` gets one `error:` line and exit code 2 before any work starts (nothing written).

Most cases call ``iap_bench.preflight.check_config`` on configs composed by Hydra's compose API (fast); a few
representative ones run the real console script in a subprocess, as a new user would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from iap_bench.errors import UsageError

ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = str(ROOT / "conf")


@pytest.fixture(scope="module")
def compose() -> Iterator[Callable[..., object]]:
    """``compose(*overrides)`` -> the app's composed config (the cli module registers ``${iap_data:...}``)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    import iap_bench.cli  # noqa: F401  (registers the iap_data resolver)

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        yield lambda *overrides: hydra_compose("config", overrides=list(overrides))


@pytest.fixture()
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A launch directory with a file, an empty folder and a samples folder; no IAP_BENCH_STORE."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("IAP_BENCH_STORE", raising=False)
    (tmp_path / "afile").write_text("x")
    (tmp_path / "folder").mkdir()
    (tmp_path / "samples").mkdir()
    (tmp_path / "samples" / "mini_s01.mp4").write_bytes(b"")
    return tmp_path


def rejected(compose, here: Path, *overrides: str) -> str:
    """The one-line UsageError message for ``overrides`` (a store in ``here`` unless one is given)."""
    from iap_bench.preflight import check_config

    if not any(o.startswith("store=") for o in overrides):
        overrides = (*overrides, f"store={here / 's.sqlite'}")
    with pytest.raises(UsageError) as e:
        check_config(compose(*overrides))
    message = str(e.value)
    assert message and "\n" not in message, repr(message)
    assert not (here / "s.sqlite").exists()
    return message


BAD = [  # overrides, words the one-line message must contain
    (["limit=-1"], ["limit", "-1", ">= 1"]),
    (["limit=0"], ["limit", "got 0"]),
    (["limit=abc"], ["limit", "'abc'"]),
    (["limit=true"], ["limit", "True"]),
    (["seed=abc"], ["seed", "'abc'"]),
    (["seed=1.5"], ["seed", "1.5"]),
    (["seed=-1"], ["seed", ">= 0"]),
    (["shard.count=0"], ["shard.count", "got 0"]),
    (["shard.index=3"], ["shard.index", "0..0", "got 3"]),
    (["shard.index=-1", "shard.count=2"], ["shard.index", "0..1", "got -1"]),
    (["eval.chunk_size=0"], ["eval.chunk_size", ">= 1"]),
    (["eval.decode_workers=0"], ["eval.decode_workers", ">= 1"]),
    (["eval.threads=abc"], ["eval.threads", "'abc'"]),
    (["generator.name=nonexistent"], ["unknown generator 'nonexistent'", "cascade, iap, precomputed"]),
    (["+generator.params.stpes=3"], ["cascade", "unknown parameter 'stpes'", "accepted:", "fps"]),
    (["generator=iap", "+generator.params.stpes=3"], ["iap", "'stpes'", "did you mean 'steps'"]),
    (["generator=precomputed"], ["precomputed", "generator.params.samples_dir"]),
    (["generator=precomputed", "generator.params.samples_dir=nope"], ["nope", "does not exist", "launch directory"]),
    (["metrics.metrics=[nope/offline]"], ["not implemented", "nope/offline", "wer/offline"]),
    (["metrics.metrics=[{name:vid_sim/offline,params:{n_frame:3}}]"], ["'n_frame'", "did you mean 'n_frames'", "accepted:"]),
    (["metrics.metrics=[{name:vid_sim/offline,n_frames:3}]"], ["metrics.metrics[0]", "'n_frames'", "params"]),
    (["job=evaluate"], ["evaluate", "samples_dir="]),
    (["job=evaluate", "samples_dir=nope", "label=x"], ["nope", "does not exist", "samples_dir"]),
    (["job=evaluate", "samples_dir=afile", "label=x"], ["afile", "not a folder"]),
    (["job=evaluate", "samples_dir=samples"], ["label=NAME", "leaderboard row"]),
    (["job=evaluate", "samples_dir=samples", "label=x", "generator=precomputed", "+generator.params.patern=x"],
     ["precomputed", "'patern'", "did you mean 'pattern'"]),
    (["store=afile/sub/s.sqlite"], ["afile", "is a file"]),
    (["store=folder"], ["folder", "is a folder"]),
    (["store=[a.sqlite,b.sqlite]"], ["one store file", "leaderboard"]),
    (["store=out/*.sqlite"], ["one store file", "leaderboard"]),
    (["job=evaluate", "samples_dir=samples", "label=x", "store=afile/s.sqlite"], ["afile", "is a file"]),
    (["job=leaderboard", "store=nope.sqlite"], ["nope.sqlite", "does not exist"]),
    (["job=leaderboard", "store=nope*.sqlite"], ["nope*.sqlite", "matches no file"]),
    (["job=leaderboard", "store=[afile,missing.sqlite]"], ["missing.sqlite", "does not exist"]),
    (["job=leaderboard", "store=folder"], ["folder", "is a folder"]),
    (["job=leaderboard", "store=null"], ["no result store", "outputs"]),
    (["benchmark.manifest=nope.yaml"], ["manifest", "nope.yaml", "does not exist", "launch directory"]),
    (["benchmark.manifest=folder"], ["manifest", "folder", "is a folder"]),
    (["benchmark.pack=nopack"], ["media pack", "nopack", "does not exist"]),
    (["job=validate", "benchmark=iap100", "benchmark.pack=afile"], ["media pack", "afile", "is a file"]),
    (["job=leaderboard", "store=afile", "benchmark.manifest=nope.yaml"], ["nope.yaml", "does not exist"]),
]


@pytest.mark.parametrize("overrides, words", BAD, ids=[" ".join(o) for o, _ in BAD])
def test_bad_use_is_one_clear_line(compose, here: Path, overrides: list[str], words: list[str]) -> None:
    message = rejected(compose, here, *overrides)
    for w in words:
        assert w in message, f"{w!r} not in {message!r}"


GOOD = [
    [],
    ["limit=3", "seed=7", "shard.index=1", "shard.count=2", "eval.threads=2"],
    ["store=sub/dir/s.sqlite"],  # a folder that does not exist yet is created by the store
    ["generator=iap", "generator.params.steps=3"],
    ["generator=precomputed", "generator.params.samples_dir=samples"],
    ["metrics.metrics=[wer/offline,{name:vid_sim/offline,params:{n_frames:16}}]"],
    ["job=evaluate", "samples_dir=samples", "label=rival"],
    ["job=evaluate", "samples_dir=samples", "label=rival", "generator=precomputed"],
    ["job=leaderboard", "store=afile"],
    ["job=leaderboard", "store=afi*"],
    ["job=leaderboard", "store=[afile,afi*]"],
    ["job=validate", "benchmark=iap100"],
    ["job=validate", "benchmark=iap100", "benchmark.pack=folder", "limit=2"],
]


@pytest.mark.parametrize("overrides", GOOD, ids=[" ".join(o) or "defaults" for o in GOOD])
def test_good_use_passes_and_imports_no_adapter(compose, here: Path, overrides: list[str]) -> None:
    from iap_bench.preflight import check_config

    if not any(o.startswith("store=") for o in overrides):
        overrides = [*overrides, f"store={here / 's.sqlite'}"]
    loaded = {m for m in ("iap_bench.generators.iap", "iap_bench.generators.cascade") if m in sys.modules}
    check_config(compose(*overrides))
    for m in ("iap_bench.generators.iap", "iap_bench.generators.cascade"):  # torch / OpenCV stay unloaded
        assert m in loaded or m not in sys.modules, m
    assert not (here / "s.sqlite").exists() and not (here / "sub").exists()


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root may write anywhere")
def test_read_only_store_folder(compose, here: Path) -> None:
    ro = here / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        message = rejected(compose, here, f"store={ro / 's.sqlite'}")
    finally:
        ro.chmod(0o755)
    assert str(ro) in message and "not writable" in message


def test_leaderboard_default_store_in_launch_dir(compose, here: Path) -> None:
    from iap_bench.preflight import check_config

    assert "no result store" in rejected(compose, here, "job=leaderboard", "store=null")
    (here / "outputs").mkdir()
    (here / "outputs" / "iap-bench.sqlite").write_bytes(b"")
    check_config(compose("job=leaderboard", "store=null"))


# ---- the real console script: a few representative cases -----------------------------------------------
def iap_bench(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    env.pop("IAP_BENCH_STORE", None)
    return subprocess.run([sys.executable, "-m", "iap_bench", *args, f"hydra.run.dir={cwd / 'run'}"], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=300)


CLI = [  # args (a store in the tmp dir is added), what the error line must name
    (["limit=abc"], ["limit", "'abc'"]),
    (["evaluate", "samples_dir={tmp}/missing", "label=x"], ["{tmp}/missing", "does not exist"]),
    (["+generator.params.stpes=3"], ["'stpes'", "cascade"]),
    (["leaderboard"], ["{tmp}/s.sqlite", "does not exist"]),
]


@pytest.mark.parametrize("args, words", CLI, ids=[" ".join(a) for a, _ in CLI])
def test_console_script_exits_2_with_one_error_line(tmp_path: Path, args: list[str], words: list[str]) -> None:
    store = tmp_path / "s.sqlite"
    proc = iap_bench(tmp_path, *[a.format(tmp=tmp_path) for a in args], f"store={store}")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "Traceback" not in out, out
    errors = [ln for ln in out.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, out
    for w in words:
        assert w.format(tmp=tmp_path) in errors[0], out
    assert not store.exists()
    assert not (tmp_path / "run" / "summary.json").exists()
