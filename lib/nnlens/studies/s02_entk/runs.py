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

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ... import attribution, data, models, surrogates, train, utils
from .config import Study02
from .faith import main_setting, projection_error_draws
from .retrain import ten_class

# The recipe verdicts 02.1-02.4 rest on: the converged, cross-validated kGLM (deterministic). The paper's SGD
# recipe stops early (its tol rule) below the network's training accuracy and moves with its random_state, so it
# is reported beside, as mean ± sd over ``sgd_draws`` random_states with that spread inside its CIs.
JUDGED_RECIPES = ("cv",)
PAPER_RECIPE = "sgd_1e-4"
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


def train_config(cfg: Study02, seed: int, epochs: int | None = None,
                 batch_size: int | None = None) -> train.TrainConfig:
    """The training config of the study for one seed (``epochs``/``batch_size`` default to the 10-class ones)."""
    return train.TrainConfig(epochs=cfg.epochs if epochs is None else epochs, lr=cfg.lr,
                             batch_size=cfg.batch_size if batch_size is None else batch_size, seed=seed,
                             weight_decay=cfg.weight_decay)


def settings(cfg: Study02) -> dict[str, Setting]:
    """{name: Setting}: the 10-class setting first (``main_setting``), then one per binary model."""
    ds = ten_class(cfg.dataset, cfg.n_train, cfg.n_test, cfg.pool)           # the LDS retraining jobs' data too
    binary = data.load(cfg.binary_dataset, seed=0)
    out = {f"{ds.name} {cfg.model}": Setting(ds, models.spec_for(cfg.model, ds, width=cfg.width),
                                             cfg.epochs, cfg.batch_size)}
    for name in cfg.binary_models:
        width = cfg.mlp_width if name == "mlp" else cfg.binary_width
        out[f"{binary.name} {name}"] = Setting(binary, models.spec_for(name, binary, width=width),
                                               cfg.binary_epochs, cfg.binary_batch_size)
    return out


# ------------------------------------------------------------------ one model: kernels, surrogates
def _recipe_kernels(name: str, K_tr, K_te, recipe: str):
    """The kernel blocks a recipe fits on: the paper's SGD recipe divides trNTK⁰ by the train Gram's std."""
    if name == "trntk0" and recipe.startswith("sgd_"):
        return surrogates.paper_scale(K_tr, K_te)
    return K_tr, K_te


def fit_surrogates(suite: dict, y_train, recipes, *, seed: int = 0, Cs=surrogates.C_GRID, folds: int = 3,
                   chosen: dict | None = None, draws: int = 1) -> dict:
    """{(kernel, recipe): fitted kGLM} for every kernel of ``suite`` {name: (K_train, K_test)}.

    The ``cv`` recipe takes C from ``chosen`` {kernel: C} when given (cross-validated on
    another seed's network), else cross-validates over ``Cs`` and records its choice there; it is
    deterministic. Each ``sgd_*`` recipe is fitted at ``draws`` optimizer random_states
    ``100 * seed + d``: draw 0 under (kernel, recipe), the others under (kernel, recipe, d).
    """
    out = {}
    for name, (K_tr, K_te) in suite.items():
        for r in recipes:
            Ktr = _recipe_kernels(name, K_tr, K_te, r)[0]
            if r == "cv" and chosen is not None and name in chosen:
                out[(name, r)] = surrogates.KGLM(C=chosen[name], seed=seed).fit(Ktr, y_train)
            elif r == "cv":
                out[(name, r)] = surrogates.fit_recipe(r, Ktr, y_train, seed, Cs, folds)
                if chosen is not None:
                    chosen[name] = out[(name, r)].C
            else:
                for d in range(draws):
                    key = (name, r) if d == 0 else (name, r, d)
                    out[key] = surrogates.fit_recipe(r, Ktr, y_train, 100 * seed + d, Cs, folds)
    return out


def kglm_draws(kglms: dict, name: str, recipe: str) -> list:
    """The fitted kGLMs of one (kernel, recipe), draw 0 first."""
    extra = sorted((k[2], m) for k, m in kglms.items() if len(k) == 3 and k[:2] == (name, recipe))
    return [kglms[(name, recipe)]] + [m for _, m in extra]


def nuisance(cfg: Study02, seed: int) -> int:
    """The seed of everything random in a surrogate fit but the network: the training seed at
    ``nuisance_seed`` 0 (the published numbers), moved by 1000 per step of ``nuisance_seed``."""
    return int(seed) + 1000 * int(cfg.nuisance_seed)


def surrogate_study(model, ds, cfg: Study02, seed: int, chosen: dict | None = None) -> dict:
    """Every kernel of one trained model, its kGLMs (per recipe and optimizer draw) and SVM, faithfulness.

    Kernels are computed once (projections at K = max(cfg.proj_dims)); ``chosen`` {kernel: C}
    fixes the ``cv`` recipe's C (see ``fit_surrogates``). Returns {"rows": one per (kernel,
    recipe, draw), "suite", "kglms", "logits" (N_test, C), "p_net" (N_test,), "p_sur" {(kernel,
    recipe, draw): (N_test,)} true-class margins, "seconds": the kernel suite's time}.
    """
    kmax = max(cfg.proj_dims)
    ns = nuisance(cfg, seed)                   # projection matrix, kGLM random_states, SVM: apart from the network
    t0 = time.perf_counter()
    suite = attribution.kernel_suite(model, ds.x_train, ds.y_train, ds.x_test, proj_dims=(kmax,), seed=ns)
    seconds = time.perf_counter() - t0
    logits = utils.forward(model, ds.x_test)
    kglms = fit_surrogates(suite, ds.y_train, cfg.recipes, seed=ns, Cs=cfg.kglm_cs, folds=cfg.cv_folds,
                           chosen=chosen, draws=cfg.sgd_draws)
    binary = logits.shape[1] == 2
    rows, p_sur = [], {}
    for name, (K_tr, K_te) in suite.items():
        svm_pred = surrogates.kernel_svm(K_tr, ds.y_train, K_te, C=cfg.svm_c, seed=ns)
        acc_svm = float((svm_pred == ds.y_test.numpy()).mean())
        for r in cfg.recipes:
            for d, kg in enumerate(kglm_draws(kglms, name, r)):
                z = kg.logits(_recipe_kernels(name, K_tr, K_te, r)[1])            # (N_test, C)
                row = surrogates.faithfulness(logits, z, ds.y_test)
                p_sur[(name, r, d)] = surrogates.true_class_margin(z, ds.y_test)
                row.update(kernel=name, recipe=r, draw=d, C=getattr(kg, "C", np.nan), acc_svm=acc_svm,
                           n_iter=getattr(kg, "n_iter_", np.nan), converged=getattr(kg, "converged_", True),
                           train_acc_sur=getattr(kg, "train_acc_", np.nan),
                           tau_class1=surrogates.class1_tau(logits, z) if binary else np.nan)
                rows.append(row)
    return {"rows": rows, "suite": suite, "kglms": kglms, "logits": logits, "seconds": seconds,
            "p_net": surrogates.true_class_margin(logits, ds.y_test), "p_sur": p_sur}


def n_saturated(logits, y, dtype) -> int:
    """Test points whose softmax probability of the true class is exactly 0 or 1 in ``dtype``."""
    p = surrogates.true_class_prob(logits, y, dtype=dtype)
    return int(((p == 0) | (p == 1)).sum())


def faithfulness_runs(cfg: Study02, sets: dict[str, Setting]) -> dict:
    """Train every setting's network per seed (cached) and run ``surrogate_study`` on it.

    Returns {"faith": one row per (setting, seed, kernel, recipe, draw), "proj_error": one row per
    (kernel, K, draw) on the first seed's 10-class network (``faith.projection_error_draws``),
    "nets": one row per (setting, seed), "net_table": mean and std per setting, "probs":
    {(setting, seed): {"net": (N_test,), (kernel, recipe, draw): (N_test,)}} of true-class margins,
    "main_runs": {seed: surrogate study of the 10-class setting, with its "model" and "train_seconds"}}.
    """
    main = main_setting(sets)
    faith, proj_err, nets, probs, main_runs = [], [], [], {}, {}
    for name, s in sets.items():
        chosen: dict = {}      # C per kernel, cross-validated on the first seed's network, reused for the others
        for seed in cfg.seeds:
            fit = train.fit(s.spec, s.ds, train_config(cfg, seed, s.epochs, s.batch_size), progress=False)
            r = surrogate_study(fit.model, s.ds, cfg, seed, chosen)
            faith += [{"setting": name, "seed": seed, **row} for row in r["rows"]]
            nets.append({"setting": name, "seed": seed, "n_train": len(s.ds.y_train), "n_test": len(s.ds.y_test),
                         "train_acc": fit.final["train_acc"], "test_acc": fit.final["test_acc"],
                         "saturated_float32": n_saturated(r["logits"], s.ds.y_test, torch.float32),
                         "saturated_float64": n_saturated(r["logits"], s.ds.y_test, torch.float64)})
            probs[(name, seed)] = {"net": r["p_net"], **r["p_sur"]}
            if name == main:
                main_runs[seed] = dict(r, model=fit.model, train_seconds=float(fit.final.get("seconds", np.nan)))
                if seed == cfg.seeds[0]:
                    proj_err = projection_error_draws(fit.model, s.ds.x_train[:cfg.n_proj_error],
                                                      cfg.proj_error_dims, cfg.proj_error_draws,
                                                      seed0=nuisance(cfg, 1))
    nets = pd.DataFrame(nets)
    net_table = nets.groupby("setting", sort=False).agg(
        n_train=("n_train", "first"), n_test=("n_test", "first"), train_acc_mean=("train_acc", "mean"),
        train_acc_std=("train_acc", "std"), test_acc_mean=("test_acc", "mean"), test_acc_std=("test_acc", "std"),
        saturated_float32=("saturated_float32", "mean"),
        saturated_float64=("saturated_float64", "mean")).reset_index()
    cols = ["setting", "seed", "kernel", "recipe", "draw", "C", "n_iter", "converged", "train_acc_sur", "tau",
            "tau_class1", "n_saturated", "acc_net", "acc_sur", "tad", "acc_svm"]
    return {"faith": pd.DataFrame(faith)[cols], "proj_error": pd.DataFrame(proj_err), "nets": nets,
            "net_table": net_table, "probs": probs, "main_runs": main_runs}


# Kendall τ the paper printed, and which quantity it is (arXiv 2305.14585 notebooks, github
# pnnl/projection_ntk): on MNIST 0-vs-1 and BERT/COLA (binary tasks) τ is of the network's
# P(class 1) against the kGLM's class-1 score (``tau_class1`` here); on CIFAR-10 of the
# probability of the true class (``tau``).
PAPER_TAU_CLASS1 = {"mlp": surrogates.PAPER_TAU["mnist01_mlp"], "cnn": surrogates.PAPER_TAU["mnist01_cnn"]}
PAPER_TAU_TRUE_CLASS = surrogates.PAPER_TAU["cifar10_resnet18"]


def summarize_faithfulness(faith: pd.DataFrame, net_table: pd.DataFrame, cfg: Study02,
                           sets: dict[str, Setting]) -> pd.DataFrame:
    """Mean and std per (setting, kernel, recipe), with the paper's printed τ beside the same quantity.

    ``*_std`` is over seeds and optimizer draws together; ``tau_sd_draws`` / ``tad_sd_draws`` the
    spread over the paper recipe's random_states alone (mean over seeds of the std over draws; 0 for
    the deterministic ``cv``); ``n_iter`` the SGD epochs until its stopping rule, ``converged`` the
    share of fits that stopped by tol rather than max_iter, ``train_acc_sur`` the kGLM's training
    accuracy. ``paper_tau`` (10-class setting, true-class τ) is the paper's CIFAR-10 ResNet-18
    number; ``paper_tau_class1`` (binary settings, class-1 τ, paper's recipe rows only) its MNIST
    0-vs-1 number for the same model type; ``paper_tau_cola`` its BERT/COLA class-1 τ per kernel.
    """
    kmax = max(cfg.proj_dims)
    keys = ["setting", "kernel", "recipe"]
    summary = surrogates.summarize(faith, keys, ["tau", "tau_class1", "tad", "acc_sur", "acc_svm", "n_saturated"])
    summary.insert(3, "n_test", summary["setting"].map(net_table.set_index("setting")["n_test"]))
    g = faith.groupby(keys, sort=False)
    summary.insert(4, "C_median", g["C"].median().to_numpy())
    by_seed = faith.groupby(keys + ["seed"], sort=False)
    for col in ("tau", "tad"):
        sd = by_seed[col].std(ddof=1).fillna(0.0).groupby(level=[0, 1, 2], sort=False).mean()
        summary[f"{col}_sd_draws"] = sd.to_numpy()
    summary["n_iter"] = g["n_iter"].mean().to_numpy()
    summary["converged"] = g["converged"].mean().to_numpy()
    summary["train_acc_sur"] = g["train_acc_sur"].mean().to_numpy()
    main = main_setting(sets)
    base = summary["kernel"].str.replace(f"@{kmax}", "", regex=False)
    is_main, paper_recipe = summary["setting"] == main, summary["recipe"] == PAPER_RECIPE
    summary["paper_tau"] = np.where(is_main & paper_recipe, base.map(PAPER_TAU_TRUE_CLASS).astype(float), np.nan)
    model = summary["setting"].str.split().str[-1]
    summary["paper_tau_class1"] = [PAPER_TAU_CLASS1.get(m, {}).get(k, np.nan) if (not im and pr) else np.nan
                                   for m, k, im, pr in zip(model, base, is_main, paper_recipe, strict=True)]
    summary["paper_tau_cola"] = np.where(~is_main & paper_recipe,
                                         base.map(surrogates.PAPER_TAU["cola_bert"]).astype(float), np.nan)
    return summary


LABEL = {"trak": "TRAK", "trntk": "trNTK", "trntk0": "trNTK⁰", "pntk": "pNTK", "em": "Em", "ck": "CK",
         "gradcos": "Grad-Cos", "label": "same label (floor)", "pixel": "pixel cosine × same label (floor)",
         "proj_trntk": "proj-trNTK", "proj_pntk": "proj-pNTK"}


def label(kernel: str) -> str:
    """A kernel's paper name: ``proj_trntk@512`` -> ``proj-trNTK@512``."""
    base, _, k = kernel.partition("@")
    if base.endswith("_best"):                                      # "trak_best" -> "TRAK (best setting)"
        return LABEL.get(base[:-5], base[:-5]) + " (best setting)"
    return LABEL.get(base, base) + (f"@{k}" if k else "")




def sgd_convergence(summary: pd.DataFrame, net_table: pd.DataFrame, main: str) -> dict:
    """How the paper's SGD recipe ends on the 10-class setting (NTK kernels, means over seeds and draws):
    {"n_iter": epochs, "converged": share of fits stopped by its tol rule, "train_acc": kGLM training
    accuracy, "net_train_acc": the network's}."""
    s = summary[(summary["setting"] == main) & (summary["recipe"] == PAPER_RECIPE)
                & summary["kernel"].str.split("@").str[0].isin(NTK_KERNELS)]
    net = net_table.set_index("setting").loc[main, "train_acc_mean"]
    return {"n_iter": float(s["n_iter"].mean()), "converged": float(s["converged"].mean()),
            "train_acc": float(s["train_acc_sur"].mean()), "net_train_acc": float(net)}
