"""FD test support: seeded random VGGish / Cnn14-16k / PaSST checkpoints in the real file formats, and each
official package's own embedding path (torchvggish, panns_inference, hear21passt) run file after file.

``write_random_weights(root)`` writes, at the real sizes and keys (each in a few seconds):
``fd/vggish-10086976.pth`` (plain state dict, 72.1 M params, ~288 MB), ``fd/Cnn14_16k_mAP=0.438.pth``
(``{"model": state dict}``, 81.1 M params, ~324 MB: panns_inference re-downloads anything under 3e8 bytes,
so it cannot be smaller) and ``fd/passt-s-f128-p16-s10-ap.476-swa.pt`` (plain state dict, 86.2 M params,
~345 MB). Cnn14's STFT/mel kernels are the real fixed ones (librosa), everything trainable is random.

Package paths (what a user of each package would run; av-benchmark's audio preparation where the package
has none): torchvggish ``wavfile_to_examples(path)`` (it reads the wav itself; no mean removal or cut) into
its ``VGG`` with the last ReLU removed as av-benchmark does; panns_inference ``AudioTagging(model=Cnn14 at
16 kHz, checkpoint_path=...)``.``inference`` on ``librosa.load(sr=16000)`` audio; hear21passt
``get_basic_model(mode="all")`` loading the file through its own (torch.hub cache) loader, on
``librosa.load(sr=32000)`` audio padded/cut to 10 s. FD is av-benchmark's ``compute_fd``: ``np.cov`` and
``scipy.linalg.sqrtm`` (``iap_bench.metrics.frechet.frechet_distance`` is that formula).
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from iap_bench.benchmark.schema import Item

FILES = {"vggish": "fd/vggish-10086976.pth", "cnn14": "fd/Cnn14_16k_mAP=0.438.pth",
         "passt": "fd/passt-s-f128-p16-s10-ap.476-swa.pt"}
PANNS_MIN_BYTES = 3e8  # panns_inference.AudioTagging wgets over any checkpoint smaller than this


# ---- random weights --------------------------------------------------------------------------------

def _template(build: Any, meta: bool = True) -> dict[str, tuple[tuple[int, ...], Any]]:
    """key -> (shape, dtype) of a module, built on the meta device where its constructor allows."""
    import torch

    with torch.device("meta" if meta else "cpu"), contextlib.redirect_stdout(io.StringIO()):
        module = build()
    return {k: (tuple(v.shape), v.dtype) for k, v in module.state_dict().items()}


def _cnn_tensor(key: str, shape: tuple[int, ...], g: Any) -> Any:
    """He-normal conv/linear weights, small biases, BatchNorm near identity (bn0 scaled to dB input)."""
    import torch

    if key.endswith("num_batches_tracked"):
        return torch.zeros((), dtype=torch.long)
    n = torch.randn(shape, generator=g)
    if key.startswith("bn0."):
        base = {"weight": 1.0, "bias": 0.0, "running_mean": -30.0, "running_var": 400.0}[key.split(".")[-1]]
        return base + n * (0.1 * abs(base) if base else 0.1)
    if ".bn" in key:
        kind = key.split(".")[-1]
        if kind in ("weight", "running_var"):
            return 1.0 + 0.1 * n.clamp(-2, 2)
        return 0.05 * n
    if key.endswith("weight") and len(shape) >= 2:
        return n * float(np.sqrt(2.0 / np.prod(shape[1:])))
    return 0.01 * n


def _vit_tensor(key: str, shape: tuple[int, ...], g: Any) -> Any:
    """ViT-style: N(0, 0.02) weights and embeddings, LayerNorm near (1, 0), small biases."""
    import torch

    n = torch.randn(shape, generator=g)
    if "norm" in key and len(shape) == 1:
        return (1.0 + 0.02 * n) if key.endswith("weight") else 0.02 * n
    return 0.02 * n


def _cnn14_frontend() -> dict[str, Any]:
    """Cnn14's fixed front-end tensors: Hann-windowed DFT kernels (512, hop 160) and the slaney mel bank."""
    import librosa
    import torch

    n_fft = 512
    window = librosa.filters.get_window("hann", n_fft, fftbins=True)
    k = np.arange(n_fft // 2 + 1)[:, None] * np.arange(n_fft)[None, :]
    dft = np.exp(-2j * np.pi * k / n_fft) * window[None, :]
    mel = librosa.filters.mel(sr=16000, n_fft=n_fft, n_mels=64, fmin=50, fmax=8000).T
    return {"spectrogram_extractor.stft.conv_real.weight": torch.tensor(dft.real, dtype=torch.float32)[:, None, :],
            "spectrogram_extractor.stft.conv_imag.weight": torch.tensor(dft.imag, dtype=torch.float32)[:, None, :],
            "logmel_extractor.melW": torch.tensor(mel, dtype=torch.float32)}


_BUILDS = {"vggish": ("_build_vggish", _cnn_tensor), "cnn14": ("_build_cnn14", _cnn_tensor),
           "passt": ("_build_passt", _vit_tensor)}


@functools.cache
def _template_of(kind: str) -> tuple[tuple[str, tuple[int, ...], Any], ...]:
    """(key, shape, dtype) of a network's state dict (PaSST cannot be built on meta: built once, cached)."""
    from iap_bench.backends import audio_embed as ae

    build = getattr(ae, _BUILDS[kind][0])
    if kind == "passt":
        return tuple((k, s, d) for k, (s, d) in _template(lambda: build().net, meta=False).items())
    return tuple((k, s, d) for k, (s, d) in _template(build).items())


def random_state_dicts(seed: int = 0, kinds: Sequence[str] = tuple(FILES)) -> dict[str, dict[str, Any]]:
    """Seeded random state dicts of the networks (real keys and shapes), by embedder kind."""
    import torch

    out: dict[str, dict[str, Any]] = {}
    for kind in kinds:
        rule = _BUILDS[kind][1]
        g = torch.Generator().manual_seed(seed * 1000 + list(FILES).index(kind))
        fixed = _cnn14_frontend() if kind == "cnn14" else {}
        out[kind] = {k: fixed[k] if k in fixed else rule(k, shape, g).to(dtype) for k, shape, dtype in _template_of(kind)}
    return out


def write_random_weights(root: Path, seed: int = 0, kinds: Sequence[str] = tuple(FILES)) -> None:
    """Write the FD checkpoints (random, real format) under ``root`` at their ``root_subpath`` (all three
    unless ``kinds`` names some)."""
    import torch

    for kind in kinds:  # one network in memory at a time
        state = random_state_dicts(seed, (kind,))[kind]
        path = Path(root) / FILES[kind]
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"model": state} if kind == "cnn14" else state, path)


# ---- the packages' own paths -----------------------------------------------------------------------

def package_vggish(root: Path) -> Any:
    """torchvggish's network loaded as ``torchvggish.vggish()`` does (strict), last ReLU removed (av-benchmark)."""
    import torch
    import torchvggish

    model = torchvggish.VGG(torchvggish.make_layers(), postprocess=False)
    model.load_state_dict(torch.load(Path(root) / FILES["vggish"], map_location="cpu"))
    model.embeddings[5] = torch.nn.Identity()  # av_bench/vggish/vggish.py: no activation after the last layer
    return model.eval()


def package_cnn14(root: Path, device: str = "cpu") -> Any:
    """panns_inference ``AudioTagging`` with its ``Cnn14`` configured for 16 kHz (av-benchmark's settings)."""
    from panns_inference import AudioTagging
    from panns_inference.models import Cnn14

    path = Path(root) / FILES["cnn14"]
    if not path.is_file() or path.stat().st_size < PANNS_MIN_BYTES:  # it would wget over the file
        raise FileNotFoundError(f"{path}: missing or under {PANNS_MIN_BYTES:.0f} bytes")
    model = Cnn14(sample_rate=16000, window_size=512, hop_size=160, mel_bins=64, fmin=50, fmax=8000,
                  classes_num=527)
    with contextlib.redirect_stdout(io.StringIO()):
        return AudioTagging(model=model, checkpoint_path=str(path), device=device)


@contextlib.contextmanager
def _hub_dir_with(path: Path) -> Iterator[None]:
    """torch.hub's cache dir pointed at a temporary folder holding ``path`` as a cached release file."""
    import torch

    old = torch.hub.get_dir()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "checkpoints").mkdir()
        link = Path(tmp) / "checkpoints" / path.name
        try:
            os.symlink(path.resolve(), link)
        except OSError:
            shutil.copy(path, link)
        torch.hub.set_dir(tmp)
        try:
            yield
        finally:
            torch.hub.set_dir(old)


def package_passt(root: Path) -> Any:
    """hear21passt ``get_basic_model(mode="all")``: its own loader reads the file from the torch.hub cache."""
    from hear21passt.base import get_basic_model

    with _hub_dir_with(Path(root) / FILES["passt"]), contextlib.redirect_stdout(io.StringIO()):
        model = get_basic_model(mode="all")
    return model.eval()


def package_model(kind: str, root: Path) -> Any:
    return {"vggish": package_vggish, "cnn14": package_cnn14, "passt": package_passt}[kind](root)


def _prepare(wave: np.ndarray, sr: int, audio_length: float) -> np.ndarray:
    """av-benchmark ``AudioDataset``: minus the clip mean, first ``audio_length`` s (written out here)."""
    x = np.asarray(wave, np.float32)
    return (x - x.mean())[: int(sr * audio_length)]


def package_embed(kind: str, model: Any, wav: Path, audio_length: float = 5.0) -> np.ndarray:
    """One file through the package's own path: [n, d] float32 (VGGish n = examples, else n = 1)."""
    import torch

    if kind == "vggish":
        import torchvggish

        with torch.no_grad():
            return model(torchvggish.wavfile_to_examples(str(wav))).numpy().astype(np.float32)
    import librosa

    if kind == "cnn14":
        wave, _ = librosa.load(str(wav), sr=16000, mono=True)
        _, emb = model.inference(_prepare(wave, 16000, audio_length)[None, :])
        return np.asarray(emb, np.float32)
    wave, _ = librosa.load(str(wav), sr=32000, mono=True)
    x = torch.from_numpy(_prepare(wave, 32000, audio_length))[None]
    x = x[..., :320000] if x.shape[-1] >= 320000 else torch.nn.functional.pad(x, (0, 320000 - x.shape[-1]))
    with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
        return model(x)[:, 527:].numpy().astype(np.float32)


def package_embeddings(kind: str, model: Any, wavs: Sequence[Path], audio_length: float = 5.0) -> list[np.ndarray]:
    """The package path on each file, one after another (embeddings of a file computed once)."""
    seen: dict[str, np.ndarray] = {}
    for w in wavs:
        seen.setdefault(str(w), package_embed(kind, model, Path(w), audio_length))
    return [seen[str(w)] for w in wavs]


def package_fd(kind: str, model: Any, wavs: Sequence[Path], items: Sequence[Item],
               audio_length: float = 5.0) -> float:
    """av-benchmark's FD of the package embeddings of ``wavs`` against those of the items' ground truth."""
    from iap_bench.metrics.frechet import frechet_distance

    gen = package_embeddings(kind, model, wavs, audio_length)
    ref = package_embeddings(kind, model, [Path(i.ground_truth_audio) for i in items], audio_length)
    return frechet_distance(np.concatenate(gen), np.concatenate(ref))


def package_scores(root: Path, wavs: Sequence[Path], items: Sequence[Item], kind: str = "vggish") -> list[float]:
    """[FD] through the package's own path (model loading included): FD-VGG unless ``kind`` says otherwise."""
    return [package_fd(kind, package_model(kind, root), wavs, items)]
