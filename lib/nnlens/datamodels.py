"""Judging data attribution against retraining: the linear datamodeling score (LDS), and TRAK.

An attribution method gives, for a test point x, a score τ(x)_i per training point i.
Read as a linear datamodel, it predicts the output of a model trained on a subset S of
the training set as g(x; S) = Σ_{i ∈ S} τ(x)_i (a constant offset does not matter). The
LDS (Park et al. 2023, "TRAK: Attributing model behavior at scale", arXiv 2303.14186,
after Ilyas et al. 2022, "Datamodels") retrains one model per random subset S_m
(m = 1..M, each a seeded random half of the training set), records the true output
f(x; S_m), and scores the method by

    LDS = mean over test points x of Spearman_m( g(x; S_m), f(x; S_m) ).

It asks the counterfactual question a correlation with the full model cannot: does the
attribution predict how the output *changes* when training data are removed?

- ``subset_mask`` / ``subset_masks``: the seeded half-subsets, (M, N_train) booleans.
- ``lds_per_point``: Spearman per test point (ranks along M, then Pearson, vectorized);
  ``lds_table`` adds the mean and a bootstrap CI over test points, ``paired_lds`` the
  CI of a difference between two methods on the same test points.
- ``trak_scores``: the TRAK estimator (Park et al. 2023, eq. for τ_TRAK): per model, the
  gradients of the margin f = log p/(1−p) of every example, projected to K dimensions by
  one seeded Rademacher matrix, Φ (N_train, K) and φ(x); scores φ(x)ᵀ(ΦᵀΦ)⁻¹Φᵀ averaged
  over an ensemble of models, times the averaged Q = diag(1 − p_i) of the training points.
  No sparsification (TRAK's optional soft-thresholding step). Written here rather than
  taken from ``traker`` 0.3.2 or ``dattri`` 0.3.0 (both install beside the pinned torch):
  their TRAK runs through checkpoint savers and dataloaders and, for ``traker``, a CUDA
  projector; on a few thousand parameters the whole estimator is four lines of linear
  algebra over ``utils.per_example_grads``, tested against a per-example loop.

The margin of a test point's true class, z_y − log Σ_{c≠y} exp(z_c), is the target output
f (TRAK's choice for classification); ``surrogates.true_class_margin`` computes it.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from scipy.stats import rankdata

from . import utils


# ------------------------------------------------------------------ subsets
def subset_mask(n: int, m: int, seed: int = 0, fraction: float = 0.5) -> np.ndarray:
    """The m-th random subset of ``round(fraction * n)`` of n training points, (n,) bool, seeded by (seed, m)."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    rng = np.random.default_rng([int(seed), int(m)])
    mask = np.zeros(n, bool)
    mask[rng.choice(n, int(round(fraction * n)), replace=False)] = True
    return mask


def subset_masks(n: int, n_subsets: int, seed: int = 0, fraction: float = 0.5) -> np.ndarray:
    """(n_subsets, n) bool: ``subset_mask`` for m = 0..n_subsets-1."""
    return np.stack([subset_mask(n, m, seed, fraction) for m in range(n_subsets)])


# ------------------------------------------------------------------ the score
def predicted_outputs(scores, masks) -> np.ndarray:
    """g(x; S_m) = Σ_{i ∈ S_m} τ(x)_i: (M, N_test) from scores (N_test, N_train) and masks (M, N_train)."""
    return utils.to_numpy(masks) @ utils.to_numpy(scores).T


def lds_per_point(scores, masks, actual) -> np.ndarray:
    """Spearman correlation over subsets between predicted and actual outputs, per test point: (N_test,).

    scores: (N_test, N_train) attributions; masks: (M, N_train); actual: (M, N_test) outputs of
    the models retrained on each subset. A test point whose predictions are constant over
    subsets (or actual outputs are) gets NaN.
    """
    pred, act = predicted_outputs(scores, masks), utils.to_numpy(actual)
    if pred.shape != act.shape:
        raise ValueError(f"actual must be (M, N_test) = {pred.shape}, got {act.shape}")
    rp, ra = rankdata(pred, axis=0), rankdata(act, axis=0)          # (M, N_test) ranks, ties averaged
    rp, ra = rp - rp.mean(0), ra - ra.mean(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rp * ra).sum(0) / np.sqrt((rp ** 2).sum(0) * (ra ** 2).sum(0))


def bootstrap_mean_ci(values, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """(mean, lo, hi) of ``values`` (N,) with a percentile bootstrap CI over its entries (NaNs dropped)."""
    v = utils.to_numpy(values)
    v = v[np.isfinite(v)]
    rng = np.random.default_rng(seed)
    boots = v[rng.integers(0, len(v), size=(n_boot, len(v)))].mean(1)
    q = (1 - level) / 2
    return float(v.mean()), float(np.quantile(boots, q)), float(np.quantile(boots, 1 - q))


def lds_table(per_point: dict, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """One row per method: LDS (mean over test points) and its bootstrap CI. per_point: {method: (N_test,)}."""
    rows = []
    for name, v in per_point.items():
        mean, lo, hi = bootstrap_mean_ci(v, n_boot, level, seed)
        rows.append({"method": name, "lds": mean, "lo": lo, "hi": hi})
    return pd.DataFrame(rows)


def paired_lds(a, b, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """LDS(a) − LDS(b) on the same test points, with a bootstrap CI: (diff, lo, hi). a, b: (N_test,)."""
    return bootstrap_mean_ci(utils.to_numpy(a) - utils.to_numpy(b), n_boot, level, seed)


# ------------------------------------------------------------------ TRAK
def _margin(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """TRAK's output function for one example: log p_y/(1 − p_y) = z_y − log Σ_{c≠y} exp(z_c). out: (C,)."""
    is_y = torch.arange(out.shape[0], device=out.device) == y             # (C,) no data-dependent indexing (vmap)
    return torch.where(is_y, out, 0).sum() - torch.logsumexp(out.masked_fill(is_y, float("-inf")), 0)


def rademacher(p: int, k: int, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    """A seeded (p, k) matrix of ±1/√k (the JL projection of TRAK and of proj-trNTK)."""
    g = torch.Generator().manual_seed(int(seed))
    return (torch.randint(0, 2, (p, k), generator=g, dtype=torch.int8).to(dtype) * 2 - 1) / k ** 0.5


def trak_features(model: nn.Module, x: torch.Tensor, y: torch.Tensor, proj_dim: int | None, seed: int = 0,
                  batch_size: int = 256) -> torch.Tensor:
    """φ: gradients of each example's margin w.r.t. all parameters, projected to ``proj_dim``: (N, K) float64.

    ``proj_dim=None`` keeps the full gradients (N, P).
    """
    g = utils.per_example_grads(model, x, _margin, y.long(), batch_size=batch_size).double()   # (N, P)
    return g if proj_dim is None else g @ rademacher(g.shape[1], proj_dim, seed)


def trak_scores(models, x_train, y_train, x_test, y_test, proj_dim: int | None = 512, seed: int = 0,
                ridge: float = 0.0) -> np.ndarray:
    """TRAK attributions τ(x)_i of test points to training points, (N_test, N_train).

    models: an ensemble of trained networks (independent seeds or checkpoints). Per model m,
    Φ_m (N_train, K) and φ_m (N_test, K) from ``trak_features`` (one projection seed for
    all), P_m = φ_m (Φ_mᵀΦ_m + ridge·I)⁻¹ Φ_mᵀ, Q_m = 1 − p_i (p_i the probability of training
    point i's label). τ = mean_m(P_m) · diag(mean_m(Q_m)), as in Park et al. 2023.
    """
    P, Q = 0.0, 0.0
    for model in models:
        Phi = trak_features(model, x_train, y_train, proj_dim, seed)              # (N_train, K)
        phi = trak_features(model, x_test, y_test, proj_dim, seed)                # (N_test, K)
        A = Phi.T @ Phi + ridge * torch.eye(Phi.shape[1], dtype=Phi.dtype)       # (K, K)
        P = P + phi @ torch.linalg.solve(A, Phi.T)                                # (N_test, N_train)
        p = torch.softmax(utils.forward(model, x_train).double(), 1)[torch.arange(len(y_train)), y_train.long()]
        Q = Q + (1 - p)                                                           # (N_train,)
    n = len(models)
    return ((P / n) * (Q / n)[None, :]).numpy()


# ------------------------------------------------------------------ LDS beyond class composition, two-way intervals
def _centered_ranks(a: np.ndarray) -> np.ndarray:
    r = rankdata(a, axis=0)
    return r - r.mean(0)


def _corr(ra: np.ndarray, rb: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return (ra * rb).sum(0) / np.sqrt((ra ** 2).sum(0) * (rb ** 2).sum(0))


def spearman_partial(pred, actual, covariate) -> np.ndarray:
    """Spearman correlation along axis 0 of (M, N) ``pred`` and ``actual`` with ``covariate`` partialled out.

    The partial correlation of the ranks: (r_pa − r_pc r_ac) / sqrt((1 − r_pc²)(1 − r_ac²)), per column.
    With ``covariate`` each subset's count of training points of the test point's class, it is the LDS
    left once a method's knowledge of class composition is removed. Returns (N,); NaN where undefined.
    """
    rp, ra, rc = (_centered_ranks(np.asarray(v, dtype=np.float64)) for v in (pred, actual, covariate))
    pa, pc, ac = _corr(rp, ra), _corr(rp, rc), _corr(ra, rc)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (pa - pc * ac) / np.sqrt((1 - pc ** 2) * (1 - ac ** 2))


def lds_partial_per_point(scores, masks, actual, covariate) -> np.ndarray:
    """``lds_per_point`` with ``covariate`` (M, N_test) partialled out (``spearman_partial``): (N_test,)."""
    return spearman_partial(predicted_outputs(scores, masks), actual, covariate)


def class_counts(masks, y_train, y_test) -> np.ndarray:
    """(M, N_test): how many training points of each test point's class every subset holds."""
    onehot = np.asarray(y_train)[:, None] == np.unique(np.concatenate([y_train, y_test]))[None, :]
    per_class = np.asarray(masks, dtype=np.float64) @ onehot                          # (M, C)
    return per_class[:, np.searchsorted(np.unique(np.concatenate([y_train, y_test])), y_test)]


def lds_two_way(preds: dict, actual, covariate=None, n_boot: int = 400, seed: int = 0) -> dict:
    """Bootstrap replicates of the LDS of every method, resampling subsets and test points together.

    preds: {method: (M, N_test) predicted outputs} (``predicted_outputs``); actual: (M, N_test);
    covariate: optional (M, N_test), partialled out when given. Replicate b draws M subsets with replacement
    (the rows of every method alike) and N_test test points with replacement, and averages the per-point
    (partial) Spearman over the drawn points (NaNs dropped). Returns {method: (n_boot,)}, paired across methods.
    """
    act = np.asarray(actual, dtype=np.float64)
    M, N = act.shape
    rng = np.random.default_rng(seed)
    out = {m: np.empty(n_boot) for m in preds}
    for b in range(n_boot):
        rows, cols = rng.integers(0, M, M), rng.integers(0, N, N)
        for m, pred in preds.items():
            p, a = np.asarray(pred)[rows], act[rows]
            v = (_corr(_centered_ranks(p), _centered_ranks(a)) if covariate is None
                 else spearman_partial(p, a, np.asarray(covariate)[rows]))[cols]
            out[m][b] = np.nanmean(v)
    return out
