"""Eigenvalue spectra of weights and kernels, against random-matrix baselines.

Normalization used throughout (numpy in, numpy or float out):

- ``weight_esd(W)``: W is (h, d) with i.i.d. entries of variance ``sigma2`` at
  initialization. Its empirical spectral distribution (ESD) is the eigenvalues of
  the smaller Gram matrix divided by the larger dimension: WᵀW / h (d x d) when
  d <= h, W Wᵀ / d otherwise. At init this follows the Marchenko-Pastur (MP) law
  with ``ratio = min(h, d) / max(h, d)`` and ``sigma2``; the eigenvectors of WᵀW
  (right singular vectors of W) live in input space R^d, where a teacher
  direction β does.
- ``mp_edges`` / ``mp_density``: the MP law of XᵀX / n for X (n, d) with
  entries of variance sigma2 and ratio = d / n <= 1 (Marchenko & Pastur 1967).
- ``powerlaw_fit``: maximum-likelihood power-law tail p(λ) ∝ λ^-α above a cutoff
  xmin chosen by minimizing the Kolmogorov-Smirnov distance (Clauset, Shalizi &
  Newman 2009), through the maintained ``powerlaw`` package (continuous data).
  This is the heavy-tail exponent of Martin & Mahoney (2021, WeightWatcher).
- ``outliers`` / ``top_alignment``: eigenvalues beyond the MP edge and the
  overlap of the top eigenvector with a direction (Baik, Ben Arous & Péché 2005;
  Ba et al. 2022 for the spike after one large gradient step).
- ``kernel_distance``: 1 - <K0, K1>_F / (‖K0‖_F ‖K1‖_F), scale-invariant
  (Fort et al. 2020; Wang et al. 2022, arXiv 2211.06506).
- ``twolayer_ck`` / ``twolayer_ntk``: the closed-form conjugate kernel and NTK of
  f(x) = aᵀσ(Wx/√d)/√h (``models.TwoLayer``).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats


# ------------------------------------------------------------------ Marchenko-Pastur
def _check_ratio(ratio: float, sigma2: float) -> None:
    if not 0 < ratio <= 1:
        raise ValueError(f"MP ratio must be in (0, 1] (use min/max of the two dimensions), got {ratio}")
    if sigma2 <= 0:
        raise ValueError(f"sigma2 must be > 0, got {sigma2}")


def mp_edges(ratio: float, sigma2: float = 1.0) -> tuple[float, float]:
    """(lo, hi) = sigma2 (1 ∓ √ratio)² : the support of the MP law."""
    _check_ratio(ratio, sigma2)
    r = math.sqrt(ratio)
    return sigma2 * (1 - r) ** 2, sigma2 * (1 + r) ** 2


def mp_density(x, ratio: float, sigma2: float = 1.0) -> np.ndarray:
    """MP density of the eigenvalues of XᵀX / n, X (n, d), ratio = d / n <= 1, at points ``x``."""
    lo, hi = mp_edges(ratio, sigma2)
    x = np.asarray(x, dtype=float)
    inside = (x > lo) & (x < hi)
    out = np.zeros_like(x)
    xi = x[inside]
    out[inside] = np.sqrt((hi - xi) * (xi - lo)) / (2 * math.pi * sigma2 * ratio * xi)
    return out


def mp_cdf(x, ratio: float, sigma2: float = 1.0, grid: int = 4001) -> np.ndarray:
    """MP cumulative distribution at ``x`` (numerical: scipy has no MP law)."""
    lo, hi = mp_edges(ratio, sigma2)
    t = np.linspace(lo, hi, grid)
    # substitute t = lo + (hi-lo) sin²θ would be exact; trapezoid on a fine grid is enough here
    cdf = np.concatenate([[0.0], np.cumsum(np.diff(t) * 0.5 * (mp_density(t[1:], ratio, sigma2)
                                                               + mp_density(t[:-1], ratio, sigma2)))])
    cdf /= cdf[-1]
    return np.interp(np.asarray(x, dtype=float), t, cdf, left=0.0, right=1.0)


def ks_to_mp(eigs, ratio: float, sigma2: float = 1.0) -> float:
    """Kolmogorov-Smirnov distance between an ESD and the MP law."""
    return float(stats.kstest(np.asarray(eigs, float), lambda x: mp_cdf(x, ratio, sigma2)).statistic)


# ------------------------------------------------------------------ weight spectra
def weight_esd(W) -> tuple[np.ndarray, float]:
    """(eigenvalues ascending, MP ratio) of the Gram of W (h, d), normalized as in the module docstring.

    d <= h: eig(WᵀW / h), (d,) values; d > h: eig(W Wᵀ / d), (h,) values.
    """
    W = np.asarray(W, dtype=np.float64)
    h, d = W.shape
    G = W.T @ W / h if d <= h else W @ W.T / d              # (min, min)
    return np.clip(np.linalg.eigvalsh(G), 0, None), min(h, d) / max(h, d)


def top_eigvec(W) -> np.ndarray:
    """The top right singular vector of W (h, d): the top eigenvector of WᵀW, (d,), unit norm."""
    _, _, vt = np.linalg.svd(np.asarray(W, dtype=np.float64), full_matrices=False)
    return vt[0]


def top_alignment(W, direction) -> float:
    """|<v1, β>| / ‖β‖ for the top right singular vector v1 of W (h, d) and β (d,)."""
    beta = np.asarray(direction, dtype=np.float64)
    return float(abs(top_eigvec(W) @ beta) / np.linalg.norm(beta))


def outliers(eigs, edge: float, margin: float = 0.0) -> np.ndarray:
    """Eigenvalues strictly above ``edge * (1 + margin)``, descending."""
    eigs = np.asarray(eigs, dtype=float)
    return np.sort(eigs[eigs > edge * (1 + margin)])[::-1]


def bulk_ks(eigs0, eigs1, edge: float | None = None) -> float:
    """Two-sample KS distance between two ESDs, outliers above ``edge`` removed from both."""
    a, b = np.asarray(eigs0, float), np.asarray(eigs1, float)
    if edge is not None:
        a, b = a[a <= edge], b[b <= edge]
    return float(stats.ks_2samp(a, b, method="asymp").statistic)


def norms(W, W0, w0_norms: dict | None = None) -> dict:
    """Operator and Frobenius norms of ΔW = W - W0, and of W0 for scale.

    ``w0_norms`` ({"W0_op", "W0_fro"}) skips recomputing W0's norms for every snapshot of one run.
    """
    W, W0 = np.asarray(W, np.float64), np.asarray(W0, np.float64)
    dW = W - W0
    if w0_norms is None:
        w0_norms = {"W0_op": float(np.linalg.norm(W0, 2)), "W0_fro": float(np.linalg.norm(W0))}
    return {"dW_op": float(np.linalg.norm(dW, 2)), "dW_fro": float(np.linalg.norm(dW)), **w0_norms}


# ------------------------------------------------------------------ heavy tails
@dataclass(frozen=True)
class PowerLawFit:
    alpha: float          # tail exponent of the density, p(λ) ∝ λ^-α for λ >= xmin
    xmin: float           # KS-chosen cutoff
    ks: float             # KS distance of the fitted tail
    n_tail: int           # eigenvalues at or above xmin


def powerlaw_fit(eigenvalues, xmax: float | None = None) -> PowerLawFit:
    """Continuous MLE power law with xmin chosen by KS (``powerlaw.Fit(discrete=False)``).

    Non-positive values (null eigenvalues) are dropped. xmin is searched among the
    observed values between the median and the 10th largest (the tail is the upper
    half at most and has at least 10 points; this also halves the search cost).
    The package's default alpha range is [0, 3], which clips the steep tails of an
    MP bulk; we widen it to [1, 50].
    """
    import powerlaw

    x = np.asarray(eigenvalues, dtype=float)
    x = x[x > 1e-12 * max(1.0, float(np.max(np.abs(x))))]
    if len(x) < 10:
        raise ValueError(f"powerlaw_fit needs at least 10 positive eigenvalues, got {len(x)}")
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # powerlaw warns on every candidate xmin
        xs = np.sort(x)
        fit = powerlaw.Fit(x, discrete=False, xmin=(float(np.median(xs)), float(xs[-10])), xmax=xmax,
                           parameter_ranges={"alpha": [1.0, 50.0]}, verbose=False)
    return PowerLawFit(float(fit.power_law.alpha), float(fit.power_law.xmin), float(fit.power_law.D),
                       int(np.sum(x >= fit.power_law.xmin)))


# ------------------------------------------------------------------ kernels
def kernel_distance(K0, K1) -> float:
    """1 - <K0, K1>_F / (‖K0‖_F ‖K1‖_F): 0 for proportional kernels, invariant to scale."""
    K0, K1 = np.asarray(K0, np.float64), np.asarray(K1, np.float64)
    if K0.shape != K1.shape:
        raise ValueError(f"kernels must have the same shape, got {K0.shape} and {K1.shape}")
    return float(1 - np.sum(K0 * K1) / (np.linalg.norm(K0) * np.linalg.norm(K1)))


def kernel_eigs(K) -> np.ndarray:
    """Eigenvalues (ascending) of a symmetric kernel matrix (N, N)."""
    K = np.asarray(K, np.float64)
    return np.linalg.eigvalsh((K + K.T) / 2)


_ACTS = {
    "tanh": (torch.tanh, lambda z: 1 - torch.tanh(z) ** 2),
    "relu": (torch.relu, lambda z: (z > 0).to(z.dtype)),
}


def twolayer_ck(W, x, activation: str = "tanh") -> np.ndarray:
    """Conjugate kernel F Fᵀ / h with F = σ(XWᵀ/√d) (N, h); W (h, d), x (N, d) -> (N, N)."""
    W, x = torch.as_tensor(W, dtype=torch.float64), torch.as_tensor(x, dtype=torch.float64)
    F = _ACTS[activation][0](x @ W.T / math.sqrt(W.shape[1]))          # (N, h)
    return (F @ F.T / W.shape[0]).numpy()


def twolayer_ntk(W, a, x, activation: str = "tanh", train_a: bool = True) -> np.ndarray:
    """Closed-form NTK of f(x) = aᵀσ(Wx/√d)/√h on x (N, d) -> (N, N).

    ∂f/∂a = σ(Wx/√d)/√h and ∂f/∂W_k = a_k σ'(w_kᵀx/√d) x / √(dh), so
    K = F Fᵀ / h  +  (X Xᵀ / d) ∘ (D diag(a²) Dᵀ / h),  D = σ'(XWᵀ/√d) (N, h).
    The first term is the CK (present when a is trained).
    """
    W = torch.as_tensor(W, dtype=torch.float64)
    a = torch.as_tensor(a, dtype=torch.float64)
    x = torch.as_tensor(x, dtype=torch.float64)
    h, d = W.shape
    act, dact = _ACTS[activation]
    Z = x @ W.T / math.sqrt(d)                                         # (N, h) pre-activations
    D = dact(Z) * a                                                    # (N, h)
    K = (x @ x.T / d) * (D @ D.T / h)                                  # (N, N) first-layer part
    if train_a:
        F = act(Z)
        K = K + F @ F.T / h
    return K.numpy()
