"""PCA probes of layer-wise representations (study 01, arXiv 2309.15328).

For one layer's features, PCA is fitted on the *training* activations; then for
k on a log grid, three surrogate classifiers are trained on the first k
principal components and scored on the test activations:

- ``knn``: k-nearest neighbours (scikit-learn ``KNeighborsClassifier``, Euclidean);
- ``ncc``: nearest class centre (``NearestCentroid``);
- ``svm``: a linear SVM (``LinearSVC``, one-vs-rest, seeded) on standardized PCs (``svm``), primal
  or dual by shape, run to convergence (a fit that does not converge says so, never silently);
  its C chosen by cross-validation on the training split (``choose_svm_c``).

``knn_ncc_path`` gives kNN and NCC accuracy on every k of an integer grid at about the cost
of one fit (distances accumulated one PC at a time).

The grid (``k_grid``) is 1, 2, 4, ... plus 100 and the largest k, up to
min(k_max, rank) with rank = min(N_train - 1, D). When that top k is below D,
one extra row per probe, ``k = D`` with explained variance 1, is the probe on the
full centred features ("all PCs"; for kNN and NCC identical to all PCs whenever
D <= N_train - 1). So the largest k of each layer always means "all PCs".

``collapse_onset`` turns the probes' accuracies into the layer where collapse
begins: the surrogates *agree* at a layer when the spread (max - min) of the
three accuracies on all PCs is <= ``tol``; the onset is the first layer from
which they agree in every deeper layer. Under neural collapse every point sits
near its class mean, so nearest-centre, nearest-neighbour and linear rules give
the same answer; before it, NCC lags behind the other two.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from .utils import to_numpy

PROBES = ("knn", "ncc", "svm")


def _np(x) -> np.ndarray:
    return to_numpy(x, np.float32)


def k_grid(k_max: int, rank: int, extra: tuple = (100,)) -> list[int]:
    """Powers of two, ``extra`` and min(k_max, rank) itself, all <= min(k_max, rank); sorted."""
    top = int(min(k_max, rank))
    if top < 1:
        raise ValueError(f"k_grid needs k_max >= 1 and rank >= 1, got k_max={k_max}, rank={rank}")
    ks = {2 ** i for i in range(int(np.log2(top)) + 1)} | {k for k in extra if k <= top} | {top}
    return sorted(ks)


def fit_pca(x_train, n_components: int, seed: int = 0):
    """A fitted PCA of x_train (N, D) with ``n_components``.

    Full SVD when most components are asked for (> 0.8 min(N, D)); otherwise seeded randomized
    SVD (Halko et al.) with 4 power iterations, ~10x cheaper on the unpooled maps (N = 2000,
    D = 8192, 100 PCs) and within 1e-3 of the full SVD's cumulative explained variance (tested).
    """
    from sklearn.decomposition import PCA

    x = _np(x_train)
    if n_components > 0.8 * min(x.shape):
        return PCA(n_components, svd_solver="full").fit(x)
    return PCA(n_components, svd_solver="randomized", iterated_power=4, random_state=seed).fit(x)


SVM_MAX_ITER = 10_000   # liblinear passes; every fit reports whether it converged within them


def svm(C: float = 1.0, seed: int = 0, max_iter: int = SVM_MAX_ITER):
    """The linear SVM probe: standardized features, then ``LinearSVC`` (one-vs-rest, squared hinge).

    ``dual="auto"`` lets scikit-learn solve the primal when samples outnumber features (the PC
    probes: N of a few thousand, k <= 100), where it converges in a few passes, and the dual
    otherwise (wide raw layers).
    """
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    return make_pipeline(StandardScaler(), LinearSVC(C=C, dual="auto", random_state=seed, max_iter=max_iter))


def _make(probe: str, knn_k: int, svm_c: float, seed: int, svm_max_iter: int = SVM_MAX_ITER):
    from sklearn.neighbors import KNeighborsClassifier, NearestCentroid

    if probe == "knn":
        return KNeighborsClassifier(n_neighbors=knn_k)
    if probe == "ncc":
        return NearestCentroid()
    if probe == "svm":
        return svm(svm_c, seed, svm_max_iter)
    raise ValueError(f"unknown probe {probe!r}; valid probes: {', '.join(PROBES)}")


def fit_quietly(clf, x, y):
    """``clf.fit(x, y)``; returns whether it converged (no ``ConvergenceWarning``), which the caller reports.

    Only NearestCentroid's warning about dead (constant) ReLU units is silenced: it is harmless.
    """
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        warnings.filterwarnings("ignore", message=".*zero standard deviation")
        clf.fit(x, y)
    for w in caught:
        if not issubclass(w.category, ConvergenceWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return not any(issubclass(w.category, ConvergenceWarning) for w in caught)


def _score(probe, z_train, y_train, z_test, y_test, knn_k, svm_c, seed, svm_max_iter=SVM_MAX_ITER) -> float:
    clf = _make(probe, knn_k, svm_c, seed, svm_max_iter)
    if not fit_quietly(clf, z_train, y_train):
        warnings.warn(f"{probe} probe did not converge in {svm_max_iter} iterations", RuntimeWarning, stacklevel=2)
    return float(np.mean(clf.predict(z_test) == y_test))


def choose_svm_c(z_train, y_train, cs, folds: int = 3, seed: int = 0) -> tuple[float, float, bool]:
    """C of the SVM probe by stratified ``folds``-fold cross-validation on the training split only.

    Returns (best C, its mean validation accuracy, whether every fit converged). Ties go to the
    smallest C (the most regularized).
    """
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    search = GridSearchCV(svm(seed=seed), {"linearsvc__C": sorted(cs)},
                          cv=StratifiedKFold(folds, shuffle=True, random_state=seed), refit=False)
    converged = fit_quietly(search, _np(z_train), np.asarray(y_train).ravel())
    scores = search.cv_results_["mean_test_score"]
    i = int(np.argmax(scores))                                    # first maximum = smallest C
    return float(sorted(cs)[i]), float(scores[i]), converged


def pca_probes(x_train, y_train, x_test, y_test, *, k_max: int = 256, knn_k: int = 10, svm_c: float = 1.0,
               seed: int = 0, probes=PROBES, include_all: bool = True,
               svm_max_iter: int = SVM_MAX_ITER) -> pd.DataFrame:
    """Probe accuracies on the first k PCs of one layer.

    x_train (N, D), x_test (M, D): features; y_*: labels. Returns a tidy frame with
    columns k, explained_variance (cumulative ratio), probe, accuracy; one row per
    (k, probe), k from ``k_grid``, plus the "all PCs" rows at k = D (see module doc).
    """
    xtr, xte = _np(x_train), _np(x_test)
    ytr, yte = np.asarray(y_train).ravel(), np.asarray(y_test).ravel()
    rank = min(len(xtr) - 1, xtr.shape[1])
    ks = k_grid(k_max, rank)
    pca = fit_pca(xtr, ks[-1], seed)
    ztr, zte = pca.transform(xtr), pca.transform(xte)              # (N, k_top), (M, k_top)
    cum = np.minimum(np.cumsum(pca.explained_variance_ratio_, dtype=np.float64), 1.0)   # (k_top,)
    rows = []
    for k in ks:
        for p in probes:
            acc = _score(p, ztr[:, :k], ytr, zte[:, :k], yte, knn_k, svm_c, seed, svm_max_iter)
            rows.append({"k": k, "explained_variance": float(cum[k - 1]), "probe": p, "accuracy": acc})
    if include_all and ks[-1] < xtr.shape[1]:                     # else the top k already is all PCs
        mu = xtr.mean(0)
        for p in probes:
            acc = _score(p, xtr - mu, ytr, xte - mu, yte, knn_k, svm_c, seed, svm_max_iter)
            rows.append({"k": xtr.shape[1], "explained_variance": 1.0, "probe": p, "accuracy": acc})
    return pd.DataFrame(rows, columns=["k", "explained_variance", "probe", "accuracy"])


def all_pcs(df: pd.DataFrame) -> pd.DataFrame:
    """Accuracy on all PCs (the largest k of each layer): rows layer, columns probes, in depth order."""
    top = df[df["k"] == df.groupby("layer")["k"].transform("max")]
    wide = top.pivot_table(index=["depth", "layer"], columns="probe", values="accuracy")
    return wide.reset_index().set_index("layer").drop(columns="depth")


def agreement(df: pd.DataFrame) -> pd.Series:
    """Per layer (depth order): spread max - min of the probes' accuracies on all PCs."""
    wide = all_pcs(df)
    return (wide.max(axis=1) - wide.min(axis=1)).rename("spread")


def collapse_onset(df: pd.DataFrame, tol: float) -> str | None:
    """The first layer from which the probes agree (spread <= ``tol``) in every deeper layer; None if the
    last does not."""
    from .collapse import onset

    spread = agreement(df)
    i = onset(spread.to_numpy(), tol)
    return None if i is None else str(spread.index[i])


def knn_ncc_path(z_train, y_train, z_test, y_test, ks, knn_k: int = 10) -> dict[str, np.ndarray]:
    """kNN and NCC test accuracy on the first k columns of PC scores, for every k in ``ks``.

    z_train (N, K), z_test (M, K): PC scores (columns in PC order); ks: increasing ints <= K.
    Returns {"knn": (len(ks),), "ncc": (len(ks),)}. Same predictions as scikit-learn's
    ``KNeighborsClassifier(knn_k)`` (uniform vote, ties to the smallest label) and
    ``NearestCentroid()`` fitted on ``z[:, :k]`` (tested against them), but the squared
    distances are accumulated one PC at a time, so the whole path costs about one fit:
    hand-written because scikit-learn refits from scratch per k (~64x the work here).
    """
    import torch

    ztr = torch.as_tensor(np.asarray(z_train, dtype=np.float64))
    zte = torch.as_tensor(np.asarray(z_test, dtype=np.float64))
    classes, ytr = np.unique(np.asarray(y_train).ravel(), return_inverse=True)
    yte = np.asarray(y_test).ravel()
    ytr_t = torch.as_tensor(ytr)
    c = len(classes)
    means = torch.stack([ztr[ytr_t == i].mean(0) for i in range(c)])     # (C, K)
    d_knn = torch.zeros(len(zte), len(ztr), dtype=torch.float64)          # (M, N)
    d_ncc = torch.zeros(len(zte), c, dtype=torch.float64)                 # (M, C)
    out = {"knn": [], "ncc": []}
    done = 0
    for k in ks:
        if k <= done or k > ztr.shape[1]:
            raise ValueError(f"ks must increase and stay <= {ztr.shape[1]} PCs, got {list(ks)}")
        a, b = zte[:, done:k], ztr[:, done:k]                              # (M, j), (N, j)
        d_knn += (a * a).sum(1, keepdim=True) - 2 * a @ b.T + (b * b).sum(1)[None, :]
        d_ncc += ((a[:, None, :] - means[None, :, done:k]) ** 2).sum(-1)
        done = k
        nbrs = torch.topk(d_knn, knn_k, dim=1, largest=False).indices      # (M, knn_k)
        votes = torch.zeros(len(zte), c, dtype=torch.int64).scatter_add_(1, ytr_t[nbrs], torch.ones_like(nbrs))
        pred_knn = classes[votes.argmax(1).numpy()]                        # argmax: first (smallest) label on ties
        pred_ncc = classes[d_ncc.argmin(1).numpy()]
        out["knn"].append(float(np.mean(pred_knn == yte)))
        out["ncc"].append(float(np.mean(pred_ncc == yte)))
    return {p: np.asarray(v) for p, v in out.items()}


def knn_accuracy(x_train, y_train, x_test, y_test, knn_k: int = 10) -> float:
    """Test accuracy of kNN on raw inputs (N, ...) flattened to (N, D): the baseline a network must beat."""
    xtr, xte = _np(x_train).reshape(len(x_train), -1), _np(x_test).reshape(len(x_test), -1)
    return _score("knn", xtr, np.asarray(y_train).ravel(), xte, np.asarray(y_test).ravel(), knn_k, 1.0, 0)


def span_coordinates(x_train, x_test, rtol: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Train and test rows in coordinates of an orthonormal basis of the training rows' span.

    x_train (N, D), x_test (M, D) -> (N, r), (M, r) float64 with r = rank(x_train) <= N. Every inner
    product with a training row is kept (z_i . z_j = x_i . x_j, z_test . z_i = x_test . x_i), so any
    learner whose fit and prediction only use inner products with training rows (a linear SVM: its
    weights lie in that span) gives the same model on (N, r) as on (N, D): for N << D (all 12800
    features of an unpooled stem, 1000 images) each of its passes costs N r instead of N D.
    From the eigendecomposition of the Gram matrix (two (N, D) x (D, N) products in the inputs' dtype,
    float32 here: relative error ~1e-7; the eigenproblem in float64); directions with eigenvalue
    <= rtol x the largest (rounding noise of the float32 Gram) are dropped.
    """
    xtr, xte = np.asarray(x_train), np.asarray(x_test, dtype=np.asarray(x_train).dtype)
    lam, u = np.linalg.eigh((xtr @ xtr.T).astype(np.float64))             # ascending
    keep = lam > rtol * max(lam[-1], np.finfo(np.float64).tiny)
    lam, u = lam[keep][::-1], u[:, keep][:, ::-1]                          # (r,), (N, r)
    return u * np.sqrt(lam), (xte @ xtr.T).astype(np.float64) @ (u / np.sqrt(lam))


def svm_predict_wide(x_train, y_train, x_test, C: float = 1.0, seed: int = 0,
                     max_iter: int = SVM_MAX_ITER) -> tuple[np.ndarray, bool]:
    """Test predictions of the SVM probe (``svm``: standardize, then ``LinearSVC``) fitted on wide features
    (N < D), and whether it converged: the same problem solved on the span of the standardized training rows.

    Exact: liblinear's dual coordinate descent (chosen by ``dual="auto"`` for N < D) touches the data
    only through inner products (its bias is one more constant feature, the same in both), and the
    dual is kept here, so with the same seed it runs the same iterates (equal up to rounding; tested
    against ``svm`` on the raw features). ~D / N times fewer flops per pass.
    """
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    scaler = StandardScaler().fit(_np(x_train))
    ztr, zte = span_coordinates(scaler.transform(_np(x_train)), scaler.transform(_np(x_test)))
    clf = LinearSVC(C=C, dual=True, random_state=seed, max_iter=max_iter)
    converged = fit_quietly(clf, ztr, np.asarray(y_train).ravel())
    return clf.predict(zte), converged
