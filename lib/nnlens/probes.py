"""PCA probes of layer-wise representations (study 01, arXiv 2309.15328).

For one layer's features, PCA is fitted on the *training* activations; then for
k on a log grid, three surrogate classifiers are trained on the first k
principal components and scored on the test activations:

- ``knn``: k-nearest neighbours (scikit-learn ``KNeighborsClassifier``, Euclidean);
- ``ncc``: nearest class centre (``NearestCentroid``);
- ``svm``: a linear SVM (``LinearSVC``, one-vs-rest, seeded) on standardized PCs, solved in the
  dual (coordinate descent, fast for N of a few thousand) with at most ``svm_max_iter`` passes;
  on wide, nearly separable layers the primal solver took minutes for the same accuracy.

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

PROBES = ("knn", "ncc", "svm")


def _np(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float32)


def k_grid(k_max: int, rank: int, extra: tuple = (100,)) -> list[int]:
    """Powers of two, ``extra`` and min(k_max, rank) itself, all <= min(k_max, rank); sorted."""
    top = int(min(k_max, rank))
    if top < 1:
        raise ValueError(f"k_grid needs k_max >= 1 and rank >= 1, got k_max={k_max}, rank={rank}")
    ks = {2 ** i for i in range(int(np.log2(top)) + 1)} | {k for k in extra if k <= top} | {top}
    return sorted(ks)


def fit_pca(x_train, n_components: int, seed: int = 0):
    """A fitted PCA of x_train (N, D) with ``n_components``.

    Full SVD when the data is small (min(N, D) <= 2000) or most components are asked for,
    randomized SVD otherwise (seeded).
    """
    from sklearn.decomposition import PCA

    x = _np(x_train)
    small = min(x.shape) <= 2000 or n_components > 0.5 * min(x.shape)
    solver = "full" if small else "randomized"
    return PCA(n_components, svd_solver=solver, random_state=seed).fit(x)


def _make(probe: str, knn_k: int, svm_c: float, seed: int, svm_max_iter: int = 300):
    from sklearn.neighbors import KNeighborsClassifier, NearestCentroid
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    if probe == "knn":
        return KNeighborsClassifier(n_neighbors=knn_k)
    if probe == "ncc":
        return NearestCentroid()
    if probe == "svm":
        return make_pipeline(StandardScaler(), LinearSVC(C=svm_c, dual=True, random_state=seed,
                                                        max_iter=svm_max_iter))
    raise ValueError(f"unknown probe {probe!r}; valid probes: {', '.join(PROBES)}")


def _score(probe, z_train, y_train, z_test, y_test, knn_k, svm_c, seed, svm_max_iter=300) -> float:
    from sklearn.exceptions import ConvergenceWarning

    clf = _make(probe, knn_k, svm_c, seed, svm_max_iter)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)   # max_iter reached: the score is still valid
        warnings.filterwarnings("ignore", message=".*zero standard deviation")  # NCC on dead ReLU units
        clf.fit(z_train, y_train)
    return float(np.mean(clf.predict(z_test) == y_test))


def pca_probes(x_train, y_train, x_test, y_test, *, k_max: int = 256, knn_k: int = 10, svm_c: float = 1.0,
               seed: int = 0, probes=PROBES, include_all: bool = True, svm_max_iter: int = 300) -> pd.DataFrame:
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


def layer_probes(train: dict, y_train, test: dict, y_test, **kwargs) -> pd.DataFrame:
    """``pca_probes`` for every layer of {layer: (N, D)} dicts; adds columns layer and depth (tap order)."""
    frames = []
    for depth, name in enumerate(train):
        df = pca_probes(train[name], y_train, test[name], y_test, **kwargs)
        df.insert(0, "depth", depth)
        df.insert(0, "layer", name)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


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
    """The first layer from which the probes agree (spread <= ``tol``) in every deeper layer; None if the last does not."""
    from .collapse import onset

    spread = agreement(df)
    i = onset(spread.to_numpy(), tol)
    return None if i is None else str(spread.index[i])


def accuracy_at_variance(df: pd.DataFrame, max_variance: float) -> pd.DataFrame:
    """Per layer and probe: accuracy at the largest k on the grid whose cumulative explained variance
    is <= ``max_variance`` (no row when already the first PC explains more)."""
    sub = df[df["explained_variance"] <= max_variance]
    idx = sub.groupby(["layer", "probe"])["k"].idxmax()
    return sub.loc[idx].sort_values(["depth", "probe"]).reset_index(drop=True)


def gap_to_all(df: pd.DataFrame, k: int = 100) -> pd.DataFrame:
    """Per layer and probe: accuracy at min(k, largest k below all PCs) minus accuracy on all PCs.

    Columns layer, depth, probe, k, accuracy, accuracy_all, gap (signed).
    """
    rows = []
    for (depth, layer, probe), part in df.groupby(["depth", "layer", "probe"], sort=True):
        part = part.sort_values("k")
        k_all = part["k"].max()
        below = part[part["k"] <= min(k, k_all)]
        at = below.iloc[-1]
        acc_all = part[part["k"] == k_all]["accuracy"].item()
        rows.append({"layer": layer, "depth": depth, "probe": probe, "k": int(at["k"]),
                     "accuracy": at["accuracy"], "accuracy_all": acc_all, "gap": at["accuracy"] - acc_all})
    return pd.DataFrame(rows)


def knn_accuracy(x_train, y_train, x_test, y_test, knn_k: int = 10) -> float:
    """Test accuracy of kNN on raw inputs (N, ...) flattened to (N, D): the baseline a network must beat."""
    xtr, xte = _np(x_train).reshape(len(x_train), -1), _np(x_test).reshape(len(x_test), -1)
    return _score("knn", xtr, np.asarray(y_train).ravel(), xte, np.asarray(y_test).ravel(), knn_k, 1.0, 0)
