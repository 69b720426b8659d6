"""Audio embedders of the FD metrics, as hkchengrex/av-benchmark @050a5cd uses them (``av_bench/extract.py``).

- VGGish (torchvggish weights ``vggish-10086976.pth``): 16 kHz, log-mel examples of 0.96 s (no overlap),
  one 128-d vector per example, no PCA/quantisation, and **no ReLU after the last layer**
  (``av_bench/vggish/vggish.py``: "the last activation is removed to match audioldm_eval").
- Cnn14 16 kHz (PANNs ``Cnn14_16k_mAP=0.438.pth``): window 512, hop 160, 64 mels 50–8000 Hz; the 2048-d
  ``relu(fc1)`` output ("2048" in av-benchmark, "embedding" in panns_inference), one vector per clip.
- PaSST (hear21passt ``passt_s_swa_p16_128_ap476``, ``passt-s-f128-p16-s10-ap.476-swa.pt``): 32 kHz,
  padded with zeros or cut to 10 s, the 768-d features that follow the 527 logits in ``mode="all"``.

Audio before every embedder (``av_bench/data/audio_dataset.py`` ``AudioDataset.read_from_file``): mono,
minus its mean (whole clip), at the model's rate, then cut to ``audio_length`` seconds. Two harness
differences, both below float32 noise for speech: the clip arrives already resampled by the shared media
layer (soxr HQ, not torchaudio's ``Resample``), so the mean is removed after resampling instead of before.
VGGish and Cnn14 are implemented here (same state-dict keys as the released files, checked against
torchvggish / panns_inference in the tests); PaSST uses hear21passt's own modules (hkchengrex's fork that
av-benchmark pins only silences prints and deprecations). Checkpoints are loaded strictly
(``iap_bench.metrics._ckpt.check_state_dict``), never downloaded.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from iap_bench.weights import WeightSpec

TORCH_HUB = "~/.cache/torch/hub/checkpoints"  # where torch.hub / timm keep release files
PASST_ARCH = "passt_s_swa_p16_128_ap476"
PASST_SAMPLES = 320000  # 10 s at 32 kHz (av-benchmark pads or cuts to this)


# ---- weight files ----------------------------------------------------------------------------------

def vggish_weight_spec() -> WeightSpec:
    return WeightSpec(
        name="VGGish (FD-VGG)", filename="vggish-10086976.pth",
        how_to_get="download https://github.com/harritaylor/torchvggish/releases/download/v0.1/"
                   "vggish-10086976.pth (the torchvggish release torch.hub fetches)",
        search_paths=(TORCH_HUB,), config_key="params.checkpoint", root_subpath="fd/vggish-10086976.pth")


def cnn14_weight_spec() -> WeightSpec:
    return WeightSpec(
        name="PANNs Cnn14 16 kHz (FD-PANN)", filename="Cnn14_16k_mAP=0.438.pth",
        how_to_get="download https://zenodo.org/record/3987831/files/Cnn14_16k_mAP%3D0.438.pth (PANNs, zenodo "
                   "3987831)",
        search_paths=("~/panns_data", "~/.cache/audioldm_eval/ckpt"), config_key="params.checkpoint",
        root_subpath="fd/Cnn14_16k_mAP=0.438.pth")


def passt_weight_spec() -> WeightSpec:
    return WeightSpec(
        name="PaSST-S SWA ap.476 (FD-PaSST)", filename="passt-s-f128-p16-s10-ap.476-swa.pt",
        how_to_get="download https://github.com/kkoutini/PaSST/releases/download/v0.0.1-audioset/"
                   "passt-s-f128-p16-s10-ap.476-swa.pt (the file hear21passt's get_basic_model fetches)",
        search_paths=(TORCH_HUB,), config_key="params.checkpoint",
        root_subpath="fd/passt-s-f128-p16-s10-ap.476-swa.pt")


# ---- audio preparation (pure) ----------------------------------------------------------------------

def prepare_waveform(wave: np.ndarray, sr: int, audio_length: float) -> np.ndarray:
    """av-benchmark's clip: minus its mean (over the whole clip), then the first ``audio_length`` s; float32."""
    x = np.asarray(wave, dtype=np.float64)
    x = x - x.mean() if x.size else x
    return x[: int(sr * audio_length)].astype(np.float32)


def pad_or_cut(wave: np.ndarray, n: int) -> np.ndarray:
    """Zero-pad at the end or cut to exactly ``n`` samples (PaSST's 10 s input)."""
    x = np.asarray(wave, dtype=np.float32)
    return x[:n] if x.size >= n else np.pad(x, (0, n - x.size))


# ---- VGGish front end (pure, float64 as the reference numpy code) ----------------------------------

VGGISH_SR, VGGISH_WIN, VGGISH_HOP, VGGISH_FFT = 16000, 400, 160, 512  # 25 ms / 10 ms, FFT 2^ceil(log2 400)
VGGISH_BANDS, VGGISH_FMIN, VGGISH_FMAX, VGGISH_LOG_OFFSET = 64, 125.0, 7500.0, 0.01
VGGISH_EXAMPLE = 96  # frames (0.96 s) per example, hop 96 (no overlap)


def vggish_mel_matrix() -> np.ndarray:
    """[257, 64] VGGish mel weights: triangles on the 1127·ln(1 + f/700) scale, 125–7500 Hz, DC row zero."""
    def mel(f: np.ndarray) -> np.ndarray:
        return 1127.0 * np.log(1.0 + f / 700.0)

    bins_mel = mel(np.linspace(0.0, VGGISH_SR / 2, VGGISH_FFT // 2 + 1))
    edges = np.linspace(mel(np.float64(VGGISH_FMIN)), mel(np.float64(VGGISH_FMAX)), VGGISH_BANDS + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins_mel[:, None] - lower) / (center - lower)
    falling = (upper - bins_mel[:, None]) / (upper - center)
    w = np.maximum(0.0, np.minimum(rising, falling))
    w[0, :] = 0.0
    return w


def vggish_examples(wave16k: np.ndarray) -> np.ndarray:
    """[E, 96, 64] float32 log-mel examples (log(mel magnitude + 0.01)); E = 0 for clips under 0.975 s."""
    x = np.asarray(wave16k, dtype=np.float64)
    n_frames = 1 + (x.size - VGGISH_WIN) // VGGISH_HOP if x.size >= VGGISH_WIN else 0
    if n_frames < VGGISH_EXAMPLE:
        return np.zeros((0, VGGISH_EXAMPLE, VGGISH_BANDS), np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(x, VGGISH_WIN)[::VGGISH_HOP][:n_frames]
    window = 0.5 - 0.5 * np.cos(2 * np.pi / VGGISH_WIN * np.arange(VGGISH_WIN))  # periodic Hann
    magnitude = np.abs(np.fft.rfft(frames * window, VGGISH_FFT))
    log_mel = np.log(magnitude @ vggish_mel_matrix() + VGGISH_LOG_OFFSET)
    n_ex = n_frames // VGGISH_EXAMPLE
    return log_mel[: n_ex * VGGISH_EXAMPLE].reshape(n_ex, VGGISH_EXAMPLE, VGGISH_BANDS).astype(np.float32)


# ---- checkpoint loading ----------------------------------------------------------------------------

def _numpy_globals() -> list[Any]:
    """numpy array/scalar reconstruction globals: tensors-only loading plus plain numpy data, still no code."""
    from numpy.core import multiarray

    dtypes = [getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith("DType")]
    return [multiarray._reconstruct, multiarray.scalar, np.ndarray, np.dtype, *dtypes]


def torch_load(path: Path) -> Any:
    """``torch.load`` on CPU: tensors only, then tensors plus numpy data (the PANNs release files keep numpy
    arrays beside the weights: autrainer/autrainer#66); a file needing more is read in full as av-benchmark
    does for Cnn14 (``weights_only=False``)."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        pass
    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        return torch.load(path, map_location="cpu", weights_only=False)


def _state_dict(obj: Any, path: Path) -> dict[str, Any]:
    """The state dict inside a release file: the object itself or its ``model`` entry (PANNs, DeiT-style)."""
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    if not isinstance(obj, dict):
        from iap_bench.errors import IAPBenchError

        raise IAPBenchError(f"{path}: not a state dict (found {type(obj).__name__})")
    return obj


def load_strict(module: Any, path: Path, name: str) -> None:
    """Load ``path`` into ``module`` after ``check_state_dict`` (exact keys and shapes), tensors assigned."""
    from iap_bench.metrics._ckpt import check_state_dict

    state = _state_dict(torch_load(path), path)
    check_state_dict(module, state, name)
    module.load_state_dict(state, strict=True, assign=True)


def _no_meta(module: Any, name: str) -> None:
    left = [k for k, v in [*module.named_parameters(), *module.named_buffers()] if v.is_meta]
    if left:
        raise RuntimeError(f"{name}: tensors not loaded from the checkpoint: {left[:5]}")


# ---- networks --------------------------------------------------------------------------------------

def _build_vggish():  # noqa: ANN202  (torch is imported lazily)
    """VGGish with torchvggish's state-dict keys; the last Linear has no ReLU (av-benchmark)."""
    from torch import nn

    layers: list[nn.Module] = []
    c_in = 1
    for v in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M"):
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(c_in, int(v), kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            c_in = int(v)

    class VGGish(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(*layers)
            self.embeddings = nn.Sequential(nn.Linear(512 * 4 * 6, 4096), nn.ReLU(True), nn.Linear(4096, 4096),
                                            nn.ReLU(True), nn.Linear(4096, 128))

        def forward(self, x):  # noqa: ANN001, ANN202  [B, 1, 96, 64] -> [B, 128]
            x = self.features(x)  # [B, 512, 6, 4]
            x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)  # channels last, as the TF original
            return self.embeddings(x)

    return VGGish()


def _build_cnn14():  # noqa: ANN202
    """Cnn14 (PANNs) at 16 kHz with the released state-dict keys; returns relu(fc1) [B, 2048]."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    class Block(nn.Module):
        def __init__(self, c_in: int, c_out: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
            self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
            self.bn1, self.bn2 = nn.BatchNorm2d(c_out), nn.BatchNorm2d(c_out)

        def forward(self, x, pool):  # noqa: ANN001, ANN202
            x = F.relu(self.bn1(self.conv1(x)))
            x = F.relu(self.bn2(self.conv2(x)))
            return F.avg_pool2d(x, kernel_size=pool)

    class STFT(nn.Module):  # conv-DFT kernels (window folded in) come from the checkpoint
        def __init__(self) -> None:
            super().__init__()
            self.conv_real = nn.Conv1d(1, 257, 512, stride=160, bias=False)
            self.conv_imag = nn.Conv1d(1, 257, 512, stride=160, bias=False)

    class Spectrogram(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stft = STFT()

    class LogMel(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.melW = nn.Parameter(torch.empty(257, 64), requires_grad=False)

    class Cnn14(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.spectrogram_extractor = Spectrogram()
            self.logmel_extractor = LogMel()
            self.bn0 = nn.BatchNorm2d(64)
            chans = (1, 64, 128, 256, 512, 1024, 2048)
            for i in range(6):
                setattr(self, f"conv_block{i + 1}", Block(chans[i], chans[i + 1]))
            self.fc1 = nn.Linear(2048, 2048)
            self.fc_audioset = nn.Linear(2048, 527)

        def forward(self, wave):  # noqa: ANN001, ANN202  [B, N] -> [B, 2048]
            stft = self.spectrogram_extractor.stft
            x = F.pad(wave[:, None, :], (256, 256), mode="reflect")  # centred frames
            power = stft.conv_real(x) ** 2 + stft.conv_imag(x) ** 2  # [B, 257, T]
            mel = power.transpose(1, 2)[:, None] @ self.logmel_extractor.melW  # [B, 1, T, 64]
            x = 10.0 * torch.log10(torch.clamp(mel, min=1e-10))  # power_to_db, ref 1, no top_db
            x = self.bn0(x.transpose(1, 3)).transpose(1, 3)
            for i in range(6):
                x = getattr(self, f"conv_block{i + 1}")(x, (2, 2) if i < 5 else (1, 1))
            x = x.mean(dim=3)
            x = x.max(dim=2).values + x.mean(dim=2)
            return F.relu(self.fc1(x))

    return Cnn14()


def _build_passt():  # noqa: ANN202
    """hear21passt's ``get_basic_model(mode="all")`` pieces, the network built without any download (its
    constructor calls ``.item()``, so it cannot be built on the meta device: random init, then overwritten)."""
    from hear21passt.models import passt as passt_mod
    from hear21passt.models.passt import get_model
    from hear21passt.models.preprocess import AugmentMelSTFT
    from hear21passt.wrapper import PasstBasicWrapper

    passt_mod.first_RUN = False  # its shape prints on the first forward
    with contextlib.redirect_stdout(io.StringIO()):  # get_model prints the whole network
        mel = AugmentMelSTFT(n_mels=128, sr=32000, win_length=800, hopsize=320, n_fft=1024, freqm=48,
                             timem=192, htk=False, fmin=0.0, fmax=None, norm=1, fmin_aug_range=10,
                             fmax_aug_range=2000)
        net = get_model(arch=PASST_ARCH, pretrained=False)
    return PasstBasicWrapper(mel=mel, net=net, mode="all")


# ---- embedders -------------------------------------------------------------------------------------

class AudioEmbedder:
    """A model loaded once; ``embed`` maps prepared clips at ``sample_rate`` to [n_i, dim] float32 each."""

    sample_rate: int = 16000
    dim: int = 0
    min_samples: int = 1  # shorter clips give no vector
    batch: int = 16

    def __init__(self, checkpoint: Path, device: str = "cpu") -> None:
        self.checkpoint = Path(checkpoint)
        self.device = device
        self.model = self._load()

    def _load(self):  # noqa: ANN202
        raise NotImplementedError

    def embed(self, waves: Sequence[np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError


class VGGishEmbedder(AudioEmbedder):
    """128-d per 0.96 s example; all examples of all clips go through the network in shared batches."""

    sample_rate, dim, min_samples, batch = 16000, 128, VGGISH_WIN + (VGGISH_EXAMPLE - 1) * VGGISH_HOP, 256

    def _load(self):  # noqa: ANN202
        import torch

        with torch.device("meta"):
            model = _build_vggish()
        load_strict(model, self.checkpoint, "VGGish")
        _no_meta(model, "VGGish")
        return model.to(self.device).eval()

    def embed(self, waves: Sequence[np.ndarray]) -> list[np.ndarray]:
        import torch

        examples = [vggish_examples(w) for w in waves]
        counts = [len(e) for e in examples]
        if not sum(counts):
            return [np.zeros((0, self.dim), np.float32) for _ in waves]
        stacked = np.concatenate(examples)[:, None]  # [E, 1, 96, 64]
        out = []
        with torch.inference_mode():
            for s in range(0, len(stacked), self.batch):
                x = torch.from_numpy(stacked[s:s + self.batch]).to(self.device)
                out.append(self.model(x).float().cpu().numpy())
        return np.split(np.concatenate(out), np.cumsum(counts)[:-1])


class Cnn14Embedder(AudioEmbedder):
    """2048-d per clip; clips of equal length share a batch (zero padding would change the pooled output)."""

    sample_rate, dim, min_samples, batch = 16000, 2048, 31 * 160, 8  # >= 32 frames survive five 2x poolings

    def _load(self):  # noqa: ANN202
        import torch

        with torch.device("meta"):
            model = _build_cnn14()
        load_strict(model, self.checkpoint, "Cnn14_16k")
        _no_meta(model, "Cnn14_16k")
        return model.to(self.device).eval()

    def embed(self, waves: Sequence[np.ndarray]) -> list[np.ndarray]:
        import torch

        out: list[np.ndarray | None] = [None] * len(waves)
        by_len: dict[int, list[int]] = {}
        for i, w in enumerate(waves):
            by_len.setdefault(len(w), []).append(i)
        with torch.inference_mode():
            for n, idx in by_len.items():
                if n < self.min_samples:
                    for i in idx:
                        out[i] = np.zeros((0, self.dim), np.float32)
                    continue
                for s in range(0, len(idx), self.batch):
                    part = idx[s:s + self.batch]
                    x = torch.from_numpy(np.stack([np.asarray(waves[i], np.float32) for i in part])).to(self.device)
                    emb = self.model(x).float().cpu().numpy()
                    for j, i in enumerate(part):
                        out[i] = emb[j:j + 1]
        return out  # type: ignore[return-value]


class PasstEmbedder(AudioEmbedder):
    """768-d per clip from 10 s inputs (zero-padded or cut), batched."""

    sample_rate, dim, min_samples, batch = 32000, 768, 1, 4

    def _load(self):  # noqa: ANN202
        model = _build_passt()
        load_strict(model.net, self.checkpoint, "PaSST")
        _no_meta(model, "PaSST")
        return model.to(self.device).eval()

    def embed(self, waves: Sequence[np.ndarray]) -> list[np.ndarray]:
        import torch

        x_all = np.stack([pad_or_cut(w, PASST_SAMPLES) for w in waves]) if len(waves) else np.zeros((0, 1))
        out = []
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # stft return_complex / cuda.amp deprecations, 1000 vs 998 frames
            for s in range(0, len(x_all), self.batch):
                x = torch.from_numpy(x_all[s:s + self.batch]).to(self.device)
                out.append(self.model(x)[:, 527:].float().cpu().numpy())
        emb = np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)
        return [emb[i:i + 1] for i in range(len(waves))]


EMBEDDERS: dict[str, tuple[type[AudioEmbedder], Any]] = {
    "vggish": (VGGishEmbedder, vggish_weight_spec),
    "cnn14": (Cnn14Embedder, cnn14_weight_spec),
    "passt": (PasstEmbedder, passt_weight_spec),
}


def make_embedder(kind: str, checkpoint: str | os.PathLike | None = None, device: str = "cpu") -> AudioEmbedder:
    """Resolve ``kind``'s weight file (MissingCheckpointError if absent) and load its embedder."""
    cls, spec = EMBEDDERS[kind]
    return cls(spec().resolve(checkpoint), device)
