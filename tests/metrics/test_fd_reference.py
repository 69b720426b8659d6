"""fd/reference (FD-VGG), fd_pann/reference, fd_passt/reference against the official packages, on real audio.

Weights: seeded random checkpoints in the real file formats (``iap_bench.testing.fd.write_random_weights``),
loaded by this harness (strict key check) and by each package's own loader. Audio: real speech (iap-mini
ground-truth wavs, LibriVox clips), cut to 5 s at 16 kHz, written as PCM16 with an exactly zero sum so that
av-benchmark's mean removal and 5 s cut are no-ops: torchvggish reads the wav itself and does neither, and
with such files both paths see identical samples (a 2e-4 DC offset alone moves VGGish log-mels by 1e-2).

PARITY tolerances (max |harness − package| over every vector, relative to the largest |value|):
- front end: VGGish log-mel examples 1e-6 (float64 both, cast to float32);
- VGGish / Cnn14 / PaSST embeddings 1e-5: same float32 weights and inputs; only the order of float32
  operations differs (channels-last flatten as a permute, batched vs single clips, conv-DFT kernels);
- FD: 1e-5 relative (it is a smooth function of the embeddings; 128-d sets use the sqrtm reference on both
  sides; 2048-d/768-d sets compare the exact singular-value form, because scipy's sqrtm of a 2048² product
  costs 1–2 min on 2 cores; test_frechet proves that form equals the reference on full-rank sets).
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from metric_media import LIBRIVOX, ROOT, make_item, write_sample  # noqa: E402

from iap_bench.backends import audio_embed as ae  # noqa: E402
from iap_bench.errors import MissingCheckpointError  # noqa: E402
from iap_bench.media.sample import SampleMedia  # noqa: E402
from iap_bench.metrics._ckpt import CheckpointKeyError, check_state_dict  # noqa: E402
from iap_bench.metrics.base import EvalSample  # noqa: E402
from iap_bench.metrics.frechet import decode_embeddings, frechet_distance, frechet_distance_fast  # noqa: E402
from iap_bench.testing import fd as T  # noqa: E402

GT_DIR = ROOT / "benchmark_data" / "iap-mini" / "ground_truth"
TOL = 1e-5


def _real_audio() -> dict[str, Path]:
    gt = sorted(GT_DIR.glob("mini_*.wav"))
    lv = sorted(LIBRIVOX.glob("*.wav"))
    if len(gt) < 9 or len(lv) < 5:
        from asset_policy import missing_asset

        missing_asset(f"real speech: iap-mini ground truth ({len(gt)}/9) or LibriVox clips ({len(lv)}/5)")
    return {**{p.stem: p for p in gt}, **{f"lv{i}": p for i, p in enumerate(lv)}}


def zero_sum_pcm16(wave: np.ndarray) -> np.ndarray:
    """int16 samples of ``wave`` minus its mean, the rounding residue removed by ±1 LSB steps: sum exactly 0."""
    x = np.asarray(wave, np.float64)
    q = np.clip(np.round((x - x.mean()) * 32768), -32766, 32766).astype(np.int64)
    s = int(q.sum())  # rounding residue only: |s| is far below the sample count
    if s:
        q[np.linspace(0, q.size - 1, abs(s)).astype(np.int64)] -= np.sign(s)
    assert q.sum() == 0
    return q.astype(np.int16)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real speech as 16 kHz PCM16 wavs, at most 5 s, zero sum (mean removal and the 5 s cut are no-ops)."""
    import soundfile as sf

    from iap_bench.media.refs import load_audio

    d = tmp_path_factory.mktemp("fd_clips")
    out = {}
    for name, src in _real_audio().items():
        x = load_audio(src, 16000)[: 5 * 16000]
        out[name] = d / f"{name}.wav"
        sf.write(out[name], zero_sum_pcm16(x), 16000, subtype="PCM_16")
    return out


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    r = tmp_path_factory.mktemp("fd_weights")
    t0 = time.perf_counter()
    T.write_random_weights(r, seed=0, kinds=("vggish", "cnn14"))
    print(f"\nwrite_random_weights vggish+cnn14: {time.perf_counter() - t0:.1f} s, "
          + ", ".join(f"{k} {(r / T.FILES[k]).stat().st_size / 1e6:.0f} MB" for k in ("vggish", "cnn14")))
    return r


@pytest.fixture(scope="module")
def passt_root(root: Path) -> Path:
    """The same folder with the PaSST file added (only the slow PaSST test needs it)."""
    t0 = time.perf_counter()
    T.write_random_weights(root, seed=0, kinds=("passt",))
    print(f"\nwrite_random_weights passt: {time.perf_counter() - t0:.1f} s, "
          f"{(root / T.FILES['passt']).stat().st_size / 1e6:.0f} MB")
    return root


def _ckpt(root: Path, kind: str) -> str:
    return str(root / T.FILES[kind])


def _timed(what: str, fn, *args):  # noqa: ANN001, ANN002, ANN202
    t0 = time.perf_counter()
    out = fn(*args)
    print(f"{what}: {time.perf_counter() - t0:.2f} s")
    return out


@pytest.fixture(scope="module")
def vggish_metric(root: Path):  # noqa: ANN201
    from iap_bench.metrics.fd import VggishFD

    m = VggishFD(checkpoint=_ckpt(root, "vggish"), n_boot=200)
    _timed("harness VGGish load", m.load)
    return m


@pytest.fixture(scope="module")
def vggish_package(root: Path):  # noqa: ANN201
    return _timed("package VGGish build+load", T.package_vggish, root)


@pytest.fixture(scope="module")
def pann_metric(root: Path):  # noqa: ANN201
    from iap_bench.metrics.fd import PannFD

    m = PannFD(checkpoint=_ckpt(root, "cnn14"))
    _timed("harness Cnn14 load", m.load)
    return m


@pytest.fixture(scope="module")
def cnn14_package(root: Path):  # noqa: ANN201
    return _timed("package Cnn14 (AudioTagging) build+load", T.package_cnn14, root)


@pytest.fixture(scope="module")
def passt_metric(passt_root: Path):  # noqa: ANN201
    from iap_bench.metrics.fd import PasstFD

    m = PasstFD(checkpoint=_ckpt(passt_root, "passt"))
    _timed("harness PaSST build+load", m.load)
    return m


@pytest.fixture(scope="module")
def passt_package(passt_root: Path):  # noqa: ANN201
    return _timed("package PaSST get_basic_model+load", T.package_passt, passt_root)


def _item(name: str, gt: Path | None):  # noqa: ANN202
    return dataclasses.replace(make_item(name, [()], [None], ["hello"]), ground_truth_audio=gt)


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


# ---- protocol pieces (pure) ------------------------------------------------------------------------

def test_vggish_front_end_matches_torchvggish(clips: dict[str, Path]) -> None:
    import soundfile as sf
    import torchvggish
    from torchvggish import mel_features

    ref_mel = mel_features.spectrogram_to_mel_matrix(num_mel_bins=64, num_spectrogram_bins=257,
                                                     audio_sample_rate=16000, lower_edge_hertz=125,
                                                     upper_edge_hertz=7500)
    assert np.abs(ae.vggish_mel_matrix() - ref_mel).max() < 1e-12
    for name in ("mini_s01", "mini_m03", "lv0"):
        x = sf.read(clips[name], dtype="int16")[0] / 32768.0
        ours = ae.vggish_examples(x)
        theirs = torchvggish.waveform_to_examples(x, 16000, return_tensor=False)
        assert ours.shape == theirs.shape and ours.shape[0] == int((len(x) - 400) // 160 + 1) // 96
        assert np.abs(ours - theirs).max() < 1e-6 * np.abs(theirs).max()
    assert ae.vggish_examples(np.zeros(15599)).shape == (0, 96, 64)
    assert ae.vggish_examples(np.zeros(15600)).shape == (1, 96, 64)


def test_audio_preparation_follows_av_benchmark() -> None:
    """AudioDataset.read_from_file: mean of the whole clip removed, then the first int(sr * length) samples."""
    x = np.concatenate([np.full(10, 1.0), np.full(30, 3.0)]).astype(np.float32)
    out = ae.prepare_waveform(x, sr=4, audio_length=2.5)
    assert out.dtype == np.float32 and out.size == 10
    np.testing.assert_allclose(out, np.full(10, 1.0 - 2.5))
    assert ae.pad_or_cut(np.ones(5), 8).tolist() == [1, 1, 1, 1, 1, 0, 0, 0]
    assert ae.pad_or_cut(np.arange(10), 4).tolist() == [0, 1, 2, 3]


# ---- loader ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("build", [ae._build_vggish, ae._build_cnn14])
def test_check_state_dict_names_offending_keys(build) -> None:  # noqa: ANN001
    import torch

    with torch.device("meta"):
        model = build()
    good = dict(model.state_dict())
    check_state_dict(model, good, "x")
    keys = list(good)
    prefixed = {f"module.{k}": v for k, v in good.items()}
    with pytest.raises(CheckpointKeyError) as e:
        check_state_dict(model, prefixed, "net")
    msg = str(e.value)
    assert f"{len(keys)} missing key(s): " in msg and f"{len(keys)} unexpected key(s): " in msg
    assert f"module.{sorted(keys)[0]}" in msg and "more)" in msg
    missing = {k: v for k, v in good.items() if k != keys[3]}
    with pytest.raises(CheckpointKeyError, match=rf"1 missing key\(s\): {keys[3]}$"):
        check_state_dict(model, missing, "net")
    shaped = {**good, keys[0]: torch.empty(3, 3, device="meta")}
    with pytest.raises(CheckpointKeyError, match=rf"1 shape mismatch\(es\): {keys[0]} \(model \[") as e:
        check_state_dict(model, shaped, "net")
    assert e.value.mismatched[0][2] == (3, 3)
    # a plain key -> shape mapping works as the model side too
    check_state_dict({k: tuple(v.shape) for k, v in good.items()}, good, "x")


def test_loader_refuses_a_bad_file(tmp_path: Path) -> None:
    """A wrong prefix or wrong shapes in the file: one CheckpointKeyError naming keys (never a partial load)."""
    import torch

    from iap_bench.metrics._ckpt import expected_shapes

    with torch.device("meta"):
        keys = list(expected_shapes(ae._build_vggish()))
    torch.save({f"module.{k}": torch.zeros(1) for k in keys}, tmp_path / "prefix.pth")
    with pytest.raises(CheckpointKeyError, match=r"18 missing key\(s\): embeddings.0.bias") as e:
        ae.make_embedder("vggish", tmp_path / "prefix.pth")
    assert "18 unexpected key(s): module.embeddings.0.bias" in str(e.value) and "(+13 more)" in str(e.value)
    torch.save({k: torch.zeros(1) for k in keys}, tmp_path / "shapes.pth")
    with pytest.raises(CheckpointKeyError, match=r"18 shape mismatch\(es\): embeddings.0.bias \(model \[4096\]"):
        ae.make_embedder("vggish", tmp_path / "shapes.pth")


def test_release_pickle_with_numpy_data_loads_without_full_unpickling(tmp_path: Path) -> None:
    """PANNs release files keep numpy arrays beside the weights (autrainer/autrainer#66): they load with
    ``weights_only=True`` plus numpy's reconstruction globals, never through a full pickle."""
    from unittest import mock

    import torch

    torch.save({"model": {"w": torch.ones(2)}, "sampler": {"indexes": np.arange(5), "p": np.float32(0.5)},
                "iteration": 3}, tmp_path / "c.pth")
    with mock.patch("torch.load", wraps=torch.load) as load:
        obj = ae.torch_load(tmp_path / "c.pth")
    assert [c.kwargs["weights_only"] for c in load.call_args_list] == [True, True]
    assert obj["sampler"]["indexes"].tolist() == [0, 1, 2, 3, 4] and ae._state_dict(obj, tmp_path)["w"].sum() == 2


def test_missing_checkpoint_names_file_places_and_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from iap_bench.metrics.fd import PannFD, PasstFD, VggishFD

    empty = tmp_path / "weights"
    empty.mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("IAP_BENCH_WEIGHTS_ROOT", str(empty))
    for cls, fname, source in ((VggishFD, "vggish-10086976.pth", "harritaylor/torchvggish"),
                               (PannFD, "Cnn14_16k_mAP=0.438.pth", "zenodo.org/record/3987831"),
                               (PasstFD, "passt-s-f128-p16-s10-ap.476-swa.pt", "kkoutini/PaSST")):
        with pytest.raises(MissingCheckpointError) as e:
            cls().load()
        msg = str(e.value)
        assert fname in msg and str(empty / "fd" / fname) in msg and source in msg
        assert str(tmp_path / "home") in msg and "params.checkpoint" in msg
        with pytest.raises(MissingCheckpointError):
            cls().checkpoint_id()


# ---- PARITY ----------------------------------------------------------------------------------------

def test_fd_vgg_parity_with_torchvggish(root: Path, clips: dict[str, Path], vggish_metric,  # noqa: ANN001
                                        vggish_package) -> None:
    """score() + aggregate() (batched, from SampleMedia) vs torchvggish on the wav files, one by one."""
    gens = [clips[f"lv{i}"] for i in range(5)]
    gts = [clips[f"mini_s0{i + 1}"] for i in range(5)]
    items = [_item(f"i{i}", gt) for i, gt in enumerate(gts)]
    samples = [EvalSample(it, SampleMedia(g)) for it, g in zip(items, gens)]
    t0 = time.perf_counter()
    values = vggish_metric.score(samples)
    t_h = time.perf_counter() - t0
    assert all(v.failure is None and v.value is None for v in values)
    t0 = time.perf_counter()
    pkg_gen = T.package_embeddings("vggish", vggish_package, gens)
    pkg_ref = T.package_embeddings("vggish", vggish_package, gts)
    t_p = time.perf_counter() - t0
    worst = 0.0
    for v, pg, pr in zip(values, pkg_gen, pkg_ref):
        hg, hr = decode_embeddings(v.extras["emb"]), decode_embeddings(v.extras["ref"])
        assert hg.shape == pg.shape and hr.shape == pr.shape and hg.shape[1] == 128 and len(hg) >= 3
        worst = max(worst, _rel(hg, pg), _rel(hr, pr))
    fd_h, extras = vggish_metric.aggregate(values)
    fd_p = frechet_distance(np.concatenate(pkg_gen), np.concatenate(pkg_ref))
    print(f"VGGish: max rel diff {worst:.2e}; FD harness {fd_h:.6f} package {fd_p:.6f} "
          f"[{extras['ci_low']:.4f}, {extras['ci_high']:.4f}]; 10 clips harness {t_h:.2f} s, package {t_p:.2f} s")
    assert worst < TOL
    assert fd_h == pytest.approx(fd_p, rel=TOL) and fd_h > 0
    assert extras["n_clips"] == 5 and extras["dim"] == 128
    assert extras["n_gen_vectors"] == sum(len(p) for p in pkg_gen)
    fd_p2 = frechet_distance(np.concatenate(pkg_gen[:2]), np.concatenate(pkg_ref[:2]))
    assert T.package_scores(root, gens[:2], items[:2]) == [pytest.approx(fd_p2, rel=1e-9)]


def _emb(values: list, key: str) -> list[np.ndarray]:
    return [decode_embeddings(v.extras[key]) for v in values]


def test_fd_pann_parity_with_panns_inference(clips: dict[str, Path], pann_metric, cnn14_package) -> None:  # noqa: ANN001
    """PannFD.score (SampleMedia at 16 kHz, clips of different lengths) vs AudioTagging.inference per file."""
    gens, gt = [clips["lv1"], clips["mini_m02"]], clips["mini_s02"]
    samples = [EvalSample(_item(f"p{i}", gt), SampleMedia(g)) for i, g in enumerate(gens)]
    values = _timed("harness fd_pann score (3 clips)", pann_metric.score, samples)
    assert all(v.failure is None for v in values)
    h_gen, h_ref = _emb(values, "emb"), _emb(values, "ref")
    p_gen = _timed("package Cnn14 embed 3 clips", T.package_embeddings, "cnn14", cnn14_package, gens)
    p_ref = T.package_embeddings("cnn14", cnn14_package, [gt])
    worst = max(_rel(a, b) for a, b in zip(h_gen + h_ref[:1], p_gen + p_ref))
    fd_h = frechet_distance_fast(np.concatenate(h_gen), np.concatenate([h_gen[1], h_ref[0]]))
    fd_p = frechet_distance_fast(np.concatenate(p_gen), np.concatenate([p_gen[1], p_ref[0]]))
    print(f"Cnn14: max rel diff {worst:.2e}; FD(svd) harness {fd_h:.6f} package {fd_p:.6f}")
    assert all(a.shape == (1, 2048) for a in h_gen + h_ref) and worst < TOL
    assert fd_h == pytest.approx(fd_p, rel=TOL) and fd_h > 0


@pytest.mark.slow
def test_fd_passt_parity_with_hear21passt(clips: dict[str, Path], passt_metric, passt_package) -> None:  # noqa: ANN001
    """PasstFD.score (SampleMedia and ground truth at 32 kHz, one batch) vs get_basic_model file by file.
    Two clips only: a PaSST forward is a 1190-token ViT-B, seconds per clip on CPU."""
    gen, gt = clips["lv2"], clips["mini_s03"]
    values = _timed("harness fd_passt score (2 clips, one batch)", passt_metric.score,
                    [EvalSample(_item("q", gt), SampleMedia(gen))])
    assert values[0].failure is None
    h = _emb(values, "emb") + _emb(values, "ref")
    p = _timed("package PaSST embed 2 clips", T.package_embeddings, "passt", passt_package, [gen, gt])
    worst = max(_rel(a, b) for a, b in zip(h, p))
    fd_h = frechet_distance_fast(np.concatenate(h), np.concatenate([h[1], h[1]]))
    fd_p = frechet_distance_fast(np.concatenate(p), np.concatenate([p[1], p[1]]))
    print(f"PaSST: max rel diff {worst:.2e}; FD(svd) harness {fd_h:.6f} package {fd_p:.6f}")
    assert all(a.shape == (1, 768) for a in h) and worst < TOL
    assert fd_h == pytest.approx(fd_p, rel=TOL) and fd_h > 0


# ---- metric behaviour and the §5 control -----------------------------------------------------------

def test_failures_and_identity(root: Path, clips: dict[str, Path], vggish_metric, tmp_path: Path) -> None:  # noqa: ANN001
    from iap_bench.hashing import tree_sha256
    from iap_bench.metrics.base import build_metric
    from iap_bench.metrics.policy import apply_metric_policy

    no_gt = _item("n", None)
    with_gt = _item("g", clips["mini_s01"])
    mute = write_sample(tmp_path / "mute.mp4", None, None, seconds=2.0)
    silent = write_sample(tmp_path / "silent.mp4", None, np.zeros(32000, np.float32))
    short = tmp_path / "short.wav"
    import soundfile as sf

    sf.write(short, np.random.default_rng(0).normal(size=8000).astype(np.float32) * 0.1, 16000)
    assert vggish_metric.item_failure(no_gt) == "no_ground_truth" and vggish_metric.item_failure(with_gt) is None
    out = vggish_metric.score([EvalSample(no_gt, SampleMedia(clips["lv0"])), EvalSample(with_gt, SampleMedia(mute)),
                               EvalSample(with_gt, SampleMedia(silent)), EvalSample(with_gt, SampleMedia(short)),
                               EvalSample(_item("b", tmp_path / "nope.wav"), SampleMedia(clips["lv0"]))])
    assert [v.failure for v in out] == ["no_ground_truth", "no_audio", None, "too_short", "bad_reference"]
    assert all(apply_metric_policy(vggish_metric, v).value is None for v in out)  # excluded, never a number
    # a silent track counts against the model: it is embedded (as digital silence), not excluded
    assert "emb" in out[2].extras and decode_embeddings(out[2].extras["emb"]).shape[0] == 2
    m = build_metric("fd/reference", checkpoint=_ckpt(root, "vggish"))
    assert m.checkpoint_id() == tree_sha256(root / T.FILES["vggish"])
    assert "checkpoint" not in m.params() and m.params()["audio_length"] == 5.0


def _noise(kind: str, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    white = rng.normal(size=n)
    if kind == "white":
        x = white
    else:  # pink: 1/f power, shaped in the frequency domain
        spec = np.fft.rfft(white)
        f = np.arange(spec.size)
        spec[1:] /= np.sqrt(f[1:])
        spec[0] = 0
        x = np.fft.irfft(spec, n)
    return (0.1 * x / np.abs(x).max()).astype(np.float32)


def test_control_halves_vs_noise(clips: dict[str, Path], vggish_metric, tmp_path: Path) -> None:  # noqa: ANN001
    """METRICS.md §5 with random VGGish weights, 7 clips a side: FD(set, itself) = 0 up to sqrtm rounding
    (the exact singular-value form gives 0); FD(half, other half) < FD(noise, half) for white and pink noise,
    with disjoint intervals."""
    import soundfile as sf

    names = sorted(clips)  # 14 real clips: 9 iap-mini ground truth, 5 LibriVox
    half_a, half_b = [clips[n] for n in names[0::2]], [clips[n] for n in names[1::2]]

    def fd(gen: list[Path]) -> tuple[float, dict, list]:
        samples = [EvalSample(_item(f"c{i}", r), SampleMedia(g)) for i, (g, r) in enumerate(zip(gen, half_b))]
        values = vggish_metric.score(samples)
        return (*vggish_metric.aggregate(values), values)

    same, same_x, values = fd(half_b)
    halves, halves_x, _ = fd(half_a)
    noise = {}
    for kind in ("white", "pink"):
        paths = [tmp_path / f"{kind}{i}.wav" for i in range(len(half_b))]
        for i, p in enumerate(paths):
            sf.write(p, _noise(kind, 5 * 16000, i), 16000)
        noise[kind] = fd(paths)[:2]
    print(f"control: FD(gt, gt) {same:.3g} (svd {same_x['fd_svd']:.3g}); FD(half, half) {halves:.4f} "
          f"[{halves_x['ci_low']:.3f}, {halves_x['ci_high']:.3f}]; FD(white, half) {noise['white'][0]:.4f} "
          f"[{noise['white'][1]['ci_low']:.3f}, ...]; FD(pink, half) {noise['pink'][0]:.4f} "
          f"[{noise['pink'][1]['ci_low']:.3f}, ...]")
    refs = np.concatenate([decode_embeddings(v.extras["ref"]) for v in values])
    scale = float(np.trace(np.cov(refs, rowvar=False)))  # Tr Σ of the set
    assert abs(same) < 1e-6 * scale and abs(same_x["fd_svd"]) < 1e-9 * scale
    assert same_x["ci_high"] < 1e-6 * scale
    for kind in ("white", "pink"):
        assert halves < noise[kind][0]
        assert halves_x["ci_high"] < noise[kind][1]["ci_low"]
