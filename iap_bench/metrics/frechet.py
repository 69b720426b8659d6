"""Fréchet distance between two embedding sets, its item bootstrap, and a lossless JSON form of embeddings.

Reference formula (hkchengrex/av-benchmark ``av_bench/metrics/fad.py``, pytorch-fid style):
``FD = ‖μ₁−μ₂‖² + Tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^½)`` with ``Σ = np.cov(X, rowvar=False)``, the matrix square root
from ``scipy.linalg.sqrtm``; if it is not finite, ``eps = 1e-6`` is added to both diagonals and it is taken
again; a negligible imaginary part is dropped. The point estimate always uses this formula.

Bootstrap resamples use an exact faster form. With ``Σₖ = AₖᵀAₖ`` (``Aₖ`` the centred rows over
``√(nₖ−1)``), the non-zero eigenvalues of ``Σ₁Σ₂ = A₁ᵀ(A₁A₂ᵀA₂)`` are those of ``(A₁A₂ᵀ)(A₁A₂ᵀ)ᵀ``, so
``Tr(Σ₁Σ₂)^½ = ‖A₁A₂ᵀ‖_*`` (the sum of singular values): an n₁×n₂ problem from Gram matrices when there are
fewer vectors than dimensions (PaSST 768-d, PANN 2048-d), or a d×d one from per-item moments otherwise
(VGGish). Repeating an item ``w`` times is the same as weighting its rows by ``w`` (scaling them by √w in
``A``), so a resample is just a vector of item multiplicities.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import numpy as np

from iap_bench.errors import IAPBenchError

EPS = 1e-6  # av-benchmark / pytorch-fid diagonal offset for a singular product
MOMENT_LIMIT = 125_000_000  # floats (1 GB) of per-item second moments the bootstrap may hold


class FrechetError(IAPBenchError):
    """The covariance product's square root has a large imaginary part (pytorch-fid raises here too)."""


# ---- JSON-safe embeddings ---------------------------------------------------------------------------

def encode_embeddings(a: np.ndarray) -> dict[str, Any]:
    """[n, d] embeddings -> {"shape", "dtype", "b64"} (little-endian float32, exact round trip)."""
    x = np.ascontiguousarray(np.asarray(a, dtype="<f4"))
    if x.ndim != 2:
        raise ValueError(f"embeddings must be [n, d], got shape {x.shape}")
    return {"shape": [int(s) for s in x.shape], "dtype": "float32", "b64": base64.b64encode(x.tobytes()).decode()}


def decode_embeddings(d: dict[str, Any]) -> np.ndarray:
    """Inverse of ``encode_embeddings``: a writable [n, d] float32 array."""
    if d.get("dtype") != "float32":
        raise ValueError(f"unsupported embedding dtype {d.get('dtype')!r}")
    raw = base64.b64decode(d["b64"])
    return np.frombuffer(raw, dtype="<f4").reshape([int(s) for s in d["shape"]]).astype(np.float32)


# ---- reference formula ------------------------------------------------------------------------------

def embedding_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and ``np.cov(x, rowvar=False)`` (unbiased, n−1) of [n, d] embeddings, in float64."""
    x = np.asarray(x, dtype=np.float64)
    return x.mean(axis=0), np.atleast_2d(np.cov(x, rowvar=False))


def frechet_from_stats(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                       eps: float = EPS) -> float:
    """The reference Fréchet distance of two Gaussians (sqrtm; eps retry if not finite; real part)."""
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"statistics differ in shape: {mu1.shape} vs {mu2.shape}, {sigma1.shape} vs {sigma2.shape}")
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise FrechetError(f"imaginary component {np.max(np.abs(covmean.imag)):.3g} in sqrtm(Σ1Σ2)")
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def frechet_distance(x1: np.ndarray, x2: np.ndarray, eps: float = EPS) -> float:
    """Reference FD between embedding sets [n1, d] and [n2, d] (av-benchmark ``compute_fd``)."""
    return frechet_from_stats(*embedding_stats(x1), *embedding_stats(x2), eps=eps)


# ---- exact fast form --------------------------------------------------------------------------------

def trace_sqrt_product(a1: np.ndarray, a2: np.ndarray) -> float:
    """Tr((Σ₁Σ₂)^½) for ``Σₖ = aₖᵀaₖ``: the nuclear norm of ``a₁a₂ᵀ`` (exact for any factors)."""
    return float(np.linalg.svd(np.asarray(a1, np.float64) @ np.asarray(a2, np.float64).T, compute_uv=False).sum())


def frechet_distance_fast(x1: np.ndarray, x2: np.ndarray) -> float:
    """FD without a d×d matrix square root (no eps): ‖μ₁−μ₂‖² + ‖A₁‖²_F + ‖A₂‖²_F − 2‖A₁A₂ᵀ‖_*."""
    x1, x2 = np.asarray(x1, np.float64), np.asarray(x2, np.float64)
    mu1, mu2 = x1.mean(axis=0), x2.mean(axis=0)
    a1 = (x1 - mu1) / np.sqrt(x1.shape[0] - 1)
    a2 = (x2 - mu2) / np.sqrt(x2.shape[0] - 1)
    diff = mu1 - mu2
    return float(diff @ diff + (a1 * a1).sum() + (a2 * a2).sum() - 2 * trace_sqrt_product(a1, a2))


class _GramResampler:
    """FD of item-weighted sets from Gram matrices (n×n): for fewer vectors than dimensions."""

    def __init__(self, x1: np.ndarray, x2: np.ndarray, own1: np.ndarray, own2: np.ndarray):
        self.own1, self.own2 = own1, own2
        self.g11, self.g22, self.g12 = x1 @ x1.T, x2 @ x2.T, x1 @ x2.T

    def fd(self, w: np.ndarray) -> float:
        w1, w2 = w[self.own1].astype(np.float64), w[self.own2].astype(np.float64)
        k1, k2 = w1 > 0, w2 > 0  # rows of absent items change no singular value: drop them
        w1, w2 = w1[k1], w2[k2]
        g11, g22, g12 = self.g11[np.ix_(k1, k1)], self.g22[np.ix_(k2, k2)], self.g12[np.ix_(k1, k2)]
        n1, n2 = w1.sum(), w2.sum()
        m11, m22, m12 = w1 @ g11 @ w1 / n1 ** 2, w2 @ g22 @ w2 / n2 ** 2, w1 @ g12 @ w2 / (n1 * n2)
        tr1 = (w1 @ np.diagonal(g11) - n1 * m11) / (n1 - 1)
        tr2 = (w2 @ np.diagonal(g22) - n2 * m22) / (n2 - 1)
        c = g12 - (g12 @ w2 / n2)[:, None] - (w1 @ g12 / n1)[None, :] + m12  # (X1−1μ1ᵀ)(X2−1μ2ᵀ)ᵀ
        m = np.sqrt(w1)[:, None] * c * np.sqrt(w2)[None, :] / np.sqrt((n1 - 1) * (n2 - 1))
        tr_sqrt = np.linalg.svd(m, compute_uv=False).sum()
        return float(m11 + m22 - 2 * m12 + tr1 + tr2 - 2 * tr_sqrt)

    def fd_many(self, weights: np.ndarray) -> np.ndarray:
        return np.array([self.fd(w) for w in weights])


def _trace_sqrt_batch(s1: np.ndarray, s2: np.ndarray) -> np.ndarray:
    """Tr((Σ₁Σ₂)^½) for stacks [B, d, d] of PSD matrices: Σ₁ = LLᵀ, eigenvalues of LᵀΣ₂L (similar to Σ₁Σ₂)."""
    try:
        lower = np.linalg.cholesky(s1)
    except np.linalg.LinAlgError:  # a singular Σ₁ in the chunk: the symmetric square root instead
        lam, v = np.linalg.eigh(s1)
        lower = v * np.sqrt(np.clip(lam, 0, None))[:, None, :]
    inner = np.swapaxes(lower, 1, 2) @ s2 @ lower
    return np.sqrt(np.clip(np.linalg.eigvalsh(inner), 0, None)).sum(axis=1)


class _MomentResampler:
    """FD of item-weighted sets from per-item first and second moments (d×d): for many vectors."""

    CHUNK = 64  # resamples per batched LAPACK call

    def __init__(self, x1: np.ndarray, x2: np.ndarray, own1: np.ndarray, own2: np.ndarray, n_items: int):
        self.m1 = self._moments(x1, own1, n_items)
        self.m2 = self._moments(x2, own2, n_items)

    @staticmethod
    def _moments(x: np.ndarray, own: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per item: vector count [k], sum [k, d] and sum of outer products [k, d, d]."""
        counts = np.bincount(own, minlength=k).astype(np.float64)
        sums = np.zeros((k, x.shape[1]))
        np.add.at(sums, own, x)
        outer = np.stack([x[own == i].T @ x[own == i] for i in range(k)])
        return counts, sums, outer

    @staticmethod
    def _stats(m: tuple[np.ndarray, np.ndarray, np.ndarray], w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Means [B, d] and unbiased covariances [B, d, d] of B weightings [B, k]."""
        counts, sums, outer = m
        n = w @ counts
        mu = (w @ sums) / n[:, None]
        second = np.tensordot(w, outer, axes=1)
        sigma = (second - n[:, None, None] * mu[:, :, None] * mu[:, None, :]) / (n - 1)[:, None, None]
        return mu, sigma

    def fd_many(self, weights: np.ndarray) -> np.ndarray:
        out = []
        for start in range(0, len(weights), self.CHUNK):
            w = np.asarray(weights[start:start + self.CHUNK], dtype=np.float64)
            mu1, s1 = self._stats(self.m1, w)
            mu2, s2 = self._stats(self.m2, w)
            diff = mu1 - mu2
            tr = np.trace(s1, axis1=1, axis2=2) + np.trace(s2, axis1=1, axis2=2)
            out.append((diff * diff).sum(axis=1) + tr - 2 * _trace_sqrt_batch(s1, s2))
        return np.concatenate(out) if out else np.zeros(0)

    def fd(self, w: np.ndarray) -> float:
        return float(self.fd_many(np.asarray(w)[None])[0])


def _stack(items: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Rows of every item stacked [N, d] (float64) and the item index of each row [N]."""
    x = np.concatenate([np.asarray(a, np.float64) for a in items], axis=0)
    own = np.concatenate([np.full(len(a), i, dtype=np.int64) for i, a in enumerate(items)])
    return x, own


def item_resampler(gen: Sequence[np.ndarray], ref: Sequence[np.ndarray]) -> _GramResampler | _MomentResampler:
    """An object whose ``fd(w)`` is the FD with item i's gen and ref vectors repeated w[i] times (exact).

    Gram matrices (n×n) when there are no more vectors than dimensions, per-item moments (k×d×d) otherwise,
    unless those would exceed ``MOMENT_LIMIT`` floats (thousands of 2048-d clips: Gram again). Data are
    shifted by their pooled mean first (FD is translation invariant) to keep Gram sums accurate.
    """
    if len(gen) != len(ref):
        raise ValueError(f"{len(gen)} generated items but {len(ref)} reference items")
    x1, own1 = _stack(gen)
    x2, own2 = _stack(ref)
    shift = np.concatenate([x1, x2]).mean(axis=0)
    x1, x2 = x1 - shift, x2 - shift
    d = x1.shape[1]
    if min(len(x1), len(x2)) <= d or len(gen) * d * d > MOMENT_LIMIT:
        return _GramResampler(x1, x2, own1, own2)
    return _MomentResampler(x1, x2, own1, own2, len(gen))


def bootstrap_multiplicities(n_items: int, n_boot: int, seed: int) -> np.ndarray:
    """[n_boot, n_items] item counts of ``n_boot`` resamples with replacement (numpy PCG64, seeded)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n_items, size=(n_boot, n_items))
    return np.stack([np.bincount(row, minlength=n_items) for row in idx])


def bootstrap_fd(gen: Sequence[np.ndarray], ref: Sequence[np.ndarray], n_boot: int = 1000,
                 seed: int = 0) -> np.ndarray:
    """FD of ``n_boot`` item resamples (gen and ref of the same resampled items), exact fast form."""
    return item_resampler(gen, ref).fd_many(bootstrap_multiplicities(len(gen), n_boot, seed))


def shifted_percentile_interval(samples: np.ndarray, point: float, level: float = 0.95) -> tuple[float, float]:
    """Central ``level`` percentile interval of bootstrap FDs moved by their bias (mean − point), floored at 0.

    A resample holds only ~63 % distinct items, so its FD is inflated (FD is biased upward, more so for
    fewer distinct vectors): the raw percentiles lie wholly above the point estimate. Their spread measures
    the sampling variability; subtracting the bootstrap bias estimate re-centres them on the point estimate.
    """
    a = (1 - level) / 2
    lo, hi = np.quantile(samples, [a, 1 - a])
    bias = float(np.mean(samples)) - point
    return max(0.0, float(lo) - bias), max(0.0, float(hi) - bias)
