"""Item 5: leaderboard rows are unique by construction; `evaluate` without a label says how to give one."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_two_checkpoint_files_in_one_folder_get_two_labels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from iap_bench.generators.iap import IAPGenerator

    monkeypatch.chdir(tmp_path)
    Path("a.safetensors").write_bytes(b"checkpoint a")
    Path("b.safetensors").write_bytes(b"checkpoint b")
    a, b = IAPGenerator(ckpt="a.safetensors").label, IAPGenerator(ckpt="b.safetensors").label
    assert a.startswith("iap:a@") and b.startswith("iap:b@") and a != b
    # one file retrained in place is another row too (the hash is part of the label)
    Path("a.safetensors").write_bytes(b"checkpoint a, retrained")
    from iap_bench.hashing import _CACHE

    _CACHE.clear()
    assert IAPGenerator(ckpt="a.safetensors").label != a
    assert IAPGenerator(ckpt="a.safetensors", label="mine").label == "mine"


def test_evaluate_without_label_is_refused() -> None:
    from omegaconf import OmegaConf

    from iap_bench.cli import _generator_from_cfg
    from iap_bench.errors import IAPBenchError

    cfg = OmegaConf.create({"job": "evaluate", "samples_dir": "/tmp", "label": None,
                            "generator": {"name": "cascade", "params": {}}})
    with pytest.raises(IAPBenchError, match="label=NAME"):
        _generator_from_cfg(cfg)
