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
- ``tail_fit``: maximum-likelihood power-law tail p(λ) ∝ λ^-α above a cutoff
  xmin chosen by minimizing the Kolmogorov-Smirnov distance, with the likelihood
  ratio against an exponential tail (Clauset, Shalizi & Newman 2009); the
  heavy-tail exponent of Martin & Mahoney (2021, WeightWatcher).
  ``gaussian_null_alphas``: the same fit on Gaussian matrices of a given shape,
  the null a heavy-tail verdict is judged against.
- ``gaussian_top_quantile``: a quantile of the top eigenvalue of the ESD of a Gaussian
  matrix of a given shape (finite-size edge), simulated in O(d) per draw with the
  bidiagonal model of the Laguerre ensemble (Dumitriu & Edelman 2002).
- ``coupled_ks_null``: the bulk KS between a matrix's ESD and that of the same matrix
  after a random perturbation of a given Frobenius norm (the null of "the bulk did not move").
- ``subspace_alignment_p``: the p-value of ‖P β‖² for a uniformly random k-dimensional
  subspace of R^d, whose law is Beta(k/2, (d-k)/2).
- ``outliers`` / ``top_alignment``: eigenvalues beyond the MP edge and the
  overlap of the top eigenvector with a direction (Baik, Ben Arous & Péché 2005;
  Ba et al. 2022 for the spike after one large gradient step).
- ``kernel_distance``: 1 - <K0, K1>_F / (‖K0‖_F ‖K1‖_F), scale-invariant
  (Fort et al. 2020; Wang et al. 2022, arXiv 2211.06506).
- ``twolayer_ck`` / ``twolayer_ntk``: the closed-form conjugate kernel and NTK of
  f(x) = aᵀσ(Wx/√d)/√h (``models.TwoLayer``).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy import linalg, stats

from .models import ACTIVATIONS


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


@functools.lru_cache(maxsize=64)
def gaussian_top_quantile(shape: tuple[int, int], q: float = 0.99, draws: int = 2000, seed: int = 0) -> float:
    """The ``q`` quantile of the top eigenvalue of ``weight_esd(W)`` for W (h, d) with i.i.d. N(0, 1)
    entries, over ``draws`` simulated matrices: the finite-size edge an outlier must clear.

    Each draw is exact in law and costs O(min(h, d)): the eigenvalues of XᵀX (X m x p Gaussian,
    m >= p) are those of B Bᵀ, B the p x p lower-bidiagonal matrix with diagonal χ_{m}, χ_{m-1}, ...,
    χ_{m-p+1} and subdiagonal χ_{p-1}, ..., χ_1 (Dumitriu & Edelman 2002, β = 1); its top
    eigenvalue comes from LAPACK's tridiagonal bisection. Tested against dense draws.
    """
    m, p = max(shape), min(shape)
    rng = np.random.default_rng(seed)
    dfs_diag = m - np.arange(p)                                        # (p,)
    dfs_sub = p - 1 - np.arange(p - 1)                                 # (p-1,)
    tops = np.empty(draws)
    for i in range(draws):
        a = np.sqrt(rng.chisquare(dfs_diag))
        b = np.sqrt(rng.chisquare(dfs_sub)) if p > 1 else np.zeros(0)
        diag = a ** 2 + np.concatenate([[0.0], b ** 2])               # B Bᵀ: tridiagonal
        off = a[:-1] * b
        tops[i] = linalg.eigvalsh_tridiagonal(diag, off, select="i", select_range=(p - 1, p - 1))[0]
    return float(np.quantile(tops / m, q))


def coupled_ks_null(W0, fro: float, draws: int, seed: int = 0, esd=None, edge: float | None = None) -> np.ndarray:
    """Bulk KS between ``esd(W0)`` and ``esd(W0 + E)`` for ``draws`` Gaussian E scaled to ‖E‖_F = ``fro``.

    The null of "training moved the bulk no more than a random change of the same size would": a
    measured change ΔW is compared with isotropic noise of its own Frobenius norm. ``esd`` (default
    ``weight_esd``) maps a weight matrix to eigenvalues (a kernel built from it, for CK / NTK);
    eigenvalues above ``edge`` are dropped from both sides (``bulk_ks``).
    """
    W0 = torch.as_tensor(W0, dtype=torch.float64)
    esd = esd or (lambda W: weight_esd(W)[0])
    e0 = esd(W0)
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(draws):
        E = torch.randn(*W0.shape, generator=g, dtype=torch.float64)
        out.append(bulk_ks(e0, esd(W0 + E * (fro / float(E.norm()))), edge))
    return np.asarray(out)


def subspace_alignment_p(p_out: float, k: int, d: int) -> float:
    """P(‖P β‖ >= ``p_out``) for the projection P on a uniformly random k-dimensional subspace of R^d
    and a unit β: ‖P β‖² ~ Beta(k/2, (d - k)/2). 1 when k = 0 (no subspace, nothing to align)."""
    if k <= 0:
        return 1.0
    if k >= d:
        return 1.0
    return float(stats.beta.sf(float(p_out) ** 2, k / 2, (d - k) / 2))


# ------------------------------------------------------------------ heavy tails
@dataclass(frozen=True)
class TailFit:
    alpha: float          # tail exponent of the density, p(λ) ∝ λ^-α for λ >= xmin (NaN: no admissible xmin)
    xmin: float           # KS-chosen cutoff
    ks: float             # KS distance of the fitted tail
    n_tail: int           # eigenvalues at or above xmin (above the floor when no xmin was admissible)
    llr: float            # log-likelihood ratio power law vs exponential on the tail (> 0 favours the power law)
    p: float              # Vuong's two-sided p-value of that ratio (Clauset et al. 2009, eq. 5.7)


def tail_fit(eigenvalues, xmin_floor: float = 0.0, min_tail: int = 20) -> TailFit:
    """Continuous power-law MLE above a KS-chosen xmin, and its likelihood ratio against an exponential.

    Clauset, Shalizi & Newman (2009): for every candidate xmin (an observed value >= ``xmin_floor``
    leaving >= ``min_tail`` points at or above it) α = 1 + m / Σ log(x / xmin); the xmin whose tail
    has the smallest KS distance to its fitted law wins. Then the tail's log-likelihood under that
    power law is compared with a shifted exponential λ e^{-λ (x - xmin)} fitted by MLE on the same
    tail (the ``powerlaw`` package's ``distribution_compare("power_law", "exponential")``).

    Hand-written (numpy, vectorized over all candidate xmin at once) rather than
    ``powerlaw.Fit``: the study fits thousands of spectra (null draws of Gaussian matrices
    included) and the package loops over candidates in Python; tests check it against the package.
    """
    x = np.sort(np.asarray(eigenvalues, dtype=float))
    x = x[x > 1e-12 * max(1.0, float(np.max(np.abs(x))))]
    n = len(x)
    cand = np.flatnonzero((x >= xmin_floor) & (n - np.arange(n) >= min_tail))
    if len(cand) == 0:
        return TailFit(math.nan, math.nan, math.nan, int(np.sum(x >= xmin_floor)), math.nan, math.nan)
    lx = np.log(x)
    suffix = np.cumsum(lx[::-1])[::-1]                                 # (n,) Σ_{j>=i} log x_j
    m = n - cand                                                       # (c,) tail sizes
    alpha = 1 + m / (suffix[cand] - m * lx[cand])                      # (c,)
    # KS of each candidate's tail against its own fit: rows = candidates, columns = all points
    j = np.arange(n)[None, :]
    i = cand[:, None]
    in_tail = j >= i                                                   # (c, n)
    ratio = np.exp(np.clip(lx[None, :] - lx[i], 0, None))              # x_j / xmin
    model = 1 - ratio ** (1 - alpha[:, None])                          # fitted CDF at x_j
    lo, hi = (j - i) / m[:, None], (j - i + 1) / m[:, None]            # empirical CDF just below / at x_j
    gap = np.where(in_tail, np.maximum(np.abs(hi - model), np.abs(model - lo)), 0.0)
    ks = gap.max(1)
    best = int(np.argmin(ks))
    i0, a = int(cand[best]), float(alpha[best])
    tail, xmin = x[i0:], float(x[i0])
    lam = 1 / np.mean(tail - xmin) if np.any(tail > xmin) else math.inf
    ll_pl = np.log(a - 1) - np.log(xmin) - a * np.log(tail / xmin)
    ll_exp = np.log(lam) - lam * (tail - xmin)
    diff = ll_pl - ll_exp
    llr = float(diff.sum())
    sd = float(diff.std())
    p = float(math.erfc(abs(llr) / (math.sqrt(2 * len(tail)) * sd))) if sd > 0 else 0.0
    return TailFit(a, xmin, float(ks[best]), len(tail), llr, p)


def powerlaw_fit(eigenvalues) -> TailFit:
    """Tail fit with the cutoff searched above the median and at least 10 tail points (the fit
    the workbook used before the heavy-tail test of study 03; kept for the MLP and kernel tables)."""
    x = np.asarray(eigenvalues, dtype=float)
    if np.sum(x > 0) < 10:
        raise ValueError(f"powerlaw_fit needs at least 10 positive eigenvalues, got {int(np.sum(x > 0))}")
    return tail_fit(x, xmin_floor=float(np.median(x[x > 0])), min_tail=10)


def gaussian_null_alphas(shape: tuple[int, int], draws: int = 20, seed: int = 0, esd=None) -> np.ndarray:
    """α of ``tail_fit`` (free xmin, >= 20 tail points) on the ESDs of ``draws`` i.i.d. N(0, 1)
    matrices of ``shape`` (h, d): the null distribution a trained spectrum's α is compared with.

    ``esd(W) -> eigenvalues`` (default ``weight_esd``) lets the same null serve kernels built
    from a Gaussian W (the CK / NTK at a fresh initialization).
    """
    g = torch.Generator().manual_seed(seed)
    esd = esd or (lambda W: weight_esd(W)[0])
    out = []
    for _ in range(draws):
        W = torch.randn(*shape, generator=g, dtype=torch.float64)
        out.append(tail_fit(esd(W)).alpha)
    return np.asarray(out)


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


def twolayer_ck(W, x, activation: str = "tanh") -> np.ndarray:
    """Conjugate kernel F Fᵀ / h with F = σ(XWᵀ/√d) (N, h); W (h, d), x (N, d) -> (N, N)."""
    W, x = torch.as_tensor(W, dtype=torch.float64), torch.as_tensor(x, dtype=torch.float64)
    F = ACTIVATIONS[activation][0](x @ W.T / math.sqrt(W.shape[1]))          # (N, h)
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
    act, dact = ACTIVATIONS[activation]
    Z = x @ W.T / math.sqrt(d)                                         # (N, h) pre-activations
    D = dact(Z) * a                                                    # (N, h)
    K = (x @ x.T / d) * (D @ D.T / h)                                  # (N, N) first-layer part
    if train_a:
        F = act(Z)
        K = K + F @ F.T / h
    return K.numpy()
