"""Neural-collapse metrics NC1-NC4, per layer.

Conventions follow Papyan, Han & Donoho, "Prevalence of neural collapse during
the terminal phase of deep learning training", PNAS 2020 (arXiv 2008.08186):

- μ_c: class means, μ_G: the global mean of all points, M = [μ_c - μ_G]_c, (C, D).
- Σ_W = (1/N) Σ_n (h_n - μ_{y_n})(h_n - μ_{y_n})ᵀ, within-class covariance, normalized by N.
- Σ_B = (1/C) Σ_c (μ_c - μ_G)(μ_c - μ_G)ᵀ = MᵀM / C, between-class covariance.
- ``nc1`` = Tr(Σ_W Σ_B⁺) / C (the 1/C of Papyan et al.'s code; some codes omit it).
- ``nc2``: equinorm std/mean of ‖μ_c - μ_G‖, equiangularity std of the pairwise
  cosines and the mean |cos + 1/(C-1)| (0 for a simplex equiangular tight frame).
- ``nc3``: ‖W/‖W‖_F - M/‖M‖_F‖_F between the last layer's weights W (C, D) and M.
- ``nc4``: the fraction of points where the network's prediction differs from the
  nearest (train) class-mean classifier (NCC).

``nc1`` never forms a D x D matrix: with the thin SVD M = U S Vᵀ (rank r <= C),
Σ_B = V diag(s²/C) Vᵀ so Σ_B⁺ = V diag(C/s²) Vᵀ and

    Tr(Σ_W Σ_B⁺) = Σ_i (C / s_i²) v_iᵀ Σ_W v_i,   v_iᵀ Σ_W v_i = (1/N) Σ_n ((h_n - μ_{y_n})·v_i)²,

so NC1 = Σ_i mean_n(((h_n - μ_{y_n})·v_i)²) / s_i²: O(N D r) time, O(D r) memory.
``layer_table`` gathers them per layer for study 01 (arXiv 2309.15328).
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def _np(x) -> np.ndarray:
    """A float64 numpy copy of a numpy array or torch tensor."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _labels(y) -> np.ndarray:
    if hasattr(y, "detach"):
        y = y.detach().cpu().numpy()
    return np.asarray(y).astype(np.int64).ravel()


def _check(h, y):
    h, y = _np(h), _labels(y)
    if h.ndim != 2:
        raise ValueError(f"features must be (N, D), got shape {h.shape}")
    if len(h) != len(y):
        raise ValueError(f"features have {len(h)} rows but labels have {len(y)}")
    return h, y


def class_means(features, labels, n_classes: int | None = None) -> np.ndarray:
    """(C, D) class means; ``n_classes`` defaults to max(label) + 1 (absent classes: NaN rows)."""
    h, y = _check(features, labels)
    c = int(y.max()) + 1 if n_classes is None else n_classes
    counts = np.bincount(y, minlength=c).astype(np.float64)       # (C,)
    sums = np.zeros((c, h.shape[1]))
    np.add.at(sums, y, h)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts[:, None]                             # (C, D)


def _centred_means(h: np.ndarray, y: np.ndarray):
    classes = np.unique(y)
    idx = np.searchsorted(classes, y)                             # labels as 0..C-1
    means = class_means(h, idx, len(classes))                     # (C, D)
    return means, means - h.mean(0), idx                          # μ_c, M = μ_c - μ_G, class index


def nc1(features, labels, rtol: float = 1e-10) -> float:
    """NC1 = Tr(Σ_W Σ_B⁺)/C of features (N, D) with labels (N,), through the span of the class means.

    Singular values of M with s² < rtol·max s² count as zero (the pseudo-inverse's cutoff).
    Invariant to scaling and to rotations of the features; 0 when every point sits on its class mean.
    """
    h, y = _check(features, labels)
    means, m, idx = _centred_means(h, y)
    c = len(means)
    if c < 2:
        raise ValueError("nc1 needs at least two classes")
    _, s, vt = np.linalg.svd(m, full_matrices=False)              # m = U diag(s) Vᵀ; vt (C, D)
    keep = s ** 2 > rtol * (s[0] ** 2)
    s, vt = s[keep], vt[keep]                                     # (r,), (r, D)
    z = (h - means[idx]) @ vt.T                                   # (N, r): within-class deviations in the span
    within = (z ** 2).mean(0)                                     # (r,) v_iᵀ Σ_W v_i
    return float(np.sum(within * c / s ** 2) / c)                 # Σ_i within_i / (s_i²/C), then /C


def nc2(features, labels) -> dict:
    """Equinorm and equiangularity of the centred class means.

    Returns {"equinorm": std/mean of ‖μ_c - μ_G‖, "equiangular_std": std of the pairwise
    cosines, "equiangular_etf": mean |cos + 1/(C-1)|}; all 0 for a simplex ETF.
    """
    h, y = _check(features, labels)
    _, m, _ = _centred_means(h, y)
    c = len(m)
    norms = np.linalg.norm(m, axis=1)                             # (C,)
    u = m / norms[:, None]
    cos = (u @ u.T)[~np.eye(c, dtype=bool)]                       # (C(C-1),) off-diagonal cosines
    return {"equinorm": float(norms.std() / norms.mean()),
            "equiangular_std": float(cos.std()),
            "equiangular_etf": float(np.abs(cos + 1.0 / (c - 1)).mean())}


def nc3(weights, features, labels) -> float:
    """‖W/‖W‖_F - M/‖M‖_F‖_F for last-layer weights W (C, D) and centred class means M (C, D).

    Rows of W must be ordered like the sorted labels. 0 when the classifier is
    proportional to the class means (self-duality); at most 2.
    """
    w = _np(weights)
    h, y = _check(features, labels)
    _, m, _ = _centred_means(h, y)
    if w.shape != m.shape:
        raise ValueError(f"weights {w.shape} and class means {m.shape} must have the same shape (C, D)")
    return float(np.linalg.norm(w / np.linalg.norm(w) - m / np.linalg.norm(m)))


def ncc_predict(features, means) -> np.ndarray:
    """(N,) index of the nearest class mean (Euclidean) of each row of features (N, D); means (C, D)."""
    h, mu = _np(features), _np(means)
    d2 = (h ** 2).sum(1)[:, None] - 2 * h @ mu.T + (mu ** 2).sum(1)[None, :]   # (N, C)
    return d2.argmin(1)


def nc4(features, predictions, means) -> float:
    """Fraction of points (N, D) where the network's ``predictions`` (N,) differ from the NCC on ``means`` (C, D)."""
    pred = _labels(predictions)
    ncc = ncc_predict(features, means)
    if len(pred) != len(ncc):
        raise ValueError(f"{len(pred)} predictions for {len(ncc)} points")
    return float(np.mean(ncc != pred))


def layer_table(train: dict, y_train, test: dict, pred_test, pred_train=None) -> pd.DataFrame:
    """Per layer (in the dicts' order): NC1 and NC2 on train features, NC4 on test (and train).

    train, test: {layer: (N, D) features}; pred_*: the network's predictions (N,).
    Columns: layer, depth, nc1, equinorm, equiangular_std, equiangular_etf, nc4_test[, nc4_train].
    """
    rows = []
    y_tr = _labels(y_train)
    for depth, (name, h) in enumerate(train.items()):
        h = _np(h)  # one float64 copy per layer; the metrics below then reuse it without copying
        means = class_means(h, y_tr)
        row = {"layer": name, "depth": depth, "nc1": nc1(h, y_tr), **nc2(h, y_tr),
               "nc4_test": nc4(test[name], pred_test, means)}
        if pred_train is not None:
            row["nc4_train"] = nc4(h, pred_train, means)
        rows.append(row)
    return pd.DataFrame(rows)


def onset(values, below: float) -> int | None:
    """The first index from which ``values`` stay <= ``below`` to the end (None if the last does not)."""
    v = np.asarray(values, dtype=np.float64)
    ok = v <= below
    if not ok[-1]:
        return None
    i = len(v) - 1
    while i > 0 and ok[i - 1]:
        i -= 1
    return int(i)
