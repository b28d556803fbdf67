"""Explain-by-example from kernel surrogates, baseline kernels, poisoning detection.

Follows Engel et al. 2023, "Faithful and efficient explanations for neural
networks via neural tangent kernel surrogate models" (arXiv 2305.14585).

Baseline kernels (all cosine-normalized, (N1, N2)):
- ``em``: embedding kernel, Σ_layers ⟨a_l(x), a_l(x')⟩ over the flattened
  activations of the model's taps (``features.activations``).
- ``ck``: conjugate kernel, ⟨φ(x), φ(x')⟩ of the penultimate features φ (the input of ``head``).
- ``gradcos``: cosine of per-example loss gradients w.r.t. all parameters
  (TracIn-like; it uses labels), per-example gradients by ``torch.func.vmap(grad)``.

``kernel_suite`` computes every kernel of the study for one model once
(train x train and test x train) so all surrogates reuse them.

Attribution of a kGLM prediction (``contributions``): the logit of the
predicted class is Σ_i K(x, x_i) W[pred, i] + b, so training point i
contributes K(x, x_i) W[pred, i]. Positive = supporting, negative = opposing.
Poisoning detection ranks training points by that contribution:
``precision_at_k`` and ``detection_auc`` (Mann-Whitney form of the ROC AUC, checked against scikit-learn).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy.stats import rankdata

from . import features, utils
from .surrogates import kernel_scale, normalize


# ------------------------------------------------------------------ baseline kernels
def _gram(a1: torch.Tensor, a2: torch.Tensor) -> np.ndarray:
    return (a1.double() @ a2.double().T).numpy()                  # (N1, N2)


def _sqnorm(a: torch.Tensor) -> np.ndarray:
    return (a.double() ** 2).sum(1).numpy()                       # (N,)


def em(model: nn.Module, x1: torch.Tensor, x2: torch.Tensor | None = None, taps=None) -> np.ndarray:
    """Embedding kernel (N1, N2): Σ_l ⟨a_l(x), a_l(x')⟩ over ``taps``, cosine-normalized."""
    a1 = features.activations(model, x1, taps)
    a2 = a1 if x2 is None else features.activations(model, x2, taps)
    K = sum(_gram(a1[t], a2[t]) for t in a1)
    d1 = sum(_sqnorm(a1[t]) for t in a1)
    d2 = d1 if x2 is None else sum(_sqnorm(a2[t]) for t in a2)
    return normalize(K, d1, d2)


def penultimate(model: nn.Module, x: torch.Tensor, head: str = "head", batch_size: int = 512) -> torch.Tensor:
    """(N, D) inputs of the module ``head`` (the penultimate features), model in eval mode."""
    mod = dict(model.named_modules())[head]
    out: list[torch.Tensor] = []
    h = mod.register_forward_pre_hook(lambda _m, inp: out.append(inp[0].flatten(1).float().cpu()))
    try:
        utils.forward(model, x, batch_size)
    finally:
        h.remove()
    return torch.cat(out)


def ck(model: nn.Module, x1: torch.Tensor, x2: torch.Tensor | None = None, head: str = "head") -> np.ndarray:
    """Conjugate kernel (N1, N2): cosine of the penultimate features."""
    f1 = penultimate(model, x1, head)
    f2 = f1 if x2 is None else penultimate(model, x2, head)
    return normalize(_gram(f1, f2), _sqnorm(f1), _sqnorm(f2))


def loss_grads(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
    """Per-example gradients of the cross-entropy loss w.r.t. all parameters, (N, P), eval mode."""
    return utils.per_example_grads(model, x, _ce, y.long(), batch_size=batch_size)


def _ce(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(out[None], y[None])                     # out (C,), y () -> scalar


def gradcos(model: nn.Module, x1, y1, x2=None, y2=None, batch_size: int = 128) -> np.ndarray:
    """Grad-Cos kernel (N1, N2): cosine of per-example loss gradients (labels y1, y2)."""
    g1 = loss_grads(model, x1, y1, batch_size)
    g2 = g1 if x2 is None else loss_grads(model, x2, y2, batch_size)
    return normalize(_gram(g1, g2), _sqnorm(g1), _sqnorm(g2))


# ------------------------------------------------------------------ the study's kernel suite
def ntk_blocks(model, x_train, x_test, kind: str, proj_dim=None, seed: int = 0) -> dict:
    """One NTK kind between training and test points from a single engine call.

    ``ntk.kernel`` runs once on [x_train; x_test] (raw, unnormalized), so the
    per-example gradients are formed once and the diagonals of both blocks come
    for free. Returns {"norm": (K_train, K_test), "raw": (K_train, K_test)} with
    K_train (N_train, N_train) and K_test (N_test, N_train); "norm" is
    cosine-normalized, "raw" is divided by the mean train diagonal
    (``surrogates.kernel_scale``: this only rescales the kGLM's penalty).
    """
    from . import ntk

    n = len(x_train)
    K = ntk.kernel(model, torch.cat([x_train, x_test]), kind=kind, normalize=False,
                   proj_dim=proj_dim, seed=seed)                       # (N_train + N_test, same)
    K = K.double().cpu().numpy()
    d = np.diag(K)
    Kn = normalize(K, d, d)
    s = kernel_scale(K[:n, :n])
    return {"norm": (Kn[:n, :n], Kn[n:, :n]), "raw": (K[:n, :n] / s, K[n:, :n] / s)}


KERNELS = ("trntk", "trntk0", "pntk", "proj_trntk", "proj_pntk", "em", "ck", "gradcos")


def kernel_suite(model, x_train, y_train, x_test, proj_dims=(), seed: int = 0, test_labels=None,
                 kinds=KERNELS) -> dict:
    """{name: (K_train (N_train, N_train), K_test (N_test, N_train))}, each computed once.

    Projection variants are named ``proj_trntk@K`` / ``proj_pntk@K`` for K in ``proj_dims``;
    ``trntk`` and ``trntk0`` share one engine call. Grad-Cos needs labels on test
    points: ``test_labels`` (default: the network's predictions, so no true test
    label leaks into a surrogate).
    """
    bad = set(kinds) - set(KERNELS)
    if bad:
        raise ValueError(f"unknown kernel(s) {sorted(bad)}; valid: {', '.join(KERNELS)}")
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if "trntk" in kinds or "trntk0" in kinds:
        b = ntk_blocks(model, x_train, x_test, "trntk", seed=seed)
        if "trntk" in kinds:
            out["trntk"] = b["norm"]
        if "trntk0" in kinds:
            out["trntk0"] = b["raw"]
    if "pntk" in kinds:
        out["pntk"] = ntk_blocks(model, x_train, x_test, "pntk", seed=seed)["norm"]
    for kind in ("proj_trntk", "proj_pntk"):
        if kind in kinds:
            for k in proj_dims:
                out[f"{kind}@{k}"] = ntk_blocks(model, x_train, x_test, kind[5:], int(k), seed)["norm"]
    if "em" in kinds:
        K = em(model, torch.cat([x_train, x_test]))
        out["em"] = (K[:len(x_train), :len(x_train)], K[len(x_train):, :len(x_train)])
    if "ck" in kinds:
        f_tr, f_te = penultimate(model, x_train), penultimate(model, x_test)  # each forward pass once
        n_tr = _sqnorm(f_tr)
        out["ck"] = (normalize(_gram(f_tr, f_tr), n_tr, n_tr), normalize(_gram(f_te, f_tr), _sqnorm(f_te), n_tr))
    if "gradcos" in kinds:
        if test_labels is None:
            test_labels = utils.forward(model, x_test).argmax(1)
        g_tr, g_te = loss_grads(model, x_train, y_train), loss_grads(model, x_test, test_labels)
        n_tr, n_te = _sqnorm(g_tr), _sqnorm(g_te)
        out["gradcos"] = (normalize(_gram(g_tr, g_tr), n_tr, n_tr), normalize(_gram(g_te, g_tr), n_te, n_tr))
    return out


# ------------------------------------------------------------------ attribution
def contributions(K_test, W, pred) -> np.ndarray:
    """Per-training-point contribution to the predicted logit, (N_test, N_train).

    K_test: (N_test, N_train); W: (C, N_train) kGLM coefficients; pred: (N_test,) predicted classes.
    contribution[j, i] = K(x_j, x_i) * W[pred_j, i].
    """
    K = np.asarray(K_test, dtype=np.float64)
    return K * np.asarray(W, dtype=np.float64)[np.asarray(pred, dtype=np.int64)]


def margin_contributions(K_test, W, b, y) -> np.ndarray:
    """Per-training-point contribution to the kGLM's true-class margin, (N_test, N_train).

    The kGLM's logits are z = K_test W^T + b (W (C, N_train), b (C,)); the margin of the true
    class y is m = z_y − log Σ_{c≠y} exp z_c. Training point i adds K(x, x_i) W[:, i] to z, so to
    first order it adds K(x, x_i) (W[y, i] − Σ_{c≠y} q_c W[c, i]) to m, with q the softmax of
    the other classes' logits. This is the attribution the linear datamodeling score judges
    (``nnlens.datamodels``). K_test: (N_test, N_train); y: (N_test,) labels.
    """
    K, W = np.asarray(K_test, dtype=np.float64), np.asarray(W, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    z = K @ W.T + np.asarray(b, dtype=np.float64)                  # (N_test, C)
    z[np.arange(len(y)), y] = -np.inf
    q = np.exp(z - z.max(1, keepdims=True))
    q /= q.sum(1, keepdims=True)                                   # (N_test, C), 0 at the true class
    return K * (W[y] - q @ W)                                      # (N_test, N_train)


def top_examples(scores, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """(supporting (N_test, k), opposing (N_test, k)) training indices: largest and smallest scores."""
    order = np.argsort(-np.asarray(scores), axis=1, kind="stable")
    return order[:, :k], order[:, ::-1][:, :k]


def precision_at_k(scores, is_poison, k: int = 10) -> np.ndarray:
    """(N_test,) fraction of the k highest-scoring training points that are poisoned."""
    top = np.argsort(-np.asarray(scores), axis=1, kind="stable")[:, :k]
    return np.asarray(is_poison, bool)[top].mean(1)


def detection_auc(scores, is_poison) -> np.ndarray:
    """(N_test,) ROC AUC of each test point's scores over training points, poisoned = positive.

    The Mann-Whitney form, AUC = (Σ ranks of positives − n₊(n₊+1)/2) / (n₊ n₋) with tied
    scores given their average rank, for every row at once: the same number as scikit-learn's
    ``roc_auc_score`` row by row (tested), without its per-call overhead.
    """
    y = np.asarray(is_poison, bool)
    s = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("detection_auc needs both poisoned and clean training points")
    ranks = rankdata(s, axis=1)                                    # (N_test, N_train), ties averaged
    return (ranks[:, y].sum(1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def attack_success(pred_triggered, y_true, target: int) -> float:
    """Fraction of triggered test points of non-target classes classified as ``target``."""
    pred, y = np.asarray(pred_triggered), np.asarray(y_true)
    keep = y != target
    return float((pred[keep] == target).mean())


# ------------------------------------------------------------------ explain-by-example
def explain_rows(suite: dict, kglms: dict, pred, y_train, test_idx, kernels=("trntk", "em"), k: int = 3) -> list[dict]:
    """Rows for ``explanation_grid``: per test index and kernel, the k most supporting/opposing training points."""
    y_train = np.asarray(y_train)
    rows = []
    for j in test_idx:
        for name in kernels:
            kg = kglms[name]
            s = contributions(suite[name][1][[j]], kg.W, np.asarray(pred)[[j]])
            sup, opp = top_examples(s, k)
            rows.append({"test": int(j), "label": f"{name}: pred {int(np.asarray(pred)[j])}",
                         "support": sup[0], "oppose": opp[0],
                         "support_y": y_train[sup[0]].tolist(), "oppose_y": y_train[opp[0]].tolist()})
    return rows
