"""Test support for ``aid_sim/reference``: a seeded random ``wavlm_large_finetune.pth`` and the package path.

``write_random_weights`` writes the released file's format: ``torch.save({'model': state_dict})`` with
UniSpeech SV's keys (``feature_extract.model.*`` WavLM front end, ``feature_weight``, the ECAPA head and the
training-only ``loss_calculator.projection.weight`` [5994, 256]) at WavLM-Large widths, but with
``N_LAYERS`` = 2 transformer layers (``feature_weight`` [3]) instead of 24, so it is written (~190 MB, ~2 s)
and run in seconds. The official code reads the layer count from its upstream checkpoint and accepts this
unchanged (``scripts/golden/make_ecapa_wavlm_golden.py`` runs it on exactly these weights).

``package_scores``: the official scoring path (UniSpeech's ECAPA code on the s3prl hub upstream, driven by
seed-tts-eval's ``verification.py``) is not an installable package. Its steps are run here as that script
runs them, one pair at a time: each file read with librosa at its native rate, first channel, torchaudio
``Resample`` to 16 kHz, each clip embedded alone (no batching, no padding), ``F.cosine_similarity``. The model
is this project's (``iap_bench.backends.ecapa_wavlm``): that it equals the official model, number for number,
is what the golden fixture ``tests/fixtures/golden/ecapa_wavlm.json`` proves; it is the parity proof for
this metric.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

    from iap_bench.benchmark.schema import Item

ROOT_SUBPATH = "aid_sim/wavlm_large_finetune.pth"
N_LAYERS = 2
N_TRAIN_SPEAKERS = 5994  # VoxCeleb2 dev speakers of the released AAM-softmax head
_CNN_NORM = re.compile(r"conv_layers\.\d+\.2\.1\.")


def _is_norm(key: str) -> bool:
    """LayerNorm / BatchNorm affine parameters (initialised near 1 / 0, not like weights)."""
    return ("layer_norm" in key or ".bn." in key or ".bns." in key or key.startswith("bn.")
            or bool(_CNN_NORM.search(key)))


def _init_value(key: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Seeded value of one tensor: scaled so that activations stay O(1) through the random model."""
    if key.endswith("running_mean"):
        return rng.normal(0.0, 0.1, shape)
    if key.endswith("running_var"):
        return rng.uniform(0.5, 1.5, shape)
    if key.endswith(("weight_g", "grep_a")):
        return rng.uniform(0.5, 1.5, shape)
    if key == "feature_weight" or key.endswith("relative_attention_bias.weight"):
        return rng.normal(0.0, 1.0, shape)
    if key.endswith("mask_emb"):
        return rng.uniform(0.0, 1.0, shape)
    if _is_norm(key):
        return (1.0 if key.endswith("weight") else 0.0) + rng.normal(0.0, 0.1, shape)
    if len(shape) >= 2:
        return rng.normal(0.0, 1.0 / np.sqrt(np.prod(shape[1:])), shape)
    return rng.normal(0.0, 0.02, shape)


def random_state(seed: int = 0, n_layers: int = N_LAYERS) -> dict[str, torch.Tensor]:
    """Seeded random ``state_dict['model']`` with every key and shape of the release (layer count aside)."""
    import torch

    from iap_bench.backends.ecapa_wavlm import EMB_DIM, SpeakerVerifier, WavLMConfig

    shapes = {k: tuple(v.shape) for k, v in SpeakerVerifier(WavLMConfig(n_layers=n_layers)).state_dict().items()}
    shapes["loss_calculator.projection.weight"] = (N_TRAIN_SPEAKERS, EMB_DIM)
    rng = np.random.default_rng(seed)
    state: dict[str, torch.Tensor] = {}
    for key in sorted(shapes):
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(0, dtype=torch.long)
        else:
            state[key] = torch.from_numpy(np.ascontiguousarray(_init_value(key, shapes[key], rng), np.float32))
    return state


def weights_digest(state: dict[str, torch.Tensor]) -> str:
    """sha256 of every (key, dtype, shape, bytes) in key order: the same weights give the same digest."""
    h = hashlib.sha256()
    for key in sorted(state):
        t = state[key].detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}\n".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def write_random_weights(root: Path, seed: int = 0) -> None:
    """Write ``root/aid_sim/wavlm_large_finetune.pth`` (random, seeded) so ``weights.root=root`` runs the metric."""
    import torch

    path = Path(root) / ROOT_SUBPATH
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": random_state(seed)}, path)


def load_like_verification(path: str | Path) -> torch.Tensor:
    """[1, N] float32 at 16 kHz as seed-tts-eval's verification.py reads a file: librosa at the native rate,
    first channel, torchaudio Resample (identity at 16 kHz).

    (verification.py indexes ``wav1[:, 0]`` for a multi-channel *generated* file, i.e. the first sample of each
    channel, a bug that makes it skip such pairs; the first channel is taken here for both files.)
    """
    import librosa
    import torch
    from torchaudio.transforms import Resample

    wav, sr = librosa.load(str(path), sr=None, mono=False)
    if wav.ndim == 2:
        wav = wav[0]
    return Resample(orig_freq=int(sr), new_freq=16000)(torch.from_numpy(wav).unsqueeze(0).float())


def _embed_alone(model, wav: torch.Tensor) -> np.ndarray:  # noqa: ANN001 - the SpeakerVerifier
    """Unit embedding of one [1, N] clip, run alone (the official way: no batch, no padding)."""
    import torch

    with torch.no_grad():
        e = model(wav)[0].double().numpy()
    return e / max(float(np.linalg.norm(e)), 1e-8)


def package_windows(model, wav: np.ndarray, voices: Sequence[Path], win_s: float = 1.5, hop_s: float = 0.75,  # noqa: ANN001
                    min_s: float = 1.0) -> tuple[float, list[float], list[int], list[tuple[float, float]]]:
    """The multi-subject proposal (no official protocol exists) run the package way: Silero-VAD windows of the
    16 kHz track, each window and each reference (read as verification.py reads it) embedded alone, then
    argmax assignment and means. Returns (item value, per-subject values, window counts, window spans)."""
    import torch

    from iap_bench.backends.speaker import SileroRegions, VadConfig, regions_from_probs, windows_in_regions
    from iap_bench.metrics.aid_sim import assign_windows

    vad = SileroRegions()
    spans = windows_in_regions(regions_from_probs(vad.probabilities(wav), vad.chunk, VadConfig()), win_s, hop_s, min_s)
    refs = np.stack([_embed_alone(model, load_like_verification(v)) for v in voices])
    if not spans:
        return 0.0, [0.0] * len(voices), [0] * len(voices), []
    win = np.stack([_embed_alone(model, torch.from_numpy(wav[round(s * 16000):round(e * 16000)].copy())[None])
                    for s, e in spans])
    values, counts = assign_windows(win, refs)
    return float(np.mean(values)), values, counts, spans


def package_scores(root: Path, wavs: Sequence[Path], items: Sequence[Item]) -> list[float]:
    """Per (generated wav, item): cosine to the reference voice, the official way (see the module doc).

    Single-subject items follow the official protocol exactly (each pair re-reads and re-embeds both files, as
    verification_pair_list_v2.py does). Multi-subject items, which the official code has no protocol for, get
    the harness's window proposal run one window at a time (``package_windows``; no speech window -> 0.0, the
    value the harness's ``no_speech`` failure is penalised with).
    """
    import torch
    import torch.nn.functional as F

    from iap_bench.backends.ecapa_wavlm import load_verifier

    if len(wavs) != len(items):
        raise ValueError(f"{len(wavs)} wavs for {len(items)} items")
    model = load_verifier(Path(root) / ROOT_SUBPATH, "cpu")
    out = []
    for wav, item in zip(wavs, items):
        voices = [s.voice for s in item.subjects]
        if any(v is None for v in voices):
            raise ValueError(f"{item.id}: every subject needs a reference voice")
        track = load_like_verification(wav)
        if len(voices) > 1:
            out.append(package_windows(model, track[0].numpy(), voices)[0])
            continue
        with torch.no_grad():
            emb1 = model(track)
            emb2 = model(load_like_verification(voices[0]))
        out.append(float(F.cosine_similarity(emb1, emb2)[0].item()))
    return out


def write_stereo_48k(src: str | Path, dst: str | Path) -> Path:
    """A deterministic 48 kHz stereo float wav from a 16 kHz mono clip (each sample held 3 times; the right
    channel is the left at half level): exercises verification.py's first-channel + Resample reading."""
    import soundfile as sf

    x, sr = sf.read(str(src), dtype="float32")
    if x.ndim != 1 or sr != 16000:
        raise ValueError(f"{src}: expected 16 kHz mono, got sr={sr}, shape {x.shape}")
    up = np.repeat(x, 3)
    sf.write(str(dst), np.stack([up, up * np.float32(0.5)], axis=1), 48000, subtype="FLOAT")
    return Path(dst)
