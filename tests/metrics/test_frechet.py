"""Fréchet distance math (pure): the reference formula against a line-by-line transcription of av-benchmark's
``av_bench/metrics/fad.py`` (hkchengrex/av-benchmark @050a5cd), the exact fast form used for bootstrap
resamples, the item bootstrap interval, the embedding encoding and the set-level aggregate."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from iap_bench.metrics import frechet as F
from iap_bench.metrics.base import MetricValue


def av_benchmark_compute_fd(embds_background: np.ndarray, embds_eval: np.ndarray, eps: float = 1e-6) -> float:
    """av-benchmark's ``compute_fd`` transcribed (stats, sqrtm with ``disp=False``, eps retry, real part)."""
    from scipy import linalg

    def stats(e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.mean(e, axis=0), np.cov(e, rowvar=False)

    mu1, sigma1 = stats(embds_background)
    mu2, sigma2 = stats(embds_eval)
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    diff = mu1 - mu2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # scipy >= 1.16 deprecates disp
        covmean, _ = linalg.sqrtm(sigma1.dot(sigma2), disp=False)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            return -1.0  # compute_fd prints the error and returns -1
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def _sets(n1: int, n2: int, d: int, seed: int = 0, shift: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d)) / np.sqrt(d)
    return rng.normal(size=(n1, d)) @ mix, (rng.normal(size=(n2, d)) * 1.2 + shift) @ mix


def _items(n_items: int, per: int, d: int, seed: int = 0, shift: float = 0.3) -> tuple[list, list]:
    rng = np.random.default_rng(seed)
    gen = [rng.normal(size=(per, d)) for _ in range(n_items)]
    ref = [rng.normal(size=(per, d)) * 1.1 + shift for _ in range(n_items)]
    return gen, ref


def test_fd_of_a_set_with_itself_is_zero() -> None:
    x, _ = _sets(400, 10, 32)
    assert abs(F.frechet_distance(x, x)) < 1e-6
    assert abs(F.frechet_distance_fast(x, x)) < 1e-6


@pytest.mark.parametrize("n1,n2,d", [(300, 250, 32), (500, 120, 128), (20, 25, 64)])  # last: rank deficient
def test_reference_matches_av_benchmark_transcription(n1: int, n2: int, d: int) -> None:
    x1, x2 = _sets(n1, n2, d, seed=n1)
    ours, theirs = F.frechet_distance(x1, x2), av_benchmark_compute_fd(x1, x2)
    assert ours == pytest.approx(theirs, rel=1e-12, abs=1e-9)
    assert ours > 0


def test_singular_product_takes_the_eps_offset(monkeypatch: pytest.MonkeyPatch) -> None:
    """When sqrtm(Σ1Σ2) is not finite, both diagonals get +1e-6 and the root is taken again (as av-benchmark)."""
    from scipy import linalg

    x1, x2 = _sets(12, 15, 40, seed=3)  # rank-deficient covariances: Σ1Σ2 is singular
    real = linalg.sqrtm
    calls = []

    def flaky(a: np.ndarray, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls.append(a.copy())
        out = real(a)
        if len(calls) == 1:
            out = np.full_like(out, np.nan)
        return out

    monkeypatch.setattr(linalg, "sqrtm", flaky)
    got = F.frechet_distance(x1, x2)
    assert len(calls) == 2
    mu1, s1 = F.embedding_stats(x1)
    mu2, s2 = F.embedding_stats(x2)
    off = np.eye(40) * 1e-6
    np.testing.assert_allclose(calls[1], (s1 + off) @ (s2 + off))
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(real((s1 + off) @ (s2 + off)).real)
    assert got == pytest.approx(expected, rel=1e-12)
    monkeypatch.undo()
    # unpatched: a finite (possibly complex-rounded) root, close to the exact value from singular values
    assert F.frechet_distance(x1, x2) == pytest.approx(F.frechet_distance_fast(x1, x2), rel=1e-6)


def test_large_imaginary_part_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from scipy import linalg

    monkeypatch.setattr(linalg, "sqrtm", lambda a, *args, **kw: np.eye(a.shape[0]) * (1 + 1j))
    x1, x2 = _sets(30, 30, 4)
    with pytest.raises(F.FrechetError, match="imaginary"):
        F.frechet_distance(x1, x2)


def test_fast_form_equals_reference_on_full_rank() -> None:
    """Tr((Σ1Σ2)^½) = ‖A1A2ᵀ‖_* (A = centred rows / √(n−1)): same FD as the sqrtm formula."""
    x1, x2 = _sets(300, 260, 24, seed=7)
    ref = F.frechet_distance(x1, x2)
    assert F.frechet_distance_fast(x1, x2) == pytest.approx(ref, rel=1e-10)
    _, s1 = F.embedding_stats(x1)
    _, s2 = F.embedding_stats(x2)
    a1 = (x1 - x1.mean(0)) / np.sqrt(len(x1) - 1)
    a2 = (x2 - x2.mean(0)) / np.sqrt(len(x2) - 1)
    from scipy import linalg

    assert F.trace_sqrt_product(a1, a2) == pytest.approx(np.trace(linalg.sqrtm(s1 @ s2)).real, rel=1e-10)


@pytest.mark.parametrize("per,d,kind", [(4, 16, "_MomentResampler"), (1, 64, "_GramResampler")])
def test_item_resamplers_are_exact(per: int, d: int, kind: str) -> None:
    """Weights w (item multiplicities) give the FD of the explicitly repeated rows; all-ones = reference."""
    gen, ref = _items(30, per, d, seed=d)
    res = F.item_resampler(gen, ref)
    assert type(res).__name__ == kind
    x1, x2 = np.concatenate(gen), np.concatenate(ref)
    ones = np.ones(30, dtype=np.int64)
    assert res.fd(ones) == pytest.approx(F.frechet_distance_fast(x1, x2), rel=1e-9)
    if kind == "_MomentResampler":  # full rank: equal to the sqrtm reference too
        assert res.fd(ones) == pytest.approx(F.frechet_distance(x1, x2), rel=1e-9)
    for w in F.bootstrap_multiplicities(30, 3, seed=5):
        r1 = np.concatenate([g for g, k in zip(gen, w) for _ in range(k)])
        r2 = np.concatenate([g for g, k in zip(ref, w) for _ in range(k)])
        assert res.fd(w) == pytest.approx(F.frechet_distance_fast(r1, r2), rel=1e-9)
    np.testing.assert_allclose(res.fd_many(F.bootstrap_multiplicities(30, 5, 1)),
                               [res.fd(w) for w in F.bootstrap_multiplicities(30, 5, 1)], rtol=1e-10)


@pytest.mark.parametrize("per,d", [(5, 24), (1, 96)])
def test_bootstrap_interval_contains_point_and_is_seeded(per: int, d: int) -> None:
    gen, ref = _items(40, per, d, seed=11)
    point = F.frechet_distance(np.concatenate(gen), np.concatenate(ref))
    b1 = F.bootstrap_fd(gen, ref, n_boot=200, seed=3)
    b2 = F.bootstrap_fd(gen, ref, n_boot=200, seed=3)
    b3 = F.bootstrap_fd(gen, ref, n_boot=200, seed=4)
    np.testing.assert_array_equal(b1, b2)
    assert not np.array_equal(b1, b3)
    assert np.mean(b1) > point  # resamples hold ~63 % distinct items: FD inflated (why the shift exists)
    lo, hi = F.shifted_percentile_interval(b1, point)
    assert 0 <= lo < point < hi
    assert hi - lo == pytest.approx(np.quantile(b1, 0.975) - np.quantile(b1, 0.025), rel=1e-9) or lo == 0


def test_bootstrap_of_identical_sets_is_zero() -> None:
    gen, _ = _items(20, 3, 8)
    b = F.bootstrap_fd(gen, [g.copy() for g in gen], n_boot=50, seed=0)
    assert np.abs(b).max() < 1e-8


def test_embedding_encoding_round_trip_is_exact() -> None:
    rng = np.random.default_rng(0)
    for a in (rng.normal(size=(5, 128)).astype(np.float32), np.zeros((0, 768), np.float32),
              np.array([[np.float32(1e-38), -0.0, 3.4e38]], np.float32)):
        enc = F.encode_embeddings(a)
        assert enc["shape"] == list(a.shape) and enc["dtype"] == "float32"
        back = F.decode_embeddings(enc)
        assert back.dtype == np.float32 and back.shape == a.shape
        assert back.tobytes() == a.tobytes()
    import json

    assert F.decode_embeddings(json.loads(json.dumps(F.encode_embeddings(a)))).tobytes() == a.tobytes()
    with pytest.raises(ValueError):
        F.encode_embeddings(np.zeros(3))


def _values(gen: list, ref: list) -> list[MetricValue]:
    return [MetricValue(None, None, {"emb": F.encode_embeddings(g), "ref": F.encode_embeddings(r)})
            for g, r in zip(gen, ref)]


def test_set_level_aggregate() -> None:
    from iap_bench.metrics.fd import PannFD, PasstFD, VggishFD

    gen, ref = _items(12, 4, 16, seed=2)
    gen = [g.astype(np.float32) for g in gen]
    ref = [r.astype(np.float32) for r in ref]
    values = _values(gen, ref) + [MetricValue.fail("no_audio"), MetricValue(None, None, {})]
    m = VggishFD(n_boot=200, seed=1)
    value, extras = m.aggregate(values)
    assert value == pytest.approx(F.frechet_distance(np.concatenate(gen), np.concatenate(ref)), rel=1e-12)
    assert {"ci_low", "ci_high", "n_boot", "n_clips", "n_gen_vectors", "n_ref_vectors", "dim"} <= set(extras)
    assert extras["n_clips"] == 12 and extras["n_gen_vectors"] == 48 and extras["n_ref_vectors"] == 48
    assert extras["dim"] == 16 and extras["n_boot"] == 200
    assert extras["ci_low"] < value < extras["ci_high"]
    assert extras["fd_svd"] == pytest.approx(value, rel=1e-9)
    assert m.aggregate(values) == (value, extras)  # seeded
    assert VggishFD(n_boot=200, seed=2).aggregate(values)[1]["ci_low"] != extras["ci_low"]
    none, why = m.aggregate(values[:1] + values[-2:])
    assert none is None and "fewer than 2" in why["reason"] and why["n_clips"] == 1
    for cls in (VggishFD, PasstFD, PannFD):
        assert cls.set_level and cls.worst is None and cls.direction == "lower"
    assert (VggishFD.name, VggishFD.backend) == ("fd", "vggish")
    assert (PasstFD.name, PasstFD.backend) == ("fd_passt", "passt-s-f128-ap476")
    assert (PannFD.name, PannFD.backend) == ("fd_pann", "cnn14-16k")


def test_moment_memory_limit_falls_back_to_gram(monkeypatch: pytest.MonkeyPatch) -> None:
    gen, ref = _items(30, 4, 16, seed=9)
    moments = F.item_resampler(gen, ref)
    monkeypatch.setattr(F, "MOMENT_LIMIT", 30 * 16 * 16 - 1)
    gram = F.item_resampler(gen, ref)
    assert type(moments).__name__ == "_MomentResampler" and type(gram).__name__ == "_GramResampler"
    w = F.bootstrap_multiplicities(30, 4, seed=2)
    np.testing.assert_allclose(gram.fd_many(w), moments.fd_many(w), rtol=1e-9)
