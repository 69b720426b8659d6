"""Test support for ``pq/reference``: a seeded random Audiobox Aesthetics ``checkpoint.pt`` and the package path.

``write_random_weights`` writes ``<root>/pq/checkpoint.pt`` in the released file's format, the one
``AesPredictor.setup_model`` reads: ``torch.save({'state_dict': {'model.<key>': tensor}, 'model_cfg': {...},
'target_transform': {axis: {'mean', 'std'}}})``. The model is the package's ``AesMultiOutput`` at its real
size (WavLM base, 94 M parameters, ~380 MB, written in a few seconds), initialised by the package's own
constructor under ``torch.manual_seed(seed)``, with the projection heads scaled up so that clip scores spread
over a few points. ``target_transform`` holds made-up per-axis mean/std on the 1-10 scale; ``model_cfg``
holds AesMultiOutput's defaults with ``precision='bf16'`` (the precision field the package never turns into
autocast). The released file is a training checkpoint with more top-level entries (optimizer state and the
like) that the package ignores; they are not written.

``package_scores``: the package's own predictor, ``initialize_predictor(ckpt=path).forward``, one file at a
time, returning PQ. Files are read with soundfile and passed as ``{'path': tensor [C, N], 'sample_rate': sr}``
because the package's file-path branch needs torchaudio's FFmpeg backend (absent here) and its
``start_time`` branch calls ``torchaudio.info``, removed in torchaudio 2.9 (PACKAGES.md); from the tensor on,
the package resamples (torchaudio), mixes, windows, predicts and de-normalises by itself.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from iap_bench.benchmark.schema import Item

ROOT_SUBPATH = "pq/checkpoint.pt"
TARGET_TRANSFORM = {"CE": {"mean": 5.6, "std": 1.6}, "CU": {"mean": 6.3, "std": 1.4},
                    "PC": {"mean": 3.1, "std": 1.8}, "PQ": {"mean": 6.7, "std": 1.3}}
MODEL_CFG = {"proj_num_layer": 1, "proj_ln": False, "proj_act_fn": "gelu", "proj_dropout": 0.0, "nth_layer": 13,
             "use_weighted_layer_sum": True, "precision": "bf16", "normalize_embed": True, "output_dim": 1}
HEAD_GAIN = 30.0  # the default Linear init on an L2-normalised 768-d embedding gives outputs of ~0.02


def random_checkpoint(seed: int = 0) -> dict:
    """The released checkpoint's structure with seeded random weights (see the module doc)."""
    import torch
    from audiobox_aesthetics.model.aes import AesMultiOutput

    torch.manual_seed(seed)
    model = AesMultiOutput(**MODEL_CFG, target_transform=TARGET_TRANSFORM)
    with torch.no_grad():
        for head in model.proj_layer.values():
            head[-1].weight.mul_(HEAD_GAIN)
    state = {f"model.{k}": v.detach().clone() for k, v in model.state_dict().items()}
    return {"state_dict": state, "model_cfg": dict(MODEL_CFG), "target_transform": TARGET_TRANSFORM}


def write_random_weights(root: Path, seed: int = 0) -> None:
    """Write ``root/pq/checkpoint.pt`` (random, seeded) so that ``weights.root=root`` runs the metric."""
    import torch

    path = Path(root) / ROOT_SUBPATH
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(random_checkpoint(seed), path)


def package_scores(root: Path, wavs: Sequence[Path], items: Sequence[Item]) -> list[float]:
    """PQ of each file by ``audiobox_aesthetics.infer.initialize_predictor(ckpt).forward``, file after file."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import soundfile as sf
    import torch
    from audiobox_aesthetics.infer import initialize_predictor

    if len(wavs) != len(items):
        raise ValueError(f"{len(wavs)} wavs for {len(items)} items")
    predictor = initialize_predictor(ckpt=str(Path(root) / ROOT_SUBPATH))
    out = []
    for wav in wavs:
        data, sr = sf.read(str(wav), dtype="float32", always_2d=True)  # [N, C]
        tensor = torch.from_numpy(data.T.copy())
        out.append(float(predictor.forward([{"path": tensor, "sample_rate": int(sr)}])[0]["PQ"]))
    return out
