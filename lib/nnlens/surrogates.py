"""Kernel surrogate models of a trained network, and how faithful they are.

A surrogate is a kernel machine fitted on a precomputed kernel between the
network's training points (``K_train``, (N_train, N_train)) and predicted from
the kernel between test and training points (``K_test``, (N_test, N_train)).

- ``KGLM``: the kernel general linear model of Engel et al. 2023 (arXiv
  2305.14585): L2-regularized multinomial logistic regression whose features
  are the rows of the (normalized) train x train kernel, fitted to the TRUE
  labels. Its logits are ``K_test @ W.T + b`` with ``W`` (C, N_train), which is
  what the data attribution of ``nnlens.attribution`` decomposes.
- ``kernel_svm``: a support-vector machine on the precomputed kernel (scikit-learn's
  ``SVC(kernel="precomputed")``).
- Faithfulness (``faithfulness``): Kendall τ between the surrogate's and the
  network's softmax probability of the true class on test points, after dropping
  exactly saturated values (probability exactly 0 or 1), and the test-accuracy
  difference TAD = acc(surrogate) - acc(network). Both probabilities are computed
  in float64 from the logits: a float32 softmax rounds every margin above ~17 to
  exactly 1, float64 only above ~37, so far fewer points are lost as ties.
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
from sklearn.linear_model import LogisticRegression
from sklearn.svm import SVC

from .utils import to_numpy


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


@dataclass
class KGLM:
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
        K, y = to_numpy(K_train), to_numpy(y_train).astype(np.int64)
        if K.ndim != 2 or K.shape[0] != len(y):
            raise ValueError(f"K_train must be (N_train, N_train) matching y_train ({len(y)},), got {K.shape}")
        self.model_ = LogisticRegression(C=self.C, max_iter=self.max_iter, tol=self.tol, random_state=self.seed)
        self.model_.fit(K, y)
        self.classes_ = self.model_.classes_
        w, b = self.model_.coef_, self.model_.intercept_
        if w.shape[0] == 1:                                      # binary: p(1) = σ(k·w + b)
            w, b = np.vstack([-w / 2, w / 2]), np.array([-b[0] / 2, b[0] / 2])
        self.W, self.b = w, b                                    # (C, N_train), (C,)
        return self

    def logits(self, K_test) -> np.ndarray:
        """K_test: (N_test, N_train) -> logits (N_test, C)."""
        return to_numpy(K_test) @ self.W.T + self.b

    def predict_proba(self, K_test) -> np.ndarray:
        """(N_test, C) softmax probabilities."""
        z = self.logits(K_test)
        z = z - z.max(1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(1, keepdims=True)

    def predict(self, K_test) -> np.ndarray:
        return self.classes_[self.logits(K_test).argmax(1)]


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


def faithfulness(net_logits, sur_logits, y, net_pred=None, sur_pred=None) -> dict:
    """Faithfulness of a surrogate to the network on test points.

    net_logits: (N, C) network logits; sur_logits: (N, C) surrogate logits (the
    kGLM's ``logits``); y: (N,) true labels. Both true-class probabilities are
    float64 softmaxes of the logits. Returns {"tau", "n_dropped", "acc_net", "acc_sur", "tad"}.
    """
    y = to_numpy(y).astype(np.int64)
    sur_logits = to_numpy(sur_logits)
    p_net = true_class_prob(net_logits, y)
    p_sur = true_class_prob(sur_logits, y)
    tau, dropped = kendall_tau(p_net, p_sur)
    net_pred = to_numpy(net_logits).argmax(1) if net_pred is None else to_numpy(net_pred)
    sur_pred = sur_logits.argmax(1) if sur_pred is None else to_numpy(sur_pred)
    acc_net, acc_sur = float((net_pred == y).mean()), float((sur_pred == y).mean())
    return {"tau": tau, "n_dropped": dropped, "acc_net": acc_net, "acc_sur": acc_sur, "tad": acc_sur - acc_net}


def evaluate_kernel(K_train, K_test, y_train, y_test, net_logits, C: float = 1.0, svm_c: float = 1.0,
                    seed: int = 0) -> tuple[dict, KGLM]:
    """Fit a kGLM (and an SVM) on one kernel and measure faithfulness; returns (row, kGLM).

    K_train: (N_train, N_train); K_test: (N_test, N_train); net_logits: (N_test, C).
    The row has tau, n_dropped, acc_net, acc_sur (kGLM), tad, acc_svm, tad_svm.
    """
    kglm = KGLM(C=C, seed=seed).fit(K_train, y_train)
    row = faithfulness(net_logits, kglm.logits(K_test), y_test)
    svm_pred = kernel_svm(K_train, y_train, K_test, C=svm_c, seed=seed)
    row["acc_svm"] = float((svm_pred == to_numpy(y_test)).mean())
    row["tad_svm"] = row["acc_svm"] - row["acc_net"]
    return row, kglm


def faithfulness_table(suite: dict, y_train, y_test, net_logits, C: float = 1.0, svm_c: float = 1.0,
                       seed: int = 0) -> tuple[list[dict], dict]:
    """Fit a kGLM and an SVM on every kernel of ``suite`` {name: (K_train, K_test)}.

    Returns (rows, kglms): one row per kernel ({"kernel", tau, n_dropped, acc_net,
    acc_sur, tad, acc_svm, tad_svm}) and the fitted kGLMs by name.
    """
    rows, fitted = [], {}
    for name, (K_tr, K_te) in suite.items():
        row, fitted[name] = evaluate_kernel(K_tr, K_te, y_train, y_test, net_logits, C, svm_c, seed)
        rows.append({"kernel": name, **row})
    return rows, fitted


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
