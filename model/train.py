"""``iap-train``: three-stage flow-matching training of the IAP generator (paper §3.4, ARCHITECTURE §6-7).

    python -m model.train train=toy model=tiny                 # tiny model on the toy set, CPU, ~1 min
    python -m model.train train=stage1_audio model=ovi ...     # stage 1-A (audio tower), etc.
    torchrun --nproc_per_node 8 -m model.train train=stage2 model=ovi train.distributed.strategy=fsdp
    (``accelerate launch -m model.train ...`` works the same way: it sets the same WORLD_SIZE/RANK variables)

Activation checkpointing is the model's ``gradient_checkpointing`` flag (``model.gradient_checkpointing=true``;
on in conf/model/ovi.yaml). Mixed precision: ``train.precision`` (auto = bf16 autocast on CUDA, fp32 on CPU).

Each run directory holds ``config.yaml``, ``metrics.jsonl`` / ``metrics.csv`` (per-modality losses) and
``checkpoints/step_XXXXXXX/`` (``model.safetensors`` via model.checkpoint + ``trainer_state.pt``: optimizer,
scheduler, step). ``train.resume=auto`` continues from the newest checkpoint of the run directory.
The data order, t, noise and dropout of step s are functions of (seed, rank, s) only, so a resumed run
continues exactly as an uninterrupted one.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from model import flow
from model.caption import CaptionStyle, render_caption, spec_from_dict
from model.data import ClipDataset, ClipShape, LatentBatch, LatentDataset, collate_latents, encode_clip

REPO = Path(__file__).resolve().parents[1]
STAGE_MODES = {"1a": "audio", "1v": "video", "2": "joint", "3": "joint"}


# --------------------------------------------------------------------------------------------------
# Config


@dataclass
class DataConfig:
    """Where clips live and how they become latents (``kind: latent`` caches them once; ``clips`` re-encodes)."""

    root: str = "benchmark_data/toy_train"
    kind: str = "latent"  # latent | clips
    make_toy: bool = True  # write the toy set at ``root`` when it has no index.jsonl
    cache_dir: str = ""  # where latent caches go ("" = inside ``root``); relative paths are under the repo
    codecs: str = "tiny"  # tiny | real (used to encode clips)
    codec_paths: dict[str, Any] = field(default_factory=dict)  # model.codecs.CodecPaths fields
    height: int = 128
    width: int = 128
    frames: int = 9
    fps: float = 16.0
    audio_latents: int = 16
    max_views: int = 1  # face views packed per identity canvas (stage 3: > 1)
    num_workers: int = 0


@dataclass
class DistConfig:
    """Multi-GPU: launched by torchrun (WORLD_SIZE > 1 turns it on); DDP or FSDP (full sharding)."""

    strategy: str = "ddp"  # ddp | fsdp
    backend: str = ""  # "" = nccl on CUDA, gloo on CPU


@dataclass
class TrainConfig:
    """One training stage: optimiser (paper: AdamW 1e-4, betas 0.9/0.999, eps 1e-8), steps, dropout, I/O."""

    name: str = "toy"
    stage: str = "2"  # 1a | 1v | 2 | 3
    steps: int = 300
    batch_size: int = 4
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    warmup_steps: int = 0
    grad_clip: float = 1.0
    precision: str = "auto"  # auto (bf16 autocast on CUDA, fp32 on CPU) | bf16 | fp32
    t_sampler: str = "logit_normal"
    shift: float = 5.0
    audio_weight: float = 1.0  # λ of eq. 2
    text_dropout: float = 0.1
    id_dropout: float = 0.0  # [ours] off by default: identity is kept in the uncond branch (Stand-In)
    seed: int = 0
    log_every: int = 10
    save_every: int = 0  # 0 = only at the end
    keep_last: int = 2
    resume: str | None = None  # checkpoint dir, or "auto" (newest in this run dir)
    init_from: str | None = None  # model weights of a previous stage (safetensors or checkpoint dir)
    init_audio_from: str | None = None  # stage 2: audio tower (audio_model.*) from the stage 1-A run
    init_video_from: str | None = None  # stage 2: video tower (video_model.*) from the stage 1-V run
    ovi_weights: str | None = None  # Ovi safetensors to initialise from (model.checkpoint.load_ovi_weights)
    device: str = "auto"
    progress: bool = True
    data: DataConfig = field(default_factory=DataConfig)
    distributed: DistConfig = field(default_factory=DistConfig)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        d = dict(d)
        data = DataConfig(**d.pop("data", {}) or {})
        dist = DistConfig(**d.pop("distributed", {}) or {})
        if "betas" in d:
            d["betas"] = tuple(d["betas"])
        return cls(**d, data=data, distributed=dist)

    def flow_config(self) -> flow.FlowConfig:
        return flow.FlowConfig(t_sampler=self.t_sampler, shift=self.shift, audio_weight=self.audio_weight)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# Data


def clip_shape(cfg: TrainConfig, model_cfg: Any) -> ClipShape:
    """Pixel/wave size of training clips; the voice window is L audio latents."""
    d = cfg.data
    return ClipShape(height=d.height, width=d.width, frames=d.frames, fps=d.fps, audio_samples=d.audio_latents * 512,
                     ref_audio_samples=model_cfg.identity.audio_ref_len * 512, max_views=d.max_views)


def caption_fn_for(model_cfg: Any) -> Any:
    """Caption dict -> text, honouring use_subject_anchor (the no_subject_anchor ablation)."""
    style = CaptionStyle(use_subject_anchor=model_cfg.use_subject_anchor)
    return lambda d: render_caption(spec_from_dict(d), style)


def build_codecs_for(cfg: TrainConfig, model_cfg: Any) -> Any:
    from model.codecs import CodecPaths, build_codecs

    return build_codecs(cfg.data.codecs, model_cfg.video.in_dim, model_cfg.audio.in_dim, model_cfg.text_dim,
                        model_cfg.text_len, CodecPaths(**cfg.data.codec_paths))  # type: ignore[arg-type]


def latent_subdir(cfg: TrainConfig, model_cfg: Any) -> str:
    """Cache folder name: one per codec kind / views / anchor setting / model latent widths."""
    sa = int(model_cfg.use_subject_anchor)
    return (f"latents_{cfg.data.codecs}_v{cfg.data.max_views}_sa{sa}_c{model_cfg.video.in_dim}x{model_cfg.audio.in_dim}"
            f"_t{model_cfg.text_dim}x{model_cfg.text_len}")


def prepare_data(cfg: TrainConfig, model_cfg: Any, progress: bool = False) -> Any:
    """The dataset for this run: write the toy set if asked, precompute latents once for ``kind: latent``."""
    from model.data import precompute_latents
    from model.identity import pack_multiview

    root = _repo_path(cfg.data.root)
    if not (root / "index.jsonl").exists():
        if not cfg.data.make_toy:
            raise FileNotFoundError(f"no index.jsonl in {root} (set train.data.make_toy=true for the toy set)")
        from model.toy_data import make_toy_set

        make_toy_set(root, shape=clip_shape(cfg, model_cfg), views=max(2, cfg.data.max_views))
    shape = clip_shape(cfg, model_cfg)
    if cfg.data.kind == "clips":
        return OnTheFlyLatents(ClipDataset(root, shape), build_codecs_for(cfg, model_cfg), shape,
                               caption_fn_for(model_cfg), model_cfg.identity.audio_ref_len)
    if cfg.data.kind != "latent":
        raise ValueError(f"train.data.kind must be latent or clips, got {cfg.data.kind!r}")
    sub = latent_subdir(cfg, model_cfg)
    if cfg.data.cache_dir:  # keyed by the index content, so different data never share a cache
        import hashlib

        key = hashlib.sha1((root / "index.jsonl").read_bytes()).hexdigest()[:10]
        sub = str(_repo_path(cfg.data.cache_dir) / f"{root.name}-{key}" / sub)  # absolute: root / sub == sub
    if not (root / sub / "meta.safetensors").exists():
        precompute_latents(root, build_codecs_for(cfg, model_cfg), shape, caption_fn_for(model_cfg), pack_multiview,
                           model_cfg.identity.audio_ref_len, subdir=sub, progress=progress)
    return LatentDataset(root, sub)


def _repo_path(p: str | Path) -> Path:
    """Absolute paths as given; relative ones from the cwd if they exist there, else under the repo."""
    path = Path(p).expanduser()
    return path if path.is_absolute() or path.exists() else REPO / path


class OnTheFlyLatents(torch.utils.data.Dataset):
    """Decode and encode clips at every access (for real data too large to cache, or augmentation)."""

    def __init__(self, clips: ClipDataset, codecs: Any, shape: ClipShape, caption_fn: Any, audio_ref_len: int):
        from model.identity import pack_multiview

        self.clips, self.codecs, self.shape = clips, codecs, shape
        self.caption_fn, self.audio_ref_len, self.pack = caption_fn, audio_ref_len, pack_multiview
        self.empty_text = codecs.text.encode([""])[0]

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return encode_clip(self.codecs, self.clips[i], self.shape, self.caption_fn, self.pack, self.audio_ref_len)


def batch_indices(n: int, batch: int, step: int, seed: int, rank: int = 0, world: int = 1) -> list[int]:
    """Indices of this rank's batch at ``step``: a fresh permutation per epoch, a pure function of its inputs."""
    global_batch = batch * world
    per_epoch = max(1, n // global_batch) if n >= global_batch else 1
    epoch, pos = divmod(step, per_epoch)
    perm = np.random.default_rng(seed * 7919 + epoch).permutation(n)
    perm = np.resize(perm, max(n, (pos + 1) * global_batch))  # small sets: wrap around
    chunk = perm[pos * global_batch: (pos + 1) * global_batch]
    return [int(i) for i in chunk[rank::world]]


# --------------------------------------------------------------------------------------------------
# Distributed


@dataclass
class DistState:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(cfg: DistConfig, device: torch.device) -> DistState:
    """Join the torchrun process group when WORLD_SIZE > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistState()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(cfg.backend or ("nccl" if device.type == "cuda" else "gloo"))
    return DistState(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def wrap_model(model: nn.Module, dist_state: DistState, cfg: DistConfig, device: torch.device) -> nn.Module:
    """DDP (unused-parameter tolerant: stages freeze towers) or FSDP with original parameters."""
    if dist_state.world <= 1:
        return model
    if cfg.strategy == "fsdp":
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        return FSDP(model, use_orig_params=True, device_id=device if device.type == "cuda" else None)
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [device.index] if device.type == "cuda" else None
    return DDP(model, device_ids=ids, find_unused_parameters=True)


def unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)


# --------------------------------------------------------------------------------------------------
# Trainer


def pick_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        return torch.device("cpu")
    return torch.device(name)


def autocast_for(precision: str, device: torch.device) -> Any:
    """bf16 autocast on CUDA (auto) or when asked; fp32 otherwise."""
    use_bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported())
    if precision not in ("auto", "bf16", "fp32"):
        raise ValueError(f"precision must be auto, bf16 or fp32, got {precision!r}")
    return torch.autocast(device.type, dtype=torch.bfloat16) if use_bf16 else nullcontext()


def step_generator(seed: int, rank: int, step: int) -> torch.Generator:
    """The RNG of one step (t, noise, dropout): depends only on (seed, rank, step)."""
    return torch.Generator().manual_seed((seed * 1_000_003 + rank * 10_007 + step) % (2 ** 63))


class Trainer:
    """Owns model, optimiser, scheduler and data for one stage; ``fit`` runs steps, ``save``/``resume`` persist."""

    def __init__(self, model_cfg: Any, cfg: TrainConfig, run_dir: str | Path, dataset: Any = None):
        from model.fusion_model import IAPFusionModel
        from model.stages import apply_stage, param_groups

        if cfg.stage not in STAGE_MODES:
            raise ValueError(f"train.stage must be one of {sorted(STAGE_MODES)}, got {cfg.stage!r}")
        if cfg.stage not in tuple(model_cfg.stages):
            raise ValueError(f"stage {cfg.stage} is not in this model's schedule stages={list(model_cfg.stages)} "
                             "(set by the ablation, e.g. one_stage trains stage 2 only)")
        self.cfg, self.model_cfg = cfg, model_cfg
        self.run_dir = Path(run_dir)
        self.device = pick_device(cfg.device)
        self.dist = init_distributed(cfg.distributed, self.device)
        torch.manual_seed(cfg.seed)
        model = IAPFusionModel(model_cfg)
        self._init_weights(model)
        self.mode = apply_stage(model, cfg.stage)
        model.to(self.device)
        self.model = wrap_model(model, self.dist, cfg.distributed, self.device)
        groups = param_groups(unwrap(self.model), cfg.lr, cfg.weight_decay)
        self.opt = torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps,
                                     weight_decay=cfg.weight_decay)
        warm = max(0, cfg.warmup_steps)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda s: min(1.0, (s + 1) / warm) if warm else 1.0)
        self.flow_cfg = cfg.flow_config()
        self.step = 0
        self.data = dataset if dataset is not None else prepare_data(cfg, model_cfg, progress=cfg.progress)
        self.empty_text = getattr(self.data, "empty_text", None)

    def _init_weights(self, model: nn.Module) -> None:
        from model.checkpoint import load_checkpoint, load_ovi_weights

        if self.cfg.ovi_weights:
            load_ovi_weights(model, self.cfg.ovi_weights)
        if self.cfg.init_from:
            load_checkpoint(model, _weights_file(self.cfg.init_from))
        for prefix, src in (("audio_model.", self.cfg.init_audio_from), ("video_model.", self.cfg.init_video_from)):
            if src:
                load_tower(model, _weights_file(src), prefix, shared=prefix == "audio_model.")

    # ---------------------------------------------------------------- one step
    def next_batch(self) -> LatentBatch:
        idx = batch_indices(len(self.data), self.cfg.batch_size, self.step, self.cfg.seed, self.dist.rank,
                            self.dist.world)
        return collate_latents([self.data[i] for i in idx], self.model_cfg.identity.k_max)

    def loss_on(self, batch: LatentBatch, gen: torch.Generator) -> flow.LossTerms:
        """Eq. 2 on one batch: shared t, per-modality noise, text dropout to the empty caption."""
        from model.identity import IdentityRefs

        b = batch.video.shape[0]
        t = flow.sample_t(b, self.flow_cfg, gen)
        eps_v = torch.randn(batch.video.shape, generator=gen)
        eps_a = torch.randn(batch.audio.shape, generator=gen)
        text = batch.text.clone()
        if self.cfg.text_dropout > 0 and self.empty_text is not None:
            drop = flow.drop_mask(b, self.cfg.text_dropout, gen)
            text[drop] = self.empty_text.to(text.dtype)
        id_mask = batch.id_mask.clone()
        if self.cfg.id_dropout > 0:
            id_mask &= ~flow.drop_mask(b, self.cfg.id_dropout, gen)[:, None]
        dev = self.device
        v0, a0 = batch.video.to(dev), batch.audio.to(dev)
        eps_v, eps_a, t = eps_v.to(dev), eps_a.to(dev), t.to(dev)
        use_v, use_a = self.mode in ("joint", "video"), self.mode in ("joint", "audio")
        refs = IdentityRefs(video=batch.ref_video.to(dev) if use_v else None,
                            audio=batch.ref_audio.to(dev) if use_a else None,
                            audio_lens=batch.ref_audio_lens.to(dev) if use_a else None, id_mask=id_mask.to(dev))
        vt = flow.interpolate(v0, eps_v, t) if use_v else None
        at = flow.interpolate(a0, eps_a, t) if use_a else None
        with autocast_for(self.cfg.precision, dev):
            v_pred, a_pred = self.model(vt, at, t * self.flow_cfg.timestep_scale, text.to(dev), refs=refs,
                                        mode=self.mode)
        return flow.joint_loss(v_pred, flow.velocity_target(v0, eps_v) if use_v else None,
                               a_pred, flow.velocity_target(a0, eps_a) if use_a else None,
                               audio_weight=self.flow_cfg.audio_weight)

    def train_step(self) -> dict[str, float]:
        self.model.train()
        gen = step_generator(self.cfg.seed, self.dist.rank, self.step)
        terms = self.loss_on(self.next_batch(), gen)
        self.opt.zero_grad(set_to_none=True)
        terms.total.backward()
        params = [p for g in self.opt.param_groups for p in g["params"]]
        gnorm = torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip) if self.cfg.grad_clip > 0 else None
        self.opt.step()
        self.sched.step()
        self.step += 1
        out = terms.as_floats()
        out["lr"] = self.sched.get_last_lr()[0]
        if gnorm is not None:
            out["grad_norm"] = float(gnorm)
        return out

    # ---------------------------------------------------------------- loop
    def fit(self, steps: int | None = None) -> list[dict[str, float]]:
        """Run until ``steps`` (default cfg.steps) total steps; logs, saves and returns the per-step records."""
        total = self.cfg.steps if steps is None else steps
        log = MetricsLog(self.run_dir) if self.dist.is_main else None
        history: list[dict[str, float]] = []
        t0 = time.time()
        with _progress_bar(self.cfg.progress and self.dist.is_main) as bar:
            task = bar.add_task(f"stage {self.cfg.stage} ({self.mode})", total=total, completed=self.step,
                                loss=float("nan")) if bar else None
            while self.step < total:
                rec = self.train_step()
                rec["step"] = self.step
                rec["time_s"] = round(time.time() - t0, 3)
                history.append(rec)
                if log and (self.step % self.cfg.log_every == 0 or self.step == total):
                    log.write(rec)
                if bar:
                    bar.update(task, completed=self.step, loss=rec["loss"])
                if self.cfg.save_every and self.step % self.cfg.save_every == 0 and self.step < total:
                    self.save_checkpoint()
        if log:
            log.close()
        self.save_checkpoint()
        return history

    # ---------------------------------------------------------------- persistence
    def checkpoint_dir(self, step: int | None = None) -> Path:
        return self.run_dir / "checkpoints" / f"step_{self.step if step is None else step:07d}"

    def save_checkpoint(self, path: str | Path | None = None) -> Path | None:
        """Weights (safetensors, model.checkpoint) + optimiser/scheduler/step state; main rank only."""
        from model.checkpoint import save_checkpoint

        state = self._full_state()
        if not self.dist.is_main:
            return None
        out = Path(path) if path else self.checkpoint_dir()
        out.mkdir(parents=True, exist_ok=True)
        extra = {"step": self.step, "stage": self.cfg.stage, "model_config": self.model_cfg.to_dict(),
                 "train_config": _jsonable(asdict(self.cfg))}
        save_checkpoint(unwrap(self.model), out / "model.safetensors", extra)
        torch.save({"step": self.step, "optimizer": state, "scheduler": self.sched.state_dict(),
                    "train_config": _jsonable(asdict(self.cfg))}, out / "trainer_state.pt")
        (out / "config.json").write_text(json.dumps(extra, indent=1))
        self._prune()
        return out

    def _full_state(self) -> dict[str, Any]:
        if self.cfg.distributed.strategy == "fsdp" and self.dist.world > 1:
            from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

            return FSDP.optim_state_dict(self.model, self.opt)
        return self.opt.state_dict()

    def _prune(self) -> None:
        ckpts = sorted((self.run_dir / "checkpoints").glob("step_*"))
        for old in ckpts[: max(0, len(ckpts) - max(1, self.cfg.keep_last))]:
            for f in old.iterdir():
                f.unlink()
            old.rmdir()

    def resume(self, path: str | Path) -> None:
        """Restore weights, optimiser, scheduler and step from a checkpoint dir (or "auto": newest here)."""
        from model.checkpoint import load_checkpoint

        if str(path) == "auto":
            found = sorted((self.run_dir / "checkpoints").glob("step_*"))
            if not found:
                return
            path = found[-1]
        p = Path(path)
        load_checkpoint(unwrap(self.model), p / "model.safetensors")
        st = torch.load(p / "trainer_state.pt", map_location="cpu", weights_only=False)
        if self.cfg.distributed.strategy == "fsdp" and self.dist.world > 1:
            from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

            st["optimizer"] = FSDP.optim_state_dict_to_load(self.model, self.opt, st["optimizer"])
        self.opt.load_state_dict(st["optimizer"])
        self.sched.load_state_dict(st["scheduler"])
        self.step = int(st["step"])


def _weights_file(path: str | Path) -> Path:
    p = Path(path)
    return p / "model.safetensors" if p.is_dir() else p


def load_tower(model: nn.Module, path: str | Path, prefix: str, shared: bool = False) -> int:
    """Copy one tower's parameters (``prefix``) from a checkpoint, plus the shared ones (e_id) if ``shared``.

    Merges the two stage-1 runs for stage 2 (e_id was frozen in both, so either copy is the same).
    """
    from safetensors.torch import load_file

    towers = ("audio_model.", "video_model.")
    state = {k: v for k, v in load_file(str(path)).items()
             if k.startswith(prefix) or (shared and not k.startswith(towers))}
    own = model.state_dict()
    bad = [k for k in state if k not in own or own[k].shape != state[k].shape]
    if not state or bad:
        raise KeyError(f"{path}: no usable {prefix}* weights" + (f" (mismatched: {bad[:5]})" if bad else ""))
    model.load_state_dict(state, strict=False)
    return len(state)


def _jsonable(x: Any) -> Any:
    return json.loads(json.dumps(x, default=str))


class MetricsLog:
    """Appends per-step records to ``metrics.jsonl`` and ``metrics.csv`` in the run directory."""

    FIELDS = ("step", "loss", "loss_video", "loss_audio", "lr", "grad_norm", "time_s")

    def __init__(self, run_dir: Path):
        run_dir.mkdir(parents=True, exist_ok=True)
        self.jsonl = open(run_dir / "metrics.jsonl", "a", encoding="utf-8")
        new = not (run_dir / "metrics.csv").exists()
        self.csv_file = open(run_dir / "metrics.csv", "a", newline="", encoding="utf-8")
        self.csv = csv.DictWriter(self.csv_file, fieldnames=self.FIELDS, extrasaction="ignore")
        if new:
            self.csv.writeheader()

    def write(self, rec: dict[str, float]) -> None:
        self.jsonl.write(json.dumps(rec) + "\n")
        self.csv.writerow(rec)
        self.jsonl.flush()
        self.csv_file.flush()

    def close(self) -> None:
        self.jsonl.close()
        self.csv_file.close()


class _NoBar:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *a: Any) -> None:
        return None


def _progress_bar(enabled: bool) -> Any:
    if not enabled:
        return _NoBar()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("loss {task.fields[loss]:.4f}"), TimeRemainingColumn())


# --------------------------------------------------------------------------------------------------
# Entry point


def run(model_cfg: Any, cfg: TrainConfig, run_dir: str | Path) -> dict[str, Any]:
    """Train one stage in ``run_dir``; returns a summary (first/last loss, checkpoint path)."""
    trainer = Trainer(model_cfg, cfg, run_dir)
    if cfg.resume:
        trainer.resume(cfg.resume)
    hist = trainer.fit()
    ckpt = trainer.checkpoint_dir()
    summary = {"stage": cfg.stage, "mode": trainer.mode, "steps": trainer.step, "checkpoint": str(ckpt)}
    if hist:
        k = max(1, min(10, len(hist) // 5))
        summary["loss_start"] = float(np.mean([h["loss"] for h in hist[:k]]))
        summary["loss_end"] = float(np.mean([h["loss"] for h in hist[-k:]]))
    if trainer.dist.is_main:
        (Path(run_dir) / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def _hydra_main(cfg: Any) -> None:
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from model.config import build_config

    model_cfg = build_config(cfg.model, cfg.get("ablation"))
    tcfg = TrainConfig.from_dict(OmegaConf.to_container(cfg.train, resolve=True))  # type: ignore[arg-type]
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    OmegaConf.save(cfg, run_dir / "config.yaml")
    summary = run(model_cfg, tcfg, run_dir)
    if int(os.environ.get("RANK", "0")) == 0:
        drop = 100 * (1 - summary.get("loss_end", math.nan) / summary.get("loss_start", math.nan))
        print(f"stage {summary['stage']} ({summary['mode']}): {summary['steps']} steps, loss "
              f"{summary.get('loss_start', math.nan):.4f} -> {summary.get('loss_end', math.nan):.4f} "
              f"({drop:.0f}% lower); checkpoint {summary['checkpoint']}")


def main() -> None:
    """``iap-train`` console entry (Hydra app over the repo's conf/, config ``train``)."""
    import hydra

    hydra.main(config_path=str(REPO / "conf"), config_name="train", version_base="1.3")(_hydra_main)()


if __name__ == "__main__":
    main()
