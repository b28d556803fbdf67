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
``precision_at_k`` and ``detection_auc`` (scikit-learn ``roc_auc_score``).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

from . import data, features, train
from .surrogates import KGLM, faithfulness_table, kernel_scale, normalize, relative_error


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


@torch.no_grad()
def penultimate(model: nn.Module, x: torch.Tensor, head: str = "head", batch_size: int = 512) -> torch.Tensor:
    """(N, D) inputs of the module ``head`` (the penultimate features), model in eval mode."""
    mod = dict(model.named_modules())[head]
    out: list[torch.Tensor] = []
    h = mod.register_forward_pre_hook(lambda _m, inp: out.append(inp[0].flatten(1).float().cpu()))
    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    try:
        for i in range(0, len(x), batch_size):
            model(x[i:i + batch_size].to(dev))
    finally:
        h.remove()
        model.train(was)
    return torch.cat(out)


def ck(model: nn.Module, x1: torch.Tensor, x2: torch.Tensor | None = None, head: str = "head") -> np.ndarray:
    """Conjugate kernel (N1, N2): cosine of the penultimate features."""
    f1 = penultimate(model, x1, head)
    f2 = f1 if x2 is None else penultimate(model, x2, head)
    return normalize(_gram(f1, f2), _sqnorm(f1), _sqnorm(f2))


def loss_grads(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 128,
               dtype: torch.dtype | None = None) -> torch.Tensor:
    """Per-example gradients of the cross-entropy loss w.r.t. all parameters, (N, P), eval mode."""
    from torch.func import functional_call, grad, vmap

    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    params = {k: v.detach().to(dtype) if dtype else v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}

    def loss(p, xi, yi):
        out = functional_call(model, (p, buffers), (xi[None],))   # (1, C)
        return F.cross_entropy(out, yi[None])

    g = vmap(grad(loss), in_dims=(None, 0, 0))
    rows = []
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size].to(dev, dtype or x.dtype)
        gb = g(params, xb, y[i:i + batch_size].to(dev).long())
        rows.append(torch.cat([gb[k].flatten(1) for k in params], 1).cpu())  # (B, P)
    model.train(was)
    return torch.cat(rows)


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
            with torch.no_grad():
                test_labels = model(x_test.to(next(model.parameters()).device)).argmax(1).cpu()
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


def top_examples(scores, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """(supporting (N_test, k), opposing (N_test, k)) training indices: largest and smallest scores."""
    order = np.argsort(-np.asarray(scores), axis=1, kind="stable")
    return order[:, :k], order[:, ::-1][:, :k]


def precision_at_k(scores, is_poison, k: int = 10) -> np.ndarray:
    """(N_test,) fraction of the k highest-scoring training points that are poisoned."""
    top = np.argsort(-np.asarray(scores), axis=1, kind="stable")[:, :k]
    return np.asarray(is_poison, bool)[top].mean(1)


def detection_auc(scores, is_poison) -> np.ndarray:
    """(N_test,) ROC AUC of each test point's scores over training points, poisoned = positive."""
    y = np.asarray(is_poison, bool)
    return np.array([roc_auc_score(y, s) for s in np.asarray(scores)])


def attack_success(pred_triggered, y_true, target: int) -> float:
    """Fraction of triggered test points of non-target classes classified as ``target``."""
    pred, y = np.asarray(pred_triggered), np.asarray(y_true)
    keep = y != target
    return float((pred[keep] == target).mean())


# ------------------------------------------------------------------ the study's drivers
@torch.no_grad()
def logits_of(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(N, C) logits of ``model`` in eval mode, on the CPU."""
    model.eval()
    return model(x.to(next(model.parameters()).device)).cpu()


def projection_error_grid(model, x, suite: dict, proj_dims, seed: int = 0) -> list[dict]:
    """Relative Frobenius error of proj-trNTK / proj-pNTK against the exact kernel vs K.

    Measured on the normalized train x train kernel of the first ``len(x)`` training
    points (x is that slice). K = max(proj_dims) is read from ``suite`` (the projection
    matrix is seeded, so its block on x equals a fresh computation); the others are computed.
    Returns rows {"kernel", "k", "rel_error"}.
    """
    from . import ntk

    n, kmax, rows = len(x), max(proj_dims), []
    for kind in ("trntk", "pntk"):
        if kind not in suite:
            continue
        exact = suite[kind][0][:n, :n]
        for k in sorted(proj_dims):
            name = f"proj_{kind}@{k}"
            if k == kmax and name in suite:
                K = suite[name][0][:n, :n]
            else:
                K = ntk.kernel(model, x, kind=kind, normalize=True, proj_dim=int(k), seed=seed).double().cpu().numpy()
            rows.append({"kernel": kind, "k": int(k), "rel_error": relative_error(K, exact)})
    return rows


def surrogate_study(model, ds, *, proj_dims, n_proj_error: int, C: float = 1.0, svm_c: float = 1.0,
                    seed: int = 0, kinds=KERNELS) -> dict:
    """Every kernel of one trained model, its kGLM/SVM faithfulness and projection errors.

    Kernels are computed once (projections at K = max(proj_dims) for the surrogates).
    Returns {"rows": faithfulness rows, "proj_error": rows, "suite", "kglms", "logits" (N_test, C)}.
    """
    kmax = max(proj_dims)
    suite = kernel_suite(model, ds.x_train, ds.y_train, ds.x_test, proj_dims=(kmax,), seed=seed, kinds=kinds)
    logits = logits_of(model, ds.x_test)
    rows, kglms = faithfulness_table(suite, ds.y_train, ds.y_test, logits, C, svm_c, seed)
    err = projection_error_grid(model, ds.x_train[:n_proj_error], suite, proj_dims, seed)
    return {"rows": rows, "proj_error": err, "suite": suite, "kglms": kglms, "logits": logits}


def poisoning_study(spec: dict, ds, tcfg, *, fraction: float, target: int, trigger_size: int, n_attack: int,
                    topk: int, proj_dim: int, C: float = 1.0, seed: int = 0,
                    kinds=("trntk", "pntk", "em", "ck", "gradcos")) -> dict:
    """Train on a trigger-poisoned copy of ``ds``, then rank training points for triggered test images.

    Attack success is measured on every triggered test image of a non-target class;
    attribution on the first ``n_attack`` of them: each kernel's kGLM (fitted to the
    poisoned training labels the network saw) scores training points by their
    contribution to the logit of the network's predicted class.
    Returns {"clean_acc", "attack_success", "n_poison", "rows" (per kernel: precision_at_k, auc)}.
    """
    pds, idx = data.poison(ds, fraction, target, trigger_size, seed)
    model = train.fit(spec, pds, tcfg, progress=False).model
    clean_acc = float((logits_of(model, ds.x_test).argmax(1) == ds.y_test).float().mean())
    keep = ds.y_test != target
    x_trig = data.add_trigger(ds.x_test[keep], trigger_size, *data.trigger_values(ds))
    pred_trig = logits_of(model, x_trig).argmax(1)
    success = attack_success(pred_trig, ds.y_test[keep], target)
    x_att, pred_att = x_trig[:n_attack], pred_trig[:n_attack]
    suite = kernel_suite(model, pds.x_train, pds.y_train, x_att, proj_dims=(proj_dim,), seed=seed,
                         kinds=kinds, test_labels=pred_att)
    is_poison = np.zeros(len(pds.y_train), bool)
    is_poison[idx] = True
    rows = []
    for name, (K_tr, K_te) in suite.items():
        kglm = KGLM(C=C, seed=seed).fit(K_tr, pds.y_train)
        scores = contributions(K_te, kglm.W, pred_att.numpy())        # (n_attack, N_train)
        rows.append({"kernel": name, "precision_at_k": float(precision_at_k(scores, is_poison, topk).mean()),
                     "auc": float(detection_auc(scores, is_poison).mean())})
    return {"clean_acc": clean_acc, "attack_success": success, "n_poison": int(len(idx)), "rows": rows}


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


# ------------------------------------------------------------------ explain-by-example figure
def explanation_grid(x_test, x_train, rows: list[dict], k: int = 3):
    """An image grid: each test image, then its k supporting and k opposing training images.

    rows: dicts with "test" (index into x_test), "label" (row title), "support" and
    "oppose" (k training indices each), "support_y"/"oppose_y" (labels, optional).
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), 1 + 2 * k, figsize=(1.3 * (1 + 2 * k), 1.5 * len(rows)), squeeze=False)
    img = lambda t: t[0].cpu().numpy() if t.dim() == 3 else t.cpu().numpy()  # noqa: E731
    for r, row in enumerate(rows):
        cells = [("test", x_test[row["test"]], row["label"])]
        for j, i in enumerate(row["support"]):
            cells.append(("+", x_train[i], f"+ y={row.get('support_y', [''] * k)[j]}"))
        for j, i in enumerate(row["oppose"]):
            cells.append(("-", x_train[i], f"- y={row.get('oppose_y', [''] * k)[j]}"))
        for c, (_, im, title) in enumerate(cells):
            ax = axes[r, c]
            ax.imshow(img(im), cmap="gray")
            ax.set_title(title, fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    return fig
