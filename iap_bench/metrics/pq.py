"""PQ, reference backend: Audiobox Aesthetics (audiobox-aesthetics 0.0.4), Production Quality axis.

Protocol (METRICS.md §1 PQ; the package's ``infer.py``: ``AesPredictor.forward``, ``make_inference_batch``):
the clip at 16 kHz mono is cut into 10 s windows with a 10 s hop; the last window is zero-padded to 10 s and
a mask marks its valid samples; each window's prediction is weighted by its valid fraction (valid / 10 s)
and the clip score is the weighted mean, de-normalised per axis with the checkpoint's ``target_transform``
(x * std + mean). All four axes (CE, CU, PC, PQ) are stored in ``extras``; the value is PQ.

Harness differences, none of which changes a number beyond float rounding:
- the model is the package's own ``AesMultiOutput``, built once from the checkpoint's ``model_cfg`` and
  loaded STRICTLY (a missing, unexpected or wrongly shaped key is refused, naming it); windows of many clips
  run in one batch (the package batches the windows of one ``forward`` call the same way: every window is
  exactly 10 s, so a window's prediction does not depend on its batch-mates);
- the audio is the shared decode (``media.audio(16000)``: channels mixed to mono, then soxr HQ); Audiobox
  resamples each channel with torchaudio first and averages afterwards (METRICS.md §0): identical for mono
  16 kHz audio, negligible otherwise;
- precision: the package maps ``model_cfg['precision']`` to a dtype and then tests ``str(dtype) in
  {'16', 'bf16'}``, which is never true, so its autocast is never enabled: every checkpoint runs in fp32.
  Using the package's module keeps exactly that behaviour (``tests/metrics/test_pq_reference.py`` pins it).

Failure policy: a sample with no audio stream (``no_audio``), digital silence (``silent``: the shared media
layer's rule, peak < 1e-4, raised by ``media.audio``), no samples (``empty``) or non-finite samples
(``nonfinite_audio``) is a fault of the generated sample and scores ``worst`` = 1.0, the bottom of Audiobox's
1-10 rating scale (the annotators' lowest score; the regression head itself is unbounded, and the package
would score a silent track like any other: the harness's shared silence rule takes precedence, as for
every audio metric). Anything audible is scored by the model.

Checkpoint: the released ``checkpoint.pt`` (``torch.save`` of ``{'state_dict': {'model.<key>': tensor},
'model_cfg': {...}, 'target_transform': {axis: {'mean', 'std'}}}``, what ``AesPredictor.setup_model``
reads), or the Hugging Face folder (``config.json`` + ``model.safetensors``, ``AesMultiOutput.from_pretrained``)
given as ``params.checkpoint=/path/to/folder``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from iap_bench.errors import IAPBenchError, MediaError
from iap_bench.metrics.base import EvalSample, Metric, MetricValue, register_metric
from iap_bench.weights import WeightSpec

SR = 16000
WINDOW_S = 10
HOP_S = 10
AXES = ("CE", "CU", "PC", "PQ")
# model_cfg entries AesPredictor passes to AesMultiOutput (infer.py, setup_model), in its order
MODEL_CFG_KEYS = ("proj_num_layer", "proj_ln", "proj_act_fn", "proj_dropout", "nth_layer",
                  "use_weighted_layer_sum", "precision", "normalize_embed", "output_dim")
BATCH_WINDOWS = 8  # windows per forward pass (memory only: a window's prediction ignores its batch-mates)
ROOT_SUBPATH = "pq/checkpoint.pt"
CKPT_NAME = "Audiobox Aesthetics (PQ)"
HOW_TO_GET = ("download https://dl.fbaipublicfiles.com/audiobox-aesthetics/checkpoint.pt (about 0.4 GB) and "
              f"put it at <weights.root>/{ROOT_SUBPATH}; the Hugging Face folder facebook/audiobox-aesthetics "
              "(config.json + model.safetensors) is accepted too")


def pq_weight_spec() -> WeightSpec:
    """Where the Audiobox Aesthetics checkpoint (file or HF folder) is looked for."""
    return WeightSpec(name=CKPT_NAME, filename="checkpoint.pt", how_to_get=HOW_TO_GET,
                      env_var="IAP_BENCH_PQ_CHECKPOINT", config_key="params.checkpoint",
                      root_subpath=ROOT_SUBPATH)


def is_hf_folder(path: str | os.PathLike | None) -> bool:
    """True for a Hugging Face ``facebook/audiobox-aesthetics`` folder (config.json + model.safetensors)."""
    return bool(path) and all((Path(path) / f).is_file() for f in ("config.json", "model.safetensors"))


def hf_weight_spec() -> WeightSpec:
    """The weights file of an explicitly given Hugging Face folder (what the ``weights`` job checks)."""
    return WeightSpec(name=f"{CKPT_NAME}, Hugging Face folder", filename="model.safetensors",
                      how_to_get=HOW_TO_GET, config_key="params.checkpoint")


def resolve_checkpoint(explicit: str | os.PathLike | None) -> Path:
    """An explicit Hugging Face folder as given, else the released file from the spec's places."""
    if is_hf_folder(explicit):
        return Path(explicit)
    return pq_weight_spec().resolve(explicit)


# ---- pure protocol helpers ---------------------------------------------------------------------------
def make_windows(wav: np.ndarray, window: int = WINDOW_S * SR, hop: int = HOP_S * SR
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Pure: [N] audio -> (windows [W, window] float32, valid lengths [W]) as ``make_inference_batch``:
    a window starts every ``hop`` samples while samples remain; the last one is zero-padded."""
    x = np.asarray(wav, dtype=np.float32)
    starts = range(0, x.shape[-1], hop)
    out = np.zeros((len(starts), window), np.float32)
    lengths = np.zeros(len(starts), np.int64)
    for i, s in enumerate(starts):
        seg = x[s:s + window]
        out[i, :seg.size] = seg
        lengths[i] = seg.size
    return out, lengths


def window_weights(lengths: np.ndarray, window: int = WINDOW_S * SR) -> np.ndarray:
    """Pure: each window's weight, its valid fraction (valid length / window length)."""
    return np.asarray(lengths, dtype=np.float64) / float(window)


def weighted_clip_means(preds: np.ndarray, weights: np.ndarray, owner: np.ndarray, n_clips: int) -> np.ndarray:
    """Pure: per clip, sum(pred * weight) / sum(weight) over the windows it owns ([W] arrays -> [n_clips])."""
    p, w = np.asarray(preds, np.float64), np.asarray(weights, np.float64)
    num = np.bincount(owner, weights=p * w, minlength=n_clips)
    den = np.bincount(owner, weights=w, minlength=n_clips)
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / den


def denormalise(x: np.ndarray, mean: float, std: float) -> np.ndarray:
    """Pure: the model's normalised output back on the rating scale (``Normalize.inverse``)."""
    return np.asarray(x, np.float64) * float(std) + float(mean)


def strip_model_prefix(state: Mapping[str, Any]) -> dict[str, Any]:
    """Pure: drop the Lightning ``model.`` prefix every released key carries (AesPredictor's rename);
    keys without it are kept as they are, so a wrong prefix shows up in the strict key check."""
    return {(k[len("model."):] if k.startswith("model.") else k): v for k, v in state.items()}


def check_target_transform(tt: Any, where: str) -> dict[str, dict[str, float]]:
    """The per-axis {'mean', 'std'} de-normalisation, every axis present with finite numbers, or an error."""
    if not isinstance(tt, Mapping):
        raise IAPBenchError(f"{where}: target_transform is {type(tt).__name__}, expected {{axis: {{mean, std}}}}")
    out = {}
    for axis in AXES:
        entry = tt.get(axis)
        if not isinstance(entry, Mapping) or "mean" not in entry or "std" not in entry:
            raise IAPBenchError(f"{where}: target_transform lacks mean/std for axis {axis!r} "
                                f"(has {sorted(tt)})")
        mean, std = float(entry["mean"]), float(entry["std"])
        if not (np.isfinite(mean) and np.isfinite(std)):
            raise IAPBenchError(f"{where}: target_transform[{axis!r}] is not finite: {dict(entry)}")
        out[axis] = {"mean": mean, "std": std}
    return out


def model_kwargs(model_cfg: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The AesMultiOutput arguments AesPredictor takes from ``model_cfg``; a missing one is an error."""
    missing = [k for k in MODEL_CFG_KEYS if k not in model_cfg]
    if missing:
        raise IAPBenchError(f"{where}: model_cfg lacks {missing} (has {sorted(model_cfg)})")
    return {k: model_cfg[k] for k in MODEL_CFG_KEYS}


# ---- checkpoint loading --------------------------------------------------------------------------------
def state_from_checkpoint(ckpt: Any, where: str
                          ) -> tuple[dict[str, Any], dict[str, dict[str, float]], dict[str, Any]]:
    """(model kwargs, target_transform, state dict without prefix) of the released checkpoint's dict."""
    if not isinstance(ckpt, Mapping) or not {"state_dict", "model_cfg", "target_transform"} <= set(ckpt):
        found = sorted(ckpt) if isinstance(ckpt, Mapping) else type(ckpt).__name__
        raise IAPBenchError(f"{where}: not an Audiobox Aesthetics checkpoint (top level {found}; expected "
                            "state_dict, model_cfg and target_transform)")
    return (model_kwargs(ckpt["model_cfg"], where), check_target_transform(ckpt["target_transform"], where),
            strip_model_prefix(ckpt["state_dict"]))


def read_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, dict[str, float]], dict[str, Any]]:
    """``state_from_checkpoint`` of the released file, or the same triple from the HF folder."""
    import torch

    path = Path(path)
    if path.is_dir():
        cfg_file, weights = path / "config.json", path / "model.safetensors"
        for f in (cfg_file, weights):
            if not f.is_file():
                raise IAPBenchError(f"{path}: an Audiobox Aesthetics folder needs {f.name} (not found)")
        from safetensors.torch import load_file

        cfg = json.loads(cfg_file.read_text())
        tt = check_target_transform(cfg.get("target_transform"), str(cfg_file))
        # the HF config holds only the fields that differ from AesMultiOutput's defaults (from_pretrained)
        kwargs = {k: cfg[k] for k in MODEL_CFG_KEYS if k in cfg}
        return kwargs, tt, load_file(str(weights))
    # torch.load's default (weights_only=True) is what AesPredictor gets with torch >= 2.6
    return state_from_checkpoint(torch.load(str(path), map_location="cpu", weights_only=True), str(path))


def build_model(path: Path, device: str = "cpu") -> tuple[Any, dict[str, dict[str, float]]]:
    """The package's AesMultiOutput with the checkpoint loaded strictly, in eval mode on ``device``."""
    from audiobox_aesthetics.model.aes import AesMultiOutput

    from iap_bench.metrics._ckpt import load_strict

    kwargs, tt, state = read_checkpoint(path)
    model = AesMultiOutput(**kwargs, target_transform=tt)
    load_strict(model, state, f"{CKPT_NAME} ({path})")
    return model.to(device).eval(), tt


# ---- the metric ----------------------------------------------------------------------------------------
@register_metric("pq/reference")
class AudioboxPQ(Metric):
    """Audiobox Aesthetics Production Quality (1-10 scale, higher is better); CE, CU, PC in extras."""

    name = "pq"
    direction = "higher"
    backend = "audiobox-aesthetics"
    version = "1"
    views = ("audio16k",)
    worst = 1.0  # no audio / silent / no samples: the bottom of the 1-10 rating scale
    path_params = ("checkpoint",)

    def __init__(self, checkpoint: str | None = None) -> None:
        self.checkpoint = checkpoint
        self._model = None
        self._tt: dict[str, dict[str, float]] = {}
        self._path: Path | None = None

    def weight_files(self) -> list[tuple[WeightSpec, str | None]]:
        return [(hf_weight_spec() if is_hf_folder(self.checkpoint) else pq_weight_spec(), self.checkpoint)]

    def _resolve(self) -> Path:
        if self._path is None:
            self._path = resolve_checkpoint(self.checkpoint)
        return self._path

    def checkpoint_id(self) -> str:
        from iap_bench.hashing import tree_sha256

        return tree_sha256(self._resolve())

    def aux_identity(self) -> dict[str, str]:
        from iap_bench.media.audio import resampler_identity

        return {"resampler": resampler_identity(), "package": _package_version(),
                "windows": f"{WINDOW_S}s/{HOP_S}s zero-pad, valid-fraction weights"}

    def load(self) -> None:
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the package imports huggingface_hub
            self._model, self._tt = build_model(self._resolve(), self.device)

    def score(self, samples: Sequence[EvalSample]) -> list[MetricValue]:
        self.load()
        clips: dict[str, np.ndarray] = {}  # content hash -> 16 kHz audio (a clip scored for several items once)
        failures: dict[str, MetricValue] = {}
        for s in samples:
            key = s.media.content_hash
            if key in clips or key in failures:
                continue
            wav, fail = _clip_audio(s)
            if fail is None:
                clips[key] = wav
            else:
                failures[key] = fail
        axes = self.predict(list(clips.values()))
        by_key = {k: i for i, k in enumerate(clips)}
        out = []
        for s in samples:
            key = s.media.content_hash
            if key in failures:
                out.append(failures[key])
                continue
            i = by_key[key]
            extras: dict[str, Any] = {a: float(axes[a][i]) for a in AXES}
            extras["n_windows"] = int(np.ceil(clips[key].size / (HOP_S * SR)))
            out.append(MetricValue(float(axes["PQ"][i]), extras=extras))
        return out

    def predict(self, wavs: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """Per-axis clip scores [n] for 16 kHz mono clips: windows of every clip batched together."""
        import torch

        self.load()
        if not wavs:
            return {a: np.zeros(0) for a in AXES}
        parts = [make_windows(w) for w in wavs]
        windows = np.concatenate([p[0] for p in parts])
        lengths = np.concatenate([p[1] for p in parts])
        owner = np.concatenate([np.full(len(p[1]), i) for i, p in enumerate(parts)])
        mask = np.arange(WINDOW_S * SR)[None, :] < lengths[:, None]
        preds = {a: [] for a in AXES}
        dev = next(self._model.parameters()).device
        with torch.inference_mode():
            for i in range(0, len(windows), BATCH_WINDOWS):
                x = torch.from_numpy(windows[i:i + BATCH_WINDOWS]).unsqueeze(1).to(dev)
                m = torch.from_numpy(mask[i:i + BATCH_WINDOWS]).unsqueeze(1).to(dev)
                out = self._model({"wav": x, "mask": m})
                for a in AXES:
                    preds[a].append(out[a].float().cpu().numpy())
        weights = window_weights(lengths)
        return {a: weighted_clip_means(denormalise(np.concatenate(preds[a]), **self._tt[a]), weights, owner,
                                       len(wavs)) for a in AXES}


def _clip_audio(sample: EvalSample) -> tuple[np.ndarray, MetricValue | None]:
    """The sample's 16 kHz mono audio, or the failure that stops it being scored."""
    try:
        wav = sample.media.audio(SR)
    except MediaError as e:
        return np.zeros(0, np.float32), MetricValue.fail(e.reason, detail=e.detail)
    return wav, None


def _package_version() -> str:
    import importlib.metadata

    try:
        return f"audiobox-aesthetics {importlib.metadata.version('audiobox-aesthetics')}"
    except importlib.metadata.PackageNotFoundError:
        return "audiobox-aesthetics missing"
