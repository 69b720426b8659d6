"""Model benchmark: sampling cost per step with the reference K/V cache vs the dense masked path (same output),
and training step time / peak memory, for the tiny and mid presets on CPU (and Ovi's shapes on CUDA).

    python benchmarks/bench_model.py                 # tiny + mid on CPU
    python benchmarks/bench_model.py --presets ovi   # needs a CUDA GPU (~25 GB for the bf16 weights)
    python benchmarks/bench_model.py --json out.json

Rows: "cache" = split attention, ref K/V computed once per CFG branch and reused each step;
"dense-mask" = every step recomputes ref + noisy tokens with one boolean-masked SDPA (sdpa_mask backend).
Both start from the same weights and noise; the table prints their max |Δ| on the final latents.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from model.config import IAPConfig  # noqa: E402
from model.fusion_model import IAPFusionModel  # noqa: E402
from model.identity import IdentityRefs  # noqa: E402
from model.sampling import SamplerConfig, sample  # noqa: E402


@dataclass
class Case:
    """One preset's benchmark shapes: latent extents, K identities, batch for training."""

    preset: str
    video_hw: tuple[int, int]  # latent H, W
    k: int = 2
    steps: int = 4
    train_batch: int = 2
    train_steps: int = 3
    repeats: int = 3  # timings report the fastest of these runs (robust to other load on the machine)
    train_layers: int | None = None  # train a shallower copy (same widths) when the full model cannot fit


CASES = {
    "tiny": Case("tiny", (8, 8)),
    "mid": Case("mid", (16, 16)),
    # 704x1280, 31 latent frames; full 11.7B AdamW needs FSDP, so one GPU times a 2-layer copy of the widths
    "ovi": Case("ovi", (44, 80), steps=2, train_batch=1, train_steps=2, repeats=1, train_layers=2),
}


def make_config(preset: str, backend: str = "split", layers: int | None = None) -> IAPConfig:
    """Preset config with the given attention backend (and optionally fewer layers, same widths)."""
    base = {"tiny": IAPConfig.tiny, "mid": IAPConfig.mid, "ovi": IAPConfig.ovi}[preset]()
    over: dict[str, Any] = {"attention_backend": backend}
    if layers:
        over["num_layers"] = layers
    return base.replace(**over)


def make_model(cfg: IAPConfig, device: torch.device, dtype: torch.dtype) -> IAPFusionModel:
    """Build directly on ``device`` in ``dtype`` (no fp32 copy of an 11B model)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        torch.manual_seed(0)
        with torch.device(device):
            return IAPFusionModel(cfg)
    finally:
        torch.set_default_dtype(old)


def make_inputs(cfg: IAPConfig, case: Case, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
    """Random refs (K identities, full-length voices), text, and the output latent shapes."""
    g = torch.Generator().manual_seed(0)
    h, w = case.video_hw
    k, L = case.k, cfg.identity.audio_ref_len
    refs = IdentityRefs(
        video=torch.randn(1, k, cfg.video.in_dim, h, w, generator=g),
        audio=torch.randn(1, k, L, cfg.audio.in_dim, generator=g),
        audio_lens=torch.tensor([[L - i for i in range(k)]]),
        id_mask=torch.ones(1, k, dtype=torch.bool)).to(device, dtype)
    text = torch.randn(3, cfg.text_len, cfg.text_dim, generator=g).to(device, dtype)
    return {"refs": refs, "pos": text[:1], "neg": (text[1:2], text[2:3]),
            "video_shape": (1, cfg.video.in_dim, cfg.video.max_latent_frames, h, w),
            "audio_shape": (1, cfg.audio.max_latent_len, cfg.audio.in_dim)}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def reset_peak(device: torch.device) -> None:
    """Reset the peak-memory counter (CUDA allocator, or the process's RSS high-water mark on Linux)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        return
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_mb(device: torch.device) -> float:
    """Peak memory since ``reset_peak``: CUDA max_memory_allocated, else VmHWM (ru_maxrss as fallback)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2 ** 20
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_sampling(case: Case, device: torch.device, dtype: torch.dtype) -> list[dict[str, Any]]:
    """Time per sampling step with and without the ref cache; both must give the same latents."""
    model = make_model(make_config(case.preset), device, dtype).eval()
    inp = make_inputs(model.cfg, case, device, dtype)
    rows, outs = [], {}
    for name, backend, cache in (("cache", "split", True), ("dense-mask", "sdpa_mask", False)):
        model.cfg.attention_backend = backend  # read at forward time: same weights for both paths
        scfg = SamplerConfig(steps=case.steps, guidance_video=4.0, guidance_audio=3.0, use_ref_cache=cache)
        sample(model, SamplerConfig(steps=1, use_ref_cache=cache), inp["pos"], inp["neg"], inp["refs"],
               inp["video_shape"], inp["audio_shape"], seed=0)  # warm-up
        reset_peak(device)
        dt = float("inf")
        for _ in range(case.repeats):
            sync(device)
            t0 = time.perf_counter()
            v, a = sample(model, scfg, inp["pos"], inp["neg"], inp["refs"], inp["video_shape"], inp["audio_shape"],
                          seed=0)
            sync(device)
            dt = min(dt, time.perf_counter() - t0)
        outs[name] = (v.float(), a.float())
        rows.append({"preset": case.preset, "what": f"sample {name}", "device": device.type,
                     "per_step_s": dt / case.steps, "peak_mb": peak_mb(device)})
    diff = max(float((outs["cache"][i] - outs["dense-mask"][i]).abs().max()) for i in range(2))
    tol = 1e-3 if dtype == torch.float32 else 0.1
    assert diff < tol, f"{case.preset}: cache and dense-mask sampling differ by {diff} (> {tol})"
    for r in rows:
        r["max_abs_diff"] = diff
    speedup = rows[1]["per_step_s"] / rows[0]["per_step_s"]
    rows[0]["note"] = f"speed-up x{speedup:.2f}"
    del model
    return rows


def bench_training(case: Case, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
    """Joint-stage AdamW step (forward + backward + update) on random latents: time and peak memory."""
    from model import flow

    cfg = make_config(case.preset, layers=case.train_layers)
    if case.preset == "ovi":
        cfg = cfg.replace(gradient_checkpointing=True)
    model = make_model(cfg, device, torch.float32).train()  # fp32 master weights, bf16 autocast on CUDA
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-8)
    b = case.train_batch
    inp = make_inputs(cfg, case, device, torch.float32)
    refs = inp["refs"].repeat(b)
    text = inp["pos"].repeat(b, 1, 1)
    v0 = torch.randn(b, *inp["video_shape"][1:], device=device)
    a0 = torch.randn(b, *inp["audio_shape"][1:], device=device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if dtype == torch.bfloat16 else _Null()

    def step() -> float:
        t = torch.rand(b, device=device)
        ev, ea = torch.randn_like(v0), torch.randn_like(a0)
        with autocast:
            pv, pa = model(flow.interpolate(v0, ev, t), flow.interpolate(a0, ea, t), t * 1000, text, refs=refs)
        loss = flow.joint_loss(pv, ev - v0, pa, ea - a0).total
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss.detach())

    step()  # warm-up (allocates optimizer state)
    reset_peak(device)
    dt = float("inf")
    for _ in range(case.train_steps):
        sync(device)
        t0 = time.perf_counter()
        step()
        sync(device)
        dt = min(dt, time.perf_counter() - t0)
    n_params = sum(p.numel() for p in model.parameters())
    depth = f", {case.train_layers} of {IAPConfig.ovi().num_layers} layers" if case.train_layers else ""
    return {"preset": case.preset, "what": f"train step (B={b}{depth})", "device": device.type, "per_step_s": dt,
            "peak_mb": peak_mb(device), "note": f"{n_params / 1e6:.1f}M params"}


class _Null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *a: Any) -> None:
        return None


def print_table(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="IAP model benchmark")
    for col in ("preset", "what", "device", "s/step", "peak MB", "max|Δ| vs dense", "note"):
        t.add_column(col)
    for r in rows:
        diff = f"{r['max_abs_diff']:.2e}" if "max_abs_diff" in r else ""
        t.add_row(r["preset"], r["what"], r["device"], f"{r['per_step_s']:.4f}", f"{r['peak_mb']:.0f}", diff,
                  r.get("note", ""))
    Console().print(t)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=None, help="tiny mid (CPU default); ovi needs CUDA")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--steps", type=int, default=None, help="sampling steps per measurement")
    ap.add_argument("--no-train", action="store_true")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    device = torch.device("cuda" if a.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if a.device == "auto" else a.device))
    if a.threads:
        torch.set_num_threads(a.threads)
    presets = a.presets or (["tiny", "mid", "ovi"] if device.type == "cuda" else ["tiny", "mid"])
    rows: list[dict[str, Any]] = []
    for p in presets:
        if p == "ovi" and device.type != "cuda":
            print("skipping ovi shapes: no CUDA device")
            continue
        case = CASES[p]
        if a.steps:
            case.steps = a.steps
        dtype = torch.bfloat16 if (device.type == "cuda" and p == "ovi") else torch.float32
        rows += bench_sampling(case, device, dtype)
        if not a.no_train:
            rows.append(bench_training(case, device, dtype))
        if device.type == "cuda":
            torch.cuda.empty_cache()
    print_table(rows)
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
