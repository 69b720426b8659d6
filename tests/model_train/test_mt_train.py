"""Training loop: the tiny model learns synthetic latents, resume is exact, stages train the right towers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from model.train import DataConfig, TrainConfig, Trainer

REPO = Path(__file__).resolve().parents[2]


def _cfg(**kw) -> TrainConfig:
    base = dict(steps=200, batch_size=4, lr=1e-3, warmup_steps=5, progress=False, text_dropout=0.1,
                data=DataConfig(root="unused"), device="cpu", log_every=50)
    base.update(kw)
    return TrainConfig(**base)


def test_loss_falls_by_half_in_200_steps(tiny_cfg, latent_data, tmp_path):
    tr = Trainer(tiny_cfg, _cfg(), tmp_path / "run", dataset=latent_data)
    hist = tr.fit()
    start = np.mean([h["loss"] for h in hist[:10]])
    end = np.mean([h["loss"] for h in hist[-10:]])
    assert end < 0.5 * start, (start, end)
    assert all("loss_video" in h and "loss_audio" in h for h in hist)
    rows = (tmp_path / "run/metrics.csv").read_text().splitlines()
    assert rows[0].startswith("step,loss,loss_video,loss_audio") and len(rows) == 1 + 200 // 50
    assert (tmp_path / "run/checkpoints/step_0000200/model.safetensors").exists()


def _params(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_resume_continues_identically(tiny_cfg, latent_data, tmp_path):
    cfg = _cfg(steps=6, save_every=3)
    straight = Trainer(tiny_cfg, cfg, tmp_path / "a", dataset=latent_data)
    straight.fit()

    first = Trainer(tiny_cfg, cfg, tmp_path / "b", dataset=latent_data)
    first.fit(3)  # saves step_0000003
    ckpt = tmp_path / "b/checkpoints/step_0000003"
    resumed = Trainer(tiny_cfg, cfg, tmp_path / "b", dataset=latent_data)
    resumed.resume("auto")
    assert resumed.step == 3
    o1, o2 = first.opt.state_dict(), resumed.opt.state_dict()
    assert o1["param_groups"] == o2["param_groups"]
    for k, st in o1["state"].items():
        assert torch.equal(st["exp_avg"], o2["state"][k]["exp_avg"]) and float(st["step"]) == float(o2["state"][k]["step"])
    assert json.loads((ckpt / "config.json").read_text())["step"] == 3
    resumed.fit()
    a, b = _params(straight.model), _params(resumed.model)
    assert resumed.step == straight.step == 6
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][:3]


def test_stage_1a_trains_only_the_audio_tower(tiny_cfg, latent_data, tmp_path):
    tr = Trainer(tiny_cfg, _cfg(stage="1a", steps=2), tmp_path / "r", dataset=latent_data)
    assert tr.mode == "audio"
    before = _params(tr.model)
    hist = tr.fit()
    after = _params(tr.model)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("audio_model.") and "fusion" not in k for k in changed)
    assert "loss_video" not in hist[0] and "loss_audio" in hist[0]


def test_stage2_merges_the_two_stage1_towers(tiny_cfg, latent_data, tmp_path):
    from model.train import load_tower

    ta = Trainer(tiny_cfg, _cfg(stage="1a", steps=1), tmp_path / "a", dataset=latent_data)
    ta.fit()
    tv = Trainer(tiny_cfg, _cfg(stage="1v", steps=1, seed=5), tmp_path / "v", dataset=latent_data)
    tv.fit()
    t2 = Trainer(tiny_cfg, _cfg(stage="2", steps=0, init_audio_from=str(ta.checkpoint_dir()),
                                init_video_from=str(tv.checkpoint_dir())), tmp_path / "j", dataset=latent_data)
    s2, sa, sv = t2.model.state_dict(), ta.model.state_dict(), tv.model.state_dict()
    assert all(torch.equal(s2[k], sa[k]) for k in s2 if not k.startswith("video_model."))
    assert all(torch.equal(s2[k], sv[k]) for k in s2 if k.startswith("video_model."))
    assert load_tower(t2.model, ta.checkpoint_dir() / "model.safetensors", "audio_model.") > 0


def test_hydra_entry_trains_toy(tmp_path):
    root = tmp_path / "toy"
    cmd = [sys.executable, "-m", "model.train", "train=toy", "model=tiny", "train.steps=4", "train.batch_size=2",
           f"train.data.root={root}", f"train.data.cache_dir={tmp_path / 'cache'}", "train.progress=false",
           f"hydra.run.dir={tmp_path / 'run'}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=240, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "stage 2 (joint): 4 steps" in r.stdout
    summary = json.loads((tmp_path / "run/summary.json").read_text())
    assert summary["steps"] == 4 and (root / "index.jsonl").exists()
    assert (tmp_path / "run/config.yaml").exists()


def test_clip_and_latent_paths_agree_and_stage3_packs_views(tiny_cfg, tmp_path):
    from model.data import ClipShape
    from model.toy_data import make_toy_set
    from model.train import prepare_data

    make_toy_set(tmp_path / "toy", n_clips=3, shape=ClipShape(), pack=tmp_path / "no-pack")
    data = DataConfig(root=str(tmp_path / "toy"), cache_dir=str(tmp_path / "cache"))
    lat = prepare_data(_cfg(data=data), tiny_cfg)
    clips = prepare_data(_cfg(data=DataConfig(**{**vars(data), "kind": "clips"})), tiny_cfg)
    assert len(lat) == len(clips) == 3
    a, b = lat[1], clips[1]
    assert set(a) == set(b) and all(torch.allclose(a[k], b[k], atol=1e-5) for k in a if k != "id")
    assert torch.equal(lat.empty_text, clips.empty_text)
    mv = DataConfig(**{**vars(data), "max_views": 2})
    tr = Trainer(tiny_cfg, _cfg(stage="3", steps=2, data=mv), tmp_path / "s3")
    assert not torch.allclose(tr.data[1]["ref_video"], a["ref_video"])  # two views packed per canvas
    assert np.isfinite([h["loss"] for h in tr.fit()]).all()
