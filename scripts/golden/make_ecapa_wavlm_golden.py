"""Golden numbers for aid_sim/reference from the OFFICIAL code (UniSpeech SV via seed-tts-eval + s3prl WavLM).

The official SIM path is not an installable package, so this script runs the published files themselves,
read at HEAD of two public repositories (a checkout or a bare git dir each; nothing of them is committed):

    git clone https://github.com/s3prl/s3prl /tmp/s3prl
    git clone https://github.com/BytedanceSpeech/seed-tts-eval /tmp/seed-tts-eval
    .venv/bin/python scripts/golden/make_ecapa_wavlm_golden.py --s3prl /tmp/s3prl --seed-tts-eval /tmp/seed-tts-eval

What runs, unchanged: seed-tts-eval's ``thirdparty/UniSpeech/downstreams/speaker_verification/verification.py``
(``init_model('wavlm_large', checkpoint)``: ``ECAPA_TDNN_SMALL(feat_dim=1024, feat_type='wavlm_large')``, then
``load_state_dict(state_dict['model'], strict=False)``; ``verification(...)`` per pair: librosa, first channel,
torchaudio Resample, cosine) on s3prl's WavLM upstream (``upstream/wavlm/hubconf.wavlm_local`` ->
``expert.UpstreamExpert`` -> ``WavLM.py``). The one substitution: ``torch.hub.load('s3prl/s3prl', 'wavlm_large')``
(a download of WavLM-Large.pt) becomes ``wavlm_local(<local upstream file>)``; that file holds the WavLM-Large
config with the random checkpoint's layer count and DIFFERENT random front-end weights, so the official numbers
equal ours only if ``wavlm_large_finetune.pth``'s front-end keys really replace the upstream's, as they must in
the real pipeline. No ``fire`` package is needed (only verification.py's ``__main__`` uses it: stubbed).

Weights: ``iap_bench.testing.aid_sim_wavlm.write_random_weights(root, seed)`` (the release's format, 2 layers).
Audio: real speech committed in this repository (iap-mini voices and ground truth) and Debian's LibriVox clips,
plus one derived 48 kHz stereo float file (``write_stereo_48k``) that exercises first-channel + Resample.
Writes ONLY numbers and provenance to tests/fixtures/golden/ecapa_wavlm.json (CPU, float32).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SV_DIR = "thirdparty/UniSpeech/downstreams/speaker_verification"
SEED_FILES = (f"{SV_DIR}/verification.py", f"{SV_DIR}/models/__init__.py", f"{SV_DIR}/models/ecapa_tdnn.py")
S3PRL_FILES = ("s3prl/__init__.py", "s3prl/version.txt", "s3prl/upstream/__init__.py", "s3prl/upstream/interfaces.py",
               "s3prl/utility/__init__.py", "s3prl/utility/helper.py", "s3prl/util/__init__.py",
               "s3prl/util/download.py", "s3prl/upstream/wavlm/__init__.py", "s3prl/upstream/wavlm/hubconf.py",
               "s3prl/upstream/wavlm/expert.py", "s3prl/upstream/wavlm/WavLM.py", "s3prl/upstream/wavlm/modules.py")
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
# name -> file (relative to the repository root, or absolute for the Debian LibriVox clips)
AUDIO = {
    **{f"voice_{i}": f"benchmark_data/iap-mini/pack/id_00{i}/voice.wav" for i in (1, 2, 5)},
    "gt_s01": "benchmark_data/iap-mini/ground_truth/mini_s01.wav",
    "gt_m01": "benchmark_data/iap-mini/ground_truth/mini_m01.wav",
    "lv_0880": str(LIBRIVOX / "sense_and_sensibility_01_austen_64kb-0880.wav"),
}
DERIVED = {"lv_0930_48k_stereo": str(LIBRIVOX / "sense_and_sensibility_01_austen_64kb-0930.wav")}
GENERATED = ("gt_s01", "gt_m01", "lv_0880")  # wav1 of verification(): the "generated" side
REFERENCES = ("voice_1", "voice_5", "lv_0930_48k_stereo")  # wav2: the prompt / reference side
PAIRS = [(g, r) for g in GENERATED for r in REFERENCES] + [("voice_2", "voice_2")]

# s3prl's WavLMConfig fields of WavLM-Large (the hub's wavlm_large.pt carries these); layer count from ours.
WAVLM_LARGE_CFG = {
    "extractor_mode": "layer_norm", "encoder_embed_dim": 1024, "encoder_ffn_embed_dim": 4096,
    "encoder_attention_heads": 16, "activation_fn": "gelu", "layer_norm_first": True,
    "conv_feature_layers": "[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2", "conv_bias": False,
    "feature_grad_mult": 1.0, "normalize": True, "dropout": 0.1, "attention_dropout": 0.1,
    "activation_dropout": 0.0, "encoder_layerdrop": 0.0, "dropout_input": 0.0, "dropout_features": 0.0,
    "conv_pos": 128, "conv_pos_groups": 16, "relative_position_embedding": True, "num_buckets": 320,
    "max_distance": 800, "gru_rel_pos": True,
}


def git(repo: Path, *args: str) -> str:
    """Run git on a checkout (``repo/.git``) or a bare git dir."""
    base = ["git", "-C", str(repo)] if (repo / ".git").exists() else ["git", f"--git-dir={repo}"]
    return subprocess.run(base + list(args), check=True, capture_output=True, text=True).stdout


def extract(repo: Path, files: tuple[str, ...], dest: Path) -> str:
    """Write ``files`` at HEAD of ``repo`` under ``dest``; returns the commit."""
    for f in files:
        out = dest / f
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(git(repo, "show", f"HEAD:{f}"))
    return git(repo, "rev-parse", "HEAD").strip()


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def official_modules(work: Path, upstream_ckpt: Path):  # noqa: ANN201 - the official verification module
    """Import the extracted official files; torch.hub.load('s3prl/s3prl', 'wavlm_large') -> wavlm_local(file)."""
    import torch

    sys.path[:0] = [str(work), str(work / SV_DIR)]
    sys.modules.setdefault("fire", types.ModuleType("fire"))  # used only by verification.py's __main__
    hubconf = importlib.import_module("s3prl.upstream.wavlm.hubconf")

    def hub_load(repo: str, name: str, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        assert (repo, name) == ("s3prl/s3prl", "wavlm_large"), (repo, name)
        return hubconf.wavlm_local(str(upstream_ckpt))

    torch.hub.load = hub_load
    verification = importlib.import_module("verification")
    assert Path(verification.__file__).resolve().is_relative_to(work.resolve()), verification.__file__
    return verification


def load_as_verification(path: str):  # noqa: ANN201 - torch.Tensor [1, N]
    """verification.py's reading of its second file (librosa native rate, first channel, Resample to 16 kHz)."""
    import librosa
    import torch
    from torchaudio.transforms import Resample

    wav, sr = librosa.load(path, sr=None, mono=False)
    if len(wav.shape) == 2:
        wav = wav[0, :]
    return Resample(orig_freq=sr, new_freq=16000)(torch.from_numpy(wav).unsqueeze(0).float())


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="ecapa_golden_"))
    try:
        make(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def make(work: Path) -> None:
    """Extract the official files and random weights under ``work``, run them, write the fixture."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--s3prl", type=Path, required=True, help="s3prl/s3prl checkout or git dir")
    ap.add_argument("--seed-tts-eval", type=Path, required=True, help="BytedanceSpeech/seed-tts-eval checkout or git dir")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "tests/fixtures/golden/ecapa_wavlm.json")
    args = ap.parse_args()

    import librosa
    import numpy as np
    import torch
    import torch.nn.functional as F
    import torchaudio

    from iap_bench.backends.ecapa_wavlm import layer_count
    from iap_bench.testing.aid_sim_wavlm import (
        ROOT_SUBPATH,
        random_state,
        weights_digest,
        write_random_weights,
        write_stereo_48k,
    )

    torch.manual_seed(0)
    commits = {"s3prl/s3prl": extract(args.s3prl, S3PRL_FILES, work),
               "BytedanceSpeech/seed-tts-eval": extract(args.seed_tts_eval, SEED_FILES, work)}

    weights = work / "weights"
    write_random_weights(weights, args.seed)
    finetune = weights / ROOT_SUBPATH
    state = torch.load(finetune, map_location="cpu", weights_only=True)["model"]
    n_layers = layer_count(state)
    upstream_seed = args.seed + 1  # different front-end weights in the upstream file (see the module doc)
    front = {k[len("feature_extract.model."):]: v
             for k, v in random_state(upstream_seed, n_layers).items() if k.startswith("feature_extract.model.")}
    upstream_ckpt = work / "WavLM-Large-random.pt"
    torch.save({"cfg": {**WAVLM_LARGE_CFG, "encoder_layers": n_layers}, "model": front}, upstream_ckpt)

    verification = official_modules(work, upstream_ckpt)
    model = verification.init_model("wavlm_large", str(finetune))
    model.eval()
    # what the official strict=False load consumed (loading again is idempotent)
    res = model.load_state_dict(state, strict=False)
    own = model.state_dict()
    not_loaded = [k for k in state if k in own and not torch.equal(own[k], state[k])]
    assert not res.missing_keys and not not_loaded, (res.missing_keys[:5], not_loaded[:5])

    audio = dict(AUDIO)
    for name, src in DERIVED.items():
        audio[name] = str(write_stereo_48k(src, work / f"{name}.wav"))
    embeddings = {}
    with torch.no_grad():
        for name, path in audio.items():
            full = path if Path(path).is_absolute() else str(ROOT / path)
            emb = model(load_as_verification(full))[0].double()
            embeddings[name] = {"norm": float(emb.norm()), "values": [float(v) for v in emb]}
    pairs = []
    for g, r in PAIRS:
        paths = [a if Path(a).is_absolute() else str(ROOT / a) for a in (audio[g], audio[r])]
        sim, _ = verification.verification("wavlm_large", paths[0], paths[1], use_gpu=False, model=model)
        e1, e2 = (torch.tensor(embeddings[n]["values"]) for n in (g, r))
        check = float(F.cosine_similarity(e1[None], e2[None])[0])
        assert abs(check - float(sim[0])) < 1e-6, (g, r, check, float(sim[0]))
        pairs.append({"wav1": g, "wav2": r, "cosine": float(sim[0])})

    files = {}
    for name, path in audio.items():
        if name in DERIVED:
            files[name] = {"derived_from": DERIVED[name], "sha256_of_source": sha256(Path(DERIVED[name])),
                           "how": "iap_bench.testing.aid_sim_wavlm.write_stereo_48k"}
        else:
            files[name] = {"path": path, "sha256": sha256(Path(path) if Path(path).is_absolute() else ROOT / path)}
    golden = {
        "about": ("Official UniSpeech SV (seed-tts-eval verification.py, ECAPA_TDNN_SMALL wavlm_large) on s3prl's "
                  "WavLM upstream, seeded random weights, CPU float32: per-file embeddings and per-pair cosines."),
        "made_by": "scripts/golden/make_ecapa_wavlm_golden.py",
        "sources": {repo: {"commit": c, "files": list(S3PRL_FILES if repo.startswith("s3prl") else SEED_FILES)}
                    for repo, c in commits.items()},
        "substitution": "torch.hub.load('s3prl/s3prl','wavlm_large') -> s3prl wavlm_local(local upstream file)",
        "seed": args.seed, "upstream_front_end_seed": upstream_seed, "n_layers": n_layers,
        "weights_digest": weights_digest(state),
        "official_load": {"missing_keys": list(res.missing_keys), "unexpected_keys": list(res.unexpected_keys)},
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "torchaudio": torchaudio.__version__, "librosa": librosa.__version__, "numpy": np.__version__},
        "device": "cpu", "dtype": "float32",
        "audio": files, "embeddings": embeddings, "pairs": pairs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(golden, indent=1) + "\n")
    print(f"wrote {args.out}: {len(embeddings)} embeddings, {len(pairs)} pairs; official load: "
          f"missing={res.missing_keys} unexpected={res.unexpected_keys}")


if __name__ == "__main__":
    main()
