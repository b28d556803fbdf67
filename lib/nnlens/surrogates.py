"""Kernel surrogate models of a trained network, and how faithful they are.

A surrogate is a kernel machine fitted on a precomputed kernel between the
network's training points (``K_train``, (N_train, N_train)) and predicted from
the kernel between test and training points (``K_test``, (N_test, N_train)).

- ``KGLM``: the kernel general linear model of Engel et al. 2023 (arXiv
  2305.14585): L2-regularized multinomial logistic regression whose features
  are the rows of the (normalized) train x train kernel, fitted to the TRUE
  labels. Its logits are ``K_test @ W.T + b`` with ``W`` (C, N_train), which is
  what the data attribution of ``nnlens.attribution`` decomposes.
  ``select_c`` chooses its inverse penalty C by stratified k-fold cross-validation on
  the training split (validation log-loss; kernel blocks restricted to the fold's
  training columns, so no held-out point is a feature).
- ``SGDKGLM``: the paper code's recipe (github pnnl/projection_ntk): scikit-learn's
  ``SGDClassifier(loss="log_loss", penalty="l2", class_weight="balanced")``, one-vs-rest,
  α = 1e-4 (1e-2 in their BERT and poisoning runs), raw kernels divided by the std of
  the train Gram (``paper_scale``). ``fit_recipe`` builds either by name (``RECIPES``).
- ``kernel_svm``: a support-vector machine on the precomputed kernel (scikit-learn's
  ``SVC(kernel="precomputed")``).
- Faithfulness (``faithfulness``): Kendall τ between the surrogate's and the
  network's softmax probability of the true class on test points, and the test-accuracy
  difference TAD = acc(surrogate) - acc(network). τ ranks the probabilities through
  their logits (``true_class_margin``): the same order, but a float softmax rounds every
  margin above ~17 (float32) or ~37 (float64) to exactly 1, and those ties would
  otherwise have to be dropped (``kendall_tau(drop_saturated=True)`` on probabilities).
  ``class1_tau``: the paper's binary τ, P(class 1) of the network against the
  surrogate's class-1 score (a different quantity: both classes' points together).
- Uncertainty: ``bootstrap_weights`` resamples test points (multinomial counts) and
  ``kendall_tau_weighted`` gives τ-b of every resample at once from the pair-sign
  matrices, so paired differences between kernels share one set of resamples.
- ``normalize``: cosine normalization of a kernel given its two diagonals, and
  ``kernel_scale`` for raw kernels (trNTK⁰) so the L2 penalty means the same thing.

PCA probes (kNN, NCC, linear SVM on the first k PCs) for study 01 live in ``nnlens.probes``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy.stats import kendalltau
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold
from sklearn.svm import SVC

from .utils import one_thread, to_numpy


def normalize(K, diag1, diag2) -> np.ndarray:
    """Cosine-normalized kernel K(x, x') / sqrt(K(x, x) K(x', x')).

    K: (N1, N2); diag1: (N1,) = K(x_i, x_i); diag2: (N2,). Returns (N1, N2) float64.
    """
    K, d1, d2 = to_numpy(K), to_numpy(diag1), to_numpy(diag2)
    if K.shape != (len(d1), len(d2)):
        raise ValueError(f"kernel {K.shape} does not match diagonals ({len(d1)},), ({len(d2)},)")
    return K / np.sqrt(np.clip(d1, 1e-300, None))[:, None] / np.sqrt(np.clip(d2, 1e-300, None))[None, :]


def kernel_scale(K_train) -> float:
    """The mean diagonal of a raw train x train kernel (N, N).

    Dividing a raw kernel (trNTK⁰) and its test block by this one number only
    rescales the L2 penalty of the kGLM; it keeps the geometry of the raw kernel
    (per-point magnitudes), which is what the normalization claim is about.
    """
    return float(np.mean(np.diag(to_numpy(K_train))))


class _LinearKernelModel:
    """Logits ``K_test @ W.T + b`` of a fitted linear model on kernel features (W (C, N_train), b (C,))."""

    W: np.ndarray
    b: np.ndarray

    def _store(self, model) -> None:
        self.model_, self.classes_ = model, model.classes_
        w, b = model.coef_, model.intercept_
        if w.shape[0] == 1:                                      # binary: p(1) = σ(k·w + b)
            w, b = np.vstack([-w / 2, w / 2]), np.array([-b[0] / 2, b[0] / 2])
        self.W, self.b = w, b                                    # (C, N_train), (C,)

    def logits(self, K_test) -> np.ndarray:
        """K_test: (N_test, N_train) -> logits (N_test, C)."""
        return to_numpy(K_test) @ self.W.T + self.b

    def predict_proba(self, K_test) -> np.ndarray:
        """(N_test, C) softmax probabilities of the logits."""
        z = self.logits(K_test)
        z = z - z.max(1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(1, keepdims=True)

    def predict(self, K_test) -> np.ndarray:
        return self.classes_[self.logits(K_test).argmax(1)]


def _check_fit(K_train, y_train):
    K, y = to_numpy(K_train), to_numpy(y_train).astype(np.int64)
    if K.ndim != 2 or K.shape[0] != len(y):
        raise ValueError(f"K_train must be (N_train, N_train) matching y_train ({len(y)},), got {K.shape}")
    return K, y


@dataclass
class KGLM(_LinearKernelModel):
    """L2-regularized multinomial logistic regression on kernel features.

    ``C`` is the inverse regularization strength of scikit-learn's ``LogisticRegression``.
    After ``fit``: ``W`` (C_classes, N_train) and ``b`` (C_classes,) such that
    ``logits(K_test) = K_test @ W.T + b``. For two classes scikit-learn fits one
    weight vector w; it is stored as W = [-w/2, w/2] (the same probabilities).
    """

    C: float = 1.0
    max_iter: int = 1000
    tol: float = 1e-4
    seed: int = 0

    def fit(self, K_train, y_train) -> "KGLM":
        """K_train: (N_train, N_train) kernel between training points; y_train: (N_train,) labels."""
        K, y = _check_fit(K_train, y_train)
        model = LogisticRegression(C=self.C, max_iter=self.max_iter, tol=self.tol, random_state=self.seed)
        with one_thread():      # one BLAS thread: ~10x faster than the default on 600 x 600 (measured)
            model.fit(K, y)
        self._store(model)
        return self


@dataclass
class SGDKGLM(_LinearKernelModel):
    """The paper code's kGLM: one-vs-rest logistic regression by SGD, balanced class weights.

    ``SGDClassifier(loss="log_loss", penalty="l2", alpha=alpha, class_weight="balanced")``
    as in github pnnl/projection_ntk; ``W``, ``b`` are its one-vs-rest coefficients, and the
    logits used for τ are the decision functions (their notebooks take τ of their softmax).
    """

    alpha: float = 1e-4
    seed: int = 0

    def fit(self, K_train, y_train) -> "SGDKGLM":
        K, y = _check_fit(K_train, y_train)
        model = SGDClassifier(loss="log_loss", penalty="l2", alpha=self.alpha, class_weight="balanced",
                              random_state=self.seed)
        with one_thread():
            model.fit(K, y)
        self._store(model)
        self.n_iter_ = int(np.max(model.n_iter_))               # epochs until its stopping rule (tol) fired
        self.converged_ = self.n_iter_ < model.max_iter          # False: stopped by max_iter, not by tol
        self.train_acc_ = float((self.predict(K) == y).mean())
        return self


def paper_scale(K_train, K_test) -> tuple[np.ndarray, np.ndarray]:
    """A raw kernel divided by the std of its train Gram, as the paper's code does (``K / K.std()``)."""
    K_train, K_test = to_numpy(K_train), to_numpy(K_test)
    s = float(K_train.std())
    return K_train / s, K_test / s


C_GRID = (0.1, 1.0, 10.0, 100.0)


def select_c(K_train, y_train, Cs=C_GRID, folds: int = 3, seed: int = 0) -> tuple[float, pd.DataFrame]:
    """The kGLM's C by stratified ``folds``-fold cross-validation on the training split.

    Each fold fits on K[tr, tr] and scores the validation log-loss on K[va, tr]; the C
    with the lowest mean log-loss wins (ties: the smaller C). Returns (C, table of C
    and mean validation log-loss).
    """
    K, y = _check_fit(K_train, y_train)
    labels = np.unique(y)
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    losses = {C: [] for C in Cs}
    for tr, va in cv.split(K, y):
        for C in Cs:
            m = KGLM(C=C, seed=seed).fit(K[np.ix_(tr, tr)], y[tr])
            losses[C].append(log_loss(y[va], m.predict_proba(K[np.ix_(va, tr)]), labels=labels))
    table = pd.DataFrame({"C": list(Cs), "val_log_loss": [float(np.mean(losses[C])) for C in Cs]})
    best = float(table.sort_values(["val_log_loss", "C"]).iloc[0]["C"])
    return best, table


RECIPES = ("cv", "sgd_1e-4", "sgd_1e-2")


def fit_recipe(recipe: str, K_train, y_train, seed: int = 0, Cs=C_GRID, folds: int = 3):
    """A fitted kGLM by recipe name: ``cv`` (``KGLM`` with C from ``select_c``) or ``sgd_<alpha>``
    (``SGDKGLM``, the paper's). Pass raw kernels through ``paper_scale`` first for ``sgd_*``."""
    if recipe == "cv":
        C = float(Cs[0]) if len(Cs) == 1 else select_c(K_train, y_train, Cs, folds, seed)[0]
        return KGLM(C=C, seed=seed).fit(K_train, y_train)
    if recipe.startswith("sgd_"):
        return SGDKGLM(alpha=float(recipe[4:]), seed=seed).fit(K_train, y_train)
    raise ValueError(f"unknown kGLM recipe {recipe!r}; valid: cv, sgd_<alpha> (e.g. {', '.join(RECIPES)})")


def kernel_svm(K_train, y_train, K_test, C: float = 1.0, seed: int = 0) -> np.ndarray:
    """Predicted labels (N_test,) of an SVM on a precomputed kernel.

    K_train: (N_train, N_train); K_test: (N_test, N_train).
    """
    svm = SVC(kernel="precomputed", C=C, random_state=seed)
    svm.fit(to_numpy(K_train), to_numpy(y_train).astype(np.int64))
    return svm.predict(to_numpy(K_test))


def true_class_prob(logits, y, dtype=torch.float64) -> np.ndarray:
    """Softmax probability of the true class, (N,), computed in ``dtype`` from (N, C) logits.

    float64 by default: logits are upcast before the softmax, so a probability is
    exactly 0 or 1 only when the logit margin exceeds ~37 (float32: ~17).
    """
    z = torch.as_tensor(logits).to(dtype)
    p = torch.softmax(z, dim=1)
    return p[torch.arange(len(p)), torch.as_tensor(y).long()].double().numpy()


def kendall_tau(p_net, p_sur, drop_saturated: bool = True) -> tuple[float, int]:
    """Kendall τ between two (N,) probability vectors; returns (τ, number dropped).

    With ``drop_saturated`` points where either probability is exactly 0 or 1
    are dropped (ties at saturation carry no ranking information).
    """
    a, b = to_numpy(p_net), to_numpy(p_sur)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"need two (N,) vectors of the same length, got {a.shape} and {b.shape}")
    keep = np.ones(len(a), bool)
    if drop_saturated:
        keep = ~((a == 0) | (a == 1) | (b == 0) | (b == 1))
    if keep.sum() < 2:
        return float("nan"), int((~keep).sum())
    tau = kendalltau(a[keep], b[keep]).statistic
    return float(tau), int((~keep).sum())


def true_class_margin(logits, y) -> np.ndarray:
    """The logit of the true-class probability, z_y − log Σ_{c≠y} exp(z_c), (N,) in float64.

    logits: (N, C); y: (N,). p_y = σ(margin), so it ranks points exactly as p_y does, but it
    never saturates: two points whose p_y both round to 1.0 keep their order.
    """
    z = torch.as_tensor(to_numpy(logits))                                   # (N, C) float64
    yy = torch.as_tensor(to_numpy(y, np.int64))
    zy = z[torch.arange(len(z)), yy]
    others = z.scatter(1, yy[:, None], float("-inf"))                       # the true class left out
    return (zy - torch.logsumexp(others, 1)).numpy()


def class1_tau(net_logits, sur_logits) -> float:
    """The paper's binary τ: Kendall τ of the network's P(class 1) against the surrogate's class-1 score.

    net_logits, sur_logits: (N, 2). P(class 1) is ranked through its logit z₁ − z₀ (the same order,
    without float saturation; the paper's notebooks drop points whose float32 sigmoid is exactly 0
    or 1 instead). Unlike ``faithfulness``'s τ this ranks the points of both classes together, so
    it is high whenever network and surrogate both separate the classes.
    """
    a, b = to_numpy(net_logits), to_numpy(sur_logits)
    return float(kendalltau(a[:, 1] - a[:, 0], b[:, 1] - b[:, 0]).statistic)


def bootstrap_weights(n: int, n_boot: int, seed: int = 0) -> np.ndarray:
    """(n_boot, n) multinomial counts of resampling n points with replacement."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64)


def kendall_tau_weighted(a, b, weights) -> np.ndarray:
    """Kendall τ-b of (a, b) on every bootstrap resample given by ``weights``.

    a, b: (N,); weights: (B, N) counts. A resample repeats point i w_i times; copies tie in
    both variables, so τ-b = wᵀ(SₐS_b)w / sqrt(wᵀSₐ²w · wᵀS_b²w) with S the (N, N) pair signs.
    Returns (B,). Equals ``scipy.stats.kendalltau`` on the resampled data.
    """
    a, b, w = to_numpy(a), to_numpy(b), np.atleast_2d(to_numpy(weights))
    sa = np.sign(a[:, None] - a[None, :])                        # (N, N)
    sb = np.sign(b[:, None] - b[None, :])
    quad = lambda M: ((w @ M) * w).sum(1)                        # noqa: E731  (B,) wᵀMw, one GEMM
    return quad(sa * sb) / np.sqrt(quad(sa * sa) * quad(sb * sb))


def faithfulness(net_logits, sur_logits, y, net_pred=None, sur_pred=None) -> dict:
    """Faithfulness of a surrogate to the network on test points.

    net_logits: (N, C) network logits; sur_logits: (N, C) surrogate logits (the kGLM's
    ``logits``); y: (N,) true labels. τ is Kendall's between the two true-class probabilities,
    ranked through their margins (``true_class_margin``), so no point is lost to saturation;
    ``n_saturated`` counts points whose float64 probability (network or surrogate) is exactly
    0 or 1, which a probability-based τ would have to drop. Returns {"tau", "n_saturated",
    "acc_net", "acc_sur", "tad"}.
    """
    y = to_numpy(y).astype(np.int64)
    sur_logits = to_numpy(sur_logits)
    tau = float(kendalltau(true_class_margin(net_logits, y), true_class_margin(sur_logits, y)).statistic)
    p_net, p_sur = true_class_prob(net_logits, y), true_class_prob(sur_logits, y)
    saturated = int(((p_net == 0) | (p_net == 1) | (p_sur == 0) | (p_sur == 1)).sum())
    net_pred = to_numpy(net_logits).argmax(1) if net_pred is None else to_numpy(net_pred)
    sur_pred = sur_logits.argmax(1) if sur_pred is None else to_numpy(sur_pred)
    acc_net, acc_sur = float((net_pred == y).mean()), float((sur_pred == y).mean())
    return {"tau": tau, "n_saturated": saturated, "acc_net": acc_net, "acc_sur": acc_sur, "tad": acc_sur - acc_net}


def summarize(df: pd.DataFrame, by, cols) -> pd.DataFrame:
    """Mean and std (over seeds) of ``cols`` per group ``by``: columns ``<col>_mean``, ``<col>_std``."""
    g = df.groupby(list(by), sort=False)[list(cols)]
    out = g.mean().add_suffix("_mean").join(g.std().add_suffix("_std"))
    order = [f"{c}_{s}" for c in cols for s in ("mean", "std")]
    return out[order].reset_index()


# Kendall τ the paper reports (arXiv 2305.14585, paper scale), for side-by-side tables.
PAPER_TAU = {
    "mnist01_mlp": {"trntk": 0.708},            # NN 99.64 %, kGLM 99.67 %
    "mnist01_cnn": {"trntk": 0.857},
    "cifar10_resnet18": {"trntk": 0.776},       # kGLM accuracy 0.929, R² 0.914
    "cola_bert": {"trntk": 0.809, "proj_trntk": 0.800, "proj_pntk": 0.72, "em": 0.65, "ck": 0.52,
                  "trntk0": 0.53},              # trNTK 0.809 ± 0.009
}
