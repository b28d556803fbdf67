"""Study 02's drivers: eNTK surrogates and data attribution (Engel et al. 2023, arXiv 2305.14585).

The study's kernel and surrogate drivers (poisoning and LDS are in ``attribution``); the reusable pieces live in the
concept modules: kernels (trNTK, pNTK, their projections) in ``nnlens.ntk``, the
baseline kernels (Em, CK, Grad-Cos), the kernel suite and attribution scores in
``nnlens.attribution``, kGLM recipes / SVM surrogates and faithfulness in
``nnlens.surrogates``, the linear datamodeling score in ``nnlens.datamodels``.

Steps the notebook calls in order:

1. ``settings(cfg)``: the 10-class setting and the paper's binary (0 vs 1) settings.
2. ``faithfulness_runs(cfg, settings)``: train each network per seed (cached), compute
   every kernel once, fit a kGLM per recipe (ours with C by cross-validation, the
   paper's SGD one-vs-rest at α = 1e-4 and 1e-2) and a kernel SVM on each, measure τ,
   the paper's binary class-1 τ and TAD, and the projection error against K.
3. ``summarize_faithfulness``, ``paired_tau_table`` (per-seed paired differences of τ
   with a bootstrap CI over test points), ``projection_error_table``.
4. ``attribution.poisoning_runs(cfg, setting)``: trigger-poison, retrain, rank training points for
   the triggered test images the network assigns to the target class.
5. ``attribution.lds_runs(cfg, setting, main_runs)``: beyond the paper, the linear datamodeling score of
   every kernel's kGLM attributions and of TRAK against networks retrained on random halves
   of the training set (``sweeps.run``, cached job by job).
6. ``claims.claims(results, cfg)``: one ledger row per claim (02.1-02.5 the paper's, 02.6-02.8 LDS).

Figures (``figures``): ``plot_tau_tad``, ``plot_tau_paired``, ``plot_tau_binary``,
``plot_projection_error``, ``plot_poisoning``, ``plot_explanations``, ``plot_lds``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ... import attribution, data, models, ntk, surrogates, train, utils

CI_LEVEL = 0.95
# Recipes a verdict needs: an ordering of kernels should not hinge on how the kGLM is regularized,
# so 02.1-02.4 must hold under ours (C by cross-validation) and the paper's (SGD, α = 1e-4).
JUDGED_RECIPES = ("cv", "sgd_1e-4")
NTK_KERNELS = ("trntk", "pntk", "proj_trntk", "proj_pntk")
LDS_KERNELS = ("trntk", "pntk", "trntk0", "proj_trntk", "proj_pntk", "em", "ck", "gradcos")


# ------------------------------------------------------------------ settings
@dataclass(frozen=True)
class Setting:
    """One network to explain: its data, model spec and training budget."""
    ds: data.Dataset
    spec: dict
    epochs: int
    batch_size: int


def train_config(cfg, seed: int, epochs: int | None = None, batch_size: int | None = None) -> train.TrainConfig:
    """The training config of the study for one seed (``epochs``/``batch_size`` default to the 10-class ones)."""
    return train.TrainConfig(epochs=cfg.epochs if epochs is None else epochs, lr=cfg.lr,
                             batch_size=cfg.batch_size if batch_size is None else batch_size, seed=seed,
                             weight_decay=cfg.weight_decay)


def settings(cfg) -> dict[str, Setting]:
    """{name: Setting}: the 10-class setting first (``main_setting``), then one per binary model."""
    ds = data.load(cfg.dataset, cfg.n_train, cfg.n_test, seed=0)
    binary = data.load(cfg.binary_dataset, seed=0)
    out = {f"{ds.name} {cfg.model}": Setting(ds, models.spec_for(cfg.model, ds, width=cfg.width),
                                             cfg.epochs, cfg.batch_size)}
    for name in cfg.binary_models:
        width = cfg.mlp_width if name == "mlp" else cfg.binary_width
        out[f"{binary.name} {name}"] = Setting(binary, models.spec_for(name, binary, width=width),
                                               cfg.binary_epochs, cfg.binary_batch_size)
    return out


def main_setting(sets: dict[str, Setting]) -> str:
    """The name of the 10-class setting (the first one)."""
    return next(iter(sets))


# ------------------------------------------------------------------ one model: kernels, surrogates, projection error
def projection_error_grid(model, x, suite: dict, proj_dims, seed: int = 0) -> list[dict]:
    """Relative Frobenius error of proj-trNTK / proj-pNTK against the exact kernel vs K.

    Measured on the normalized train x train kernel of the first ``len(x)`` training
    points (x is that slice). K = max(proj_dims) is read from ``suite`` (the projection
    matrix is seeded, so its block on x equals a fresh computation); the others are computed.
    Returns rows {"kernel", "k", "rel_error"}.
    """
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
            rows.append({"kernel": kind, "k": int(k), "rel_error": utils.rel_error(K, exact)})
    return rows


def _recipe_kernels(name: str, K_tr, K_te, recipe: str):
    """The kernel blocks a recipe fits on: the paper's SGD recipe divides trNTK⁰ by the train Gram's std."""
    if name == "trntk0" and recipe.startswith("sgd_"):
        return surrogates.paper_scale(K_tr, K_te)
    return K_tr, K_te


def fit_surrogates(suite: dict, y_train, recipes, *, seed: int = 0, Cs=surrogates.C_GRID, folds: int = 3,
                   chosen: dict | None = None) -> dict:
    """{(kernel, recipe): fitted kGLM} for every kernel of ``suite`` {name: (K_train, K_test)}.

    The ``cv`` recipe takes C from ``chosen`` {kernel: C} when given (cross-validated on
    another seed's network), else cross-validates over ``Cs`` and records its choice there.
    """
    out = {}
    for name, (K_tr, K_te) in suite.items():
        for r in recipes:
            Ktr = _recipe_kernels(name, K_tr, K_te, r)[0]
            if r == "cv" and chosen is not None and name in chosen:
                out[(name, r)] = surrogates.KGLM(C=chosen[name], seed=seed).fit(Ktr, y_train)
            else:
                out[(name, r)] = surrogates.fit_recipe(r, Ktr, y_train, seed, Cs, folds)
                if r == "cv" and chosen is not None:
                    chosen[name] = out[(name, r)].C
    return out


def surrogate_study(model, ds, cfg, seed: int, chosen: dict | None = None, proj_error: bool = True) -> dict:
    """Every kernel of one trained model, its kGLMs (per recipe) and SVM, faithfulness and projection errors.

    Kernels are computed once (projections at K = max(cfg.proj_dims) for the surrogates);
    ``chosen`` {kernel: C} fixes the ``cv`` recipe's C (see ``fit_surrogates``); ``proj_error=False``
    skips the projection-error grid (only the 10-class setting's enters a claim).
    Returns {"rows": one per (kernel, recipe), "proj_error": rows, "suite", "kglms"
    {(kernel, recipe): model}, "logits" (N_test, C), "p_net" (N_test,), "p_sur" {(kernel, recipe): (N_test,)}}.
    """
    kmax = max(cfg.proj_dims)
    suite = attribution.kernel_suite(model, ds.x_train, ds.y_train, ds.x_test, proj_dims=(kmax,), seed=seed)
    logits = utils.forward(model, ds.x_test)
    kglms = fit_surrogates(suite, ds.y_train, cfg.recipes, seed=seed, Cs=cfg.kglm_cs, folds=cfg.cv_folds,
                           chosen=chosen)
    binary = logits.shape[1] == 2
    rows, p_sur = [], {}
    for name, (K_tr, K_te) in suite.items():
        svm_pred = surrogates.kernel_svm(K_tr, ds.y_train, K_te, C=cfg.svm_c, seed=seed)
        acc_svm = float((svm_pred == ds.y_test.numpy()).mean())
        for r in cfg.recipes:
            kg = kglms[(name, r)]
            z = kg.logits(_recipe_kernels(name, K_tr, K_te, r)[1])            # (N_test, C)
            row = surrogates.faithfulness(logits, z, ds.y_test)
            p_sur[(name, r)] = surrogates.true_class_margin(z, ds.y_test)
            row.update(kernel=name, recipe=r, C=getattr(kg, "C", np.nan), acc_svm=acc_svm,
                       tau_class1=surrogates.class1_tau(logits, z) if binary else np.nan)
            rows.append(row)
    err = projection_error_grid(model, ds.x_train[:cfg.n_proj_error], suite, cfg.proj_dims, seed) if proj_error else []
    return {"rows": rows, "proj_error": err, "suite": suite, "kglms": kglms, "logits": logits,
            "p_net": surrogates.true_class_margin(logits, ds.y_test), "p_sur": p_sur}


def n_saturated(logits, y, dtype) -> int:
    """Test points whose softmax probability of the true class is exactly 0 or 1 in ``dtype``."""
    p = surrogates.true_class_prob(logits, y, dtype=dtype)
    return int(((p == 0) | (p == 1)).sum())


def faithfulness_runs(cfg, sets: dict[str, Setting]) -> dict:
    """Train every setting's network per seed (cached) and run ``surrogate_study`` on it.

    Returns {"faith": one row per (setting, seed, kernel, recipe), "proj_error": one row per
    (setting, seed, kernel, K), "nets": one row per (setting, seed), "net_table": mean and
    std per setting, "probs": {(setting, seed): {"net": (N_test,), (kernel, recipe): (N_test,)}} of
    true-class margins,
    "main_runs": {seed: surrogate study of the 10-class setting, with its "model"}}.
    """
    main = main_setting(sets)
    faith, proj_err, nets, probs, main_runs = [], [], [], {}, {}
    for name, s in sets.items():
        chosen: dict = {}      # C per kernel, cross-validated on the first seed's network, reused for the others
        for seed in cfg.seeds:
            fit = train.fit(s.spec, s.ds, train_config(cfg, seed, s.epochs, s.batch_size), progress=False)
            r = surrogate_study(fit.model, s.ds, cfg, seed, chosen, proj_error=name == main)
            faith += [{"setting": name, "seed": seed, **row} for row in r["rows"]]
            proj_err += [{"setting": name, "seed": seed, **row} for row in r["proj_error"]]
            nets.append({"setting": name, "seed": seed, "n_train": len(s.ds.y_train), "n_test": len(s.ds.y_test),
                         "train_acc": fit.final["train_acc"], "test_acc": fit.final["test_acc"],
                         "saturated_float32": n_saturated(r["logits"], s.ds.y_test, torch.float32),
                         "saturated_float64": n_saturated(r["logits"], s.ds.y_test, torch.float64)})
            probs[(name, seed)] = {"net": r["p_net"], **r["p_sur"]}
            if name == main:
                main_runs[seed] = dict(r, model=fit.model)
    nets = pd.DataFrame(nets)
    net_table = nets.groupby("setting", sort=False).agg(
        n_train=("n_train", "first"), n_test=("n_test", "first"), train_acc_mean=("train_acc", "mean"),
        train_acc_std=("train_acc", "std"), test_acc_mean=("test_acc", "mean"), test_acc_std=("test_acc", "std"),
        saturated_float32=("saturated_float32", "mean"),
        saturated_float64=("saturated_float64", "mean")).reset_index()
    faith = pd.DataFrame(faith)
    cols = ["setting", "seed", "kernel", "recipe", "C", "tau", "tau_class1", "n_saturated", "acc_net", "acc_sur",
            "tad", "acc_svm"]
    return {"faith": faith[cols], "proj_error": pd.DataFrame(proj_err), "nets": nets, "net_table": net_table,
            "probs": probs, "main_runs": main_runs}


# Kendall τ the paper printed, and which quantity it is (arXiv 2305.14585 notebooks, github
# pnnl/projection_ntk): on MNIST 0-vs-1 and BERT/COLA (binary tasks) τ is of the network's
# P(class 1) against the kGLM's class-1 score (``tau_class1`` here); on CIFAR-10 of the
# probability of the true class (``tau``).
PAPER_TAU_CLASS1 = {"mlp": surrogates.PAPER_TAU["mnist01_mlp"], "cnn": surrogates.PAPER_TAU["mnist01_cnn"]}
PAPER_TAU_TRUE_CLASS = surrogates.PAPER_TAU["cifar10_resnet18"]


def summarize_faithfulness(faith: pd.DataFrame, net_table: pd.DataFrame, cfg, sets: dict[str, Setting]) -> pd.DataFrame:
    """Mean and std over seeds per (setting, kernel, recipe), with the paper's printed τ beside the same quantity.

    ``paper_tau`` (10-class setting, true-class τ) is the paper's CIFAR-10 ResNet-18 number;
    ``paper_tau_class1`` (binary settings, class-1 τ, paper's recipe rows only) its MNIST 0-vs-1
    number for the same model type; ``paper_tau_cola`` its BERT/COLA class-1 τ per kernel.
    """
    kmax = max(cfg.proj_dims)
    summary = surrogates.summarize(faith, ["setting", "kernel", "recipe"],
                                   ["tau", "tau_class1", "tad", "acc_sur", "acc_svm", "n_saturated"])
    summary.insert(3, "n_test", summary["setting"].map(net_table.set_index("setting")["n_test"]))
    summary.insert(4, "C_median", faith.groupby(["setting", "kernel", "recipe"], sort=False)["C"].median().to_numpy())
    main = main_setting(sets)
    base = summary["kernel"].str.replace(f"@{kmax}", "", regex=False)
    is_main, paper_recipe = summary["setting"] == main, summary["recipe"] == "sgd_1e-4"
    summary["paper_tau"] = np.where(is_main & paper_recipe, base.map(PAPER_TAU_TRUE_CLASS).astype(float), np.nan)
    model = summary["setting"].str.split().str[-1]
    summary["paper_tau_class1"] = [PAPER_TAU_CLASS1.get(m, {}).get(k, np.nan) if (not im and pr) else np.nan
                                   for m, k, im, pr in zip(model, base, is_main, paper_recipe)]
    summary["paper_tau_cola"] = np.where(~is_main & paper_recipe,
                                         base.map(surrogates.PAPER_TAU["cola_bert"]).astype(float), np.nan)
    return summary


def paired_tau(probs: dict, setting: str, seeds, a: str, b: str, recipe: str, weights: np.ndarray) -> dict:
    """τ(a) − τ(b) per seed on the same test points, and its mean over seeds on every bootstrap resample.

    probs: as ``faithfulness_runs`` returns it; weights: (B, N_test) resample counts
    (``surrogates.bootstrap_weights``), shared by every pair so CIs are comparable.
    probs holds true-class margins (never saturated), so every test point counts.
    Returns {"diff": mean over seeds, "lo", "hi": CI_LEVEL percentile interval, "per_seed": [...]}.
    """
    per_seed, boot = [], []
    w = np.vstack([np.ones((1, weights.shape[1])), weights])                       # (1 + B, N): row 0 = the data
    for seed in seeds:
        p = probs[(setting, seed)]
        pn, pa, pb = p["net"], p[(a, recipe)], p[(b, recipe)]
        d = surrogates.kendall_tau_weighted(pn, pa, w) - surrogates.kendall_tau_weighted(pn, pb, w)
        per_seed.append(float(d[0]))
        boot.append(d[1:])
    boot = np.mean(boot, axis=0)
    q = (1 - CI_LEVEL) / 2
    return {"diff": float(np.mean(per_seed)), "lo": float(np.quantile(boot, q)), "hi": float(np.quantile(boot, 1 - q)),
            "per_seed": per_seed}


def paired_tau_table(runs: dict, cfg, sets: dict[str, Setting]) -> pd.DataFrame:
    """Paired τ differences with bootstrap CIs: trNTK against every other kernel, proj-trNTK against trNTK.

    One row per (setting, recipe, kernel a, kernel b); the 10-class setting gets every pair,
    the binary settings trNTK vs trNTK⁰ only (claim 02.3).
    """
    kmax = max(cfg.proj_dims)
    main = main_setting(sets)
    rows = []
    for name, s in sets.items():
        w = surrogates.bootstrap_weights(len(s.ds.y_test), cfg.n_boot, seed=0)
        pairs = [("trntk", k) for k in ("trntk0", "pntk", "em", "ck", "gradcos")] + [(f"proj_trntk@{kmax}", "trntk")]
        for r in cfg.recipes:
            for a, b in (pairs if name == main else [("trntk", "trntk0")]):
                d = paired_tau(runs["probs"], name, cfg.seeds, a, b, r, w)
                rows.append({"setting": name, "recipe": r, "a": a, "b": b, "diff": d["diff"], "lo": d["lo"],
                             "hi": d["hi"], "per_seed": " ".join(f"{v:+.3f}" for v in d["per_seed"])})
    return pd.DataFrame(rows)


def projection_error_table(proj_err: pd.DataFrame, setting: str) -> pd.DataFrame:
    """Mean and std over seeds of the projection error per (kernel, K) on ``setting``, with the log-log slope."""
    err = proj_err[proj_err["setting"] == setting].groupby(["kernel", "k"], as_index=False)["rel_error"].agg(
        ["mean", "std"])
    slopes = {kind: utils.loglog_slope(g["k"], g["mean"]) for kind, g in err.groupby("kernel")}
    err["slope"] = err["kernel"].map(slopes)
    return err


LABEL = {"trak": "TRAK", "trntk": "trNTK", "trntk0": "trNTK⁰", "pntk": "pNTK", "em": "Em", "ck": "CK", "gradcos": "Grad-Cos",
         "proj_trntk": "proj-trNTK", "proj_pntk": "proj-pNTK"}


def label(kernel: str) -> str:
    """A kernel's paper name: ``proj_trntk@512`` -> ``proj-trNTK@512``."""
    base, _, k = kernel.partition("@")
    return LABEL.get(base, base) + (f"@{k}" if k else "")


# ------------------------------------------------------------------ attribution runs and figures (own modules, exported here)
