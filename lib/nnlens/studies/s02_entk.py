"""Study 02: eNTK surrogates and data attribution (Engel et al. 2023, arXiv 2305.14585).

The study's drivers, its claims and its figures; the reusable pieces live in the
concept modules: kernels (trNTK, pNTK, their projections) in ``nnlens.ntk``, the
baseline kernels (Em, CK, Grad-Cos), the kernel suite and attribution scores in
``nnlens.attribution``, kGLM / SVM surrogates and faithfulness in ``nnlens.surrogates``.

Steps the notebook calls in order:

1. ``settings(cfg)``: the 10-class setting and the paper's binary (0 vs 1) settings.
2. ``faithfulness_runs(cfg, settings)``: train each network per seed (cached), compute
   every kernel once, fit a kGLM and a kernel SVM on each, measure τ and TAD, and the
   projection error against K.
3. ``summarize_faithfulness`` / ``projection_error_table``: mean and std over seeds.
4. ``poisoning_runs(cfg, ds, spec)``: trigger-poison, retrain, rank training points.
5. ``claims(results, cfg)``: one ledger row per paper claim, thresholds below.

Figures: ``plot_tau_tad``, ``plot_projection_error``, ``plot_poisoning``, ``plot_explanations``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .. import attribution, data, models, ntk, reports, surrogates, train, utils
from ..surrogates import KGLM, faithfulness_table

# ------------------------------------------------------------------ thresholds (fixed before any run)
# 02.1: |TAD| <= 2 percentage points counts as "network-level accuracy": the paper's own gaps
# (MNIST 0-vs-1 kGLM 99.67 % vs NN 99.64 %; CIFAR-10 0.929 vs about 0.93) are far below it, and on
# 300 test points one prediction is 0.33 points, so 0.02 is six test points.
TAD_MAX = 0.02
# 02.2 / 02.3: the paper's orderings are strict; trNTK must come out above (difference > 0).
TAU_MARGIN = 0.0
# 02.4: a random projection's error falls like K^(-1/2) (Johnson-Lindenstrauss); a fitted log-log
# slope within ±0.1 of -1/2 over the K grid counts as that rate.
SLOPE_RANGE = (-0.6, -0.4)
# 02.4: proj-trNTK "close to" trNTK: the paper's BERT gap is 0.809 vs 0.800 (0.009); twice that.
PROJ_TAU_GAP = 0.02
# 02.5: "better than Em and CK": trNTK's mean detection AUC strictly above both.
AUC_MARGIN = 0.0


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


def surrogate_study(model, ds, *, proj_dims, n_proj_error: int, C: float = 1.0, svm_c: float = 1.0,
                    seed: int = 0, kinds=attribution.KERNELS) -> dict:
    """Every kernel of one trained model, its kGLM/SVM faithfulness and projection errors.

    Kernels are computed once (projections at K = max(proj_dims) for the surrogates).
    Returns {"rows": faithfulness rows, "proj_error": rows, "suite", "kglms", "logits" (N_test, C)}.
    """
    kmax = max(proj_dims)
    suite = attribution.kernel_suite(model, ds.x_train, ds.y_train, ds.x_test, proj_dims=(kmax,), seed=seed,
                                     kinds=kinds)
    logits = utils.forward(model, ds.x_test)
    rows, kglms = faithfulness_table(suite, ds.y_train, ds.y_test, logits, C, svm_c, seed)
    err = projection_error_grid(model, ds.x_train[:n_proj_error], suite, proj_dims, seed)
    return {"rows": rows, "proj_error": err, "suite": suite, "kglms": kglms, "logits": logits}


def n_saturated(logits, y, dtype) -> int:
    """Test points whose softmax probability of the true class is exactly 0 or 1 in ``dtype``."""
    p = surrogates.true_class_prob(logits, y, dtype=dtype)
    return int(((p == 0) | (p == 1)).sum())


def faithfulness_runs(cfg, sets: dict[str, Setting]) -> dict:
    """Train every setting's network per seed (cached) and run ``surrogate_study`` on it.

    Returns {"faith": one row per (setting, seed, kernel), "proj_error": one row per
    (setting, seed, kernel, K), "nets": one row per (setting, seed), "net_table": mean and
    std per setting, "first": the surrogate study of the 10-class setting's first seed
    (with its "model")}.
    """
    main = main_setting(sets)
    faith, proj_err, nets, first = [], [], [], None
    for name, s in sets.items():
        for seed in cfg.seeds:
            fit = train.fit(s.spec, s.ds, train_config(cfg, seed, s.epochs, s.batch_size), progress=False)
            r = surrogate_study(fit.model, s.ds, proj_dims=cfg.proj_dims, n_proj_error=cfg.n_proj_error,
                                C=cfg.kglm_c, svm_c=cfg.svm_c, seed=seed)
            faith += [{"setting": name, "seed": seed, **row} for row in r["rows"]]
            proj_err += [{"setting": name, "seed": seed, **row} for row in r["proj_error"]]
            nets.append({"setting": name, "seed": seed, "n_train": len(s.ds.y_train), "n_test": len(s.ds.y_test),
                         "train_acc": fit.final["train_acc"], "test_acc": fit.final["test_acc"],
                         "saturated_float32": n_saturated(r["logits"], s.ds.y_test, torch.float32),
                         "saturated_float64": n_saturated(r["logits"], s.ds.y_test, torch.float64)})
            if name == main and seed == cfg.seeds[0]:
                first = dict(r, model=fit.model)
    nets = pd.DataFrame(nets)
    net_table = nets.groupby("setting", sort=False).agg(
        n_train=("n_train", "first"), n_test=("n_test", "first"), train_acc_mean=("train_acc", "mean"),
        train_acc_std=("train_acc", "std"), test_acc_mean=("test_acc", "mean"), test_acc_std=("test_acc", "std"),
        saturated_float32=("saturated_float32", "mean"),
        saturated_float64=("saturated_float64", "mean")).reset_index()
    return {"faith": pd.DataFrame(faith), "proj_error": pd.DataFrame(proj_err), "nets": nets,
            "net_table": net_table, "first": first}


# the paper's setting each of ours stands in for (keys of ``surrogates.PAPER_TAU``)
PAPER_ANALOG = {"cnn": "cifar10_resnet18", "resnet18": "cifar10_resnet18"}
PAPER_BINARY_ANALOG = {"mlp": "mnist01_mlp", "cnn": "mnist01_cnn"}


def summarize_faithfulness(faith: pd.DataFrame, net_table: pd.DataFrame, cfg, sets: dict[str, Setting]) -> pd.DataFrame:
    """Mean and std over seeds of τ, TAD, accuracies per (setting, kernel), with the paper's τ beside them."""
    kmax = max(cfg.proj_dims)
    summary = surrogates.summarize(faith, ["setting", "kernel"], ["tau", "tad", "acc_sur", "acc_svm", "n_dropped"])
    summary.insert(2, "n_test", summary["setting"].map(net_table.set_index("setting")["n_test"]))
    main = main_setting(sets)
    analog = {main: PAPER_ANALOG.get(cfg.model, "")}
    analog.update({s: PAPER_BINARY_ANALOG.get(s.split()[-1], "") for s in sets if s != main})
    base = summary["kernel"].str.replace(f"@{kmax}", "", regex=False)
    summary["paper_tau"] = [surrogates.PAPER_TAU.get(analog.get(s, ""), {}).get(k, np.nan)
                            for s, k in zip(summary["setting"], base)]
    summary["paper_tau_cola"] = [surrogates.PAPER_TAU["cola_bert"].get(k, np.nan) for k in base]
    return summary


def projection_error_table(proj_err: pd.DataFrame, setting: str) -> pd.DataFrame:
    """Mean and std over seeds of the projection error per (kernel, K) on ``setting``, with the log-log slope."""
    err = proj_err[proj_err["setting"] == setting].groupby(["kernel", "k"], as_index=False)["rel_error"].agg(
        ["mean", "std"])
    slopes = {kind: utils.loglog_slope(g["k"], g["mean"]) for kind, g in err.groupby("kernel")}
    err["slope"] = err["kernel"].map(slopes)
    return err


# ------------------------------------------------------------------ poisoning
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
    clean_acc = float((utils.forward(model, ds.x_test).argmax(1) == ds.y_test).float().mean())
    keep = ds.y_test != target
    x_trig = data.add_trigger(ds.x_test[keep], trigger_size, *data.trigger_values(ds))
    pred_trig = utils.forward(model, x_trig).argmax(1)
    success = attribution.attack_success(pred_trig, ds.y_test[keep], target)
    x_att, pred_att = x_trig[:n_attack], pred_trig[:n_attack]
    suite = attribution.kernel_suite(model, pds.x_train, pds.y_train, x_att, proj_dims=(proj_dim,), seed=seed,
                                     kinds=kinds, test_labels=pred_att)
    is_poison = np.zeros(len(pds.y_train), bool)
    is_poison[idx] = True
    rows = []
    for name, (K_tr, K_te) in suite.items():
        kglm = KGLM(C=C, seed=seed).fit(K_tr, pds.y_train)
        scores = attribution.contributions(K_te, kglm.W, pred_att.numpy())        # (n_attack, N_train)
        rows.append({"kernel": name, "precision_at_k": float(attribution.precision_at_k(scores, is_poison, topk).mean()),
                     "auc": float(attribution.detection_auc(scores, is_poison).mean())})
    return {"clean_acc": clean_acc, "attack_success": success, "n_poison": int(len(idx)), "rows": rows}


def poisoning_runs(cfg, s: Setting, nets: pd.DataFrame | None = None) -> dict:
    """``poisoning_study`` per seed on setting ``s``.

    Returns {"attack": per seed (clean accuracy, attack success, poisoned points; with ``nets``
    also the clean network's accuracy), "rows": per (seed, kernel), "table": mean and std per kernel}.
    """
    kmax = max(cfg.proj_dims)
    runs = [poisoning_study(s.spec, s.ds, train_config(cfg, seed), fraction=cfg.poison_fraction,
                            target=cfg.target_class, trigger_size=cfg.trigger_size, n_attack=cfg.n_attack,
                            topk=cfg.topk, proj_dim=kmax, C=cfg.kglm_c, seed=seed)
            for seed in cfg.seeds]
    attack = pd.DataFrame([{"seed": seed} | {k: v for k, v in p.items() if k != "rows"}
                           for p, seed in zip(runs, cfg.seeds)])
    if nets is not None:
        attack["clean_acc_unpoisoned"] = nets["test_acc"].to_numpy()
    rows = pd.DataFrame([{"seed": seed, **row} for p, seed in zip(runs, cfg.seeds) for row in p["rows"]])
    table = surrogates.summarize(rows, ["kernel"], ["precision_at_k", "auc"])
    return {"attack": attack, "rows": rows, "table": table}


# ------------------------------------------------------------------ claims
def claims(results: dict, cfg) -> list[reports.Row]:
    """One row per paper claim.

    results: {"main": name of the 10-class setting, "summary": ``summarize_faithfulness``,
    "proj_error": ``projection_error_table`` (with "slope"), "poisoning": ``poisoning_runs``'s "table"}.
    """
    kmax = max(cfg.proj_dims)
    main, summary = results["main"], results["summary"]
    tau = summary[summary["setting"] == main].set_index("kernel")["tau_mean"]
    ntk_kernels = ["trntk", "pntk", f"proj_trntk@{kmax}", f"proj_pntk@{kmax}"]
    worst = {s: float(g.set_index("kernel").loc[ntk_kernels, "tad_mean"].abs().max())
             for s, g in summary.groupby("setting", sort=False)}
    rows = [reports.Row(
        "02.1", "kGLMs on NTK kernels reach network-level test accuracy (|TAD| small)",
        "max |TAD| over trNTK, pNTK, proj-trNTK, proj-pNTK kGLMs: " + "; ".join(f"{s} {v:.3f}" for s, v in worst.items()),
        f"TAD_MAX: <= {TAD_MAX} in every setting (mean over seeds)", max(worst.values()) <= TAD_MAX)]
    others = tau.drop([k for k in tau.index if k == "trntk" or k.startswith("proj_")])
    rows.append(reports.Row(
        "02.2", "trNTK gives the highest τ among the kernels; Em and CK are lower",
        f"{main}: trNTK τ {tau['trntk']:.3f}; best other {others.idxmax()} {others.max():.3f}; "
        f"Em {tau['em']:.3f}; CK {tau['ck']:.3f}",
        "trNTK mean τ above every other kernel (trNTK⁰, pNTK, Em, CK, Grad-Cos)",
        bool(tau["trntk"] - others.max() > TAU_MARGIN)))
    gap = {s: float(g.set_index("kernel").loc["trntk", "tau_mean"] - g.set_index("kernel").loc["trntk0", "tau_mean"])
           for s, g in summary.groupby("setting", sort=False)}
    rows.append(reports.Row(
        "02.3", "Normalization matters: trNTK τ above trNTK⁰ τ",
        "τ(trNTK) − τ(trNTK⁰): " + "; ".join(f"{s} {v:+.3f}" for s, v in gap.items()),
        f"> {TAU_MARGIN:g} on {main} (mean over seeds)", gap[main] > TAU_MARGIN))
    slopes = results["proj_error"].groupby("kernel")["slope"].first()
    ptau = tau[f"proj_trntk@{kmax}"] - tau["trntk"]
    lo, hi = SLOPE_RANGE
    rows.append(reports.Row(
        "02.4", "Projections track their exact kernels: error ~ K^(-1/2), proj-trNTK τ close to trNTK τ",
        f"error slope proj-trNTK {slopes['trntk']:.2f}, proj-pNTK {slopes['pntk']:.2f}; "
        f"τ(proj-trNTK@{kmax}) − τ(trNTK) {ptau:+.3f}",
        f"SLOPE_RANGE: both slopes in [{lo:g}, {hi:g}] and PROJ_TAU_GAP: |τ gap| <= {PROJ_TAU_GAP}",
        bool(all(lo <= v <= hi for v in slopes.values) and abs(ptau) <= PROJ_TAU_GAP)))
    pt = results["poisoning"].set_index("kernel")
    rows.append(reports.Row(
        "02.5", "NTK attributions find poisoned training data better than Em and CK",
        f"AUC trNTK {pt.loc['trntk', 'auc_mean']:.3f}, Em {pt.loc['em', 'auc_mean']:.3f}, "
        f"CK {pt.loc['ck', 'auc_mean']:.3f}; precision@{cfg.topk} trNTK {pt.loc['trntk', 'precision_at_k_mean']:.3f}, "
        f"Em {pt.loc['em', 'precision_at_k_mean']:.3f}, CK {pt.loc['ck', 'precision_at_k_mean']:.3f}",
        "trNTK mean detection AUC above both Em and CK",
        bool(pt.loc["trntk", "auc_mean"] - max(pt.loc["em", "auc_mean"], pt.loc["ck", "auc_mean"]) > AUC_MARGIN)))
    return rows


# ------------------------------------------------------------------ figures
def plot_tau_tad(faith: pd.DataFrame):
    """τ and TAD per kernel and setting (bars: mean ± std over seeds; crosses: the paper's BERT/COLA τ)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for ax, col, label in ((axes[0], "tau", "Kendall τ"), (axes[1], "tad", "TAD (kGLM − network accuracy)")):
        sns.barplot(data=faith, x="kernel", y=col, hue="setting", errorbar="sd", ax=ax)
        ax.set_xlabel("")
        ax.set_ylabel(label)
        ax.tick_params(axis="x", rotation=45)
    cola = [surrogates.PAPER_TAU["cola_bert"].get(k.split("@")[0], np.nan) for k in faith["kernel"].unique()]
    axes[0].scatter(range(len(cola)), cola, marker="x", color="black", zorder=5, label="paper, BERT/COLA")
    axes[0].legend(fontsize="x-small")
    axes[1].axhline(0, color="black", lw=0.8)
    axes[1].get_legend().remove()
    fig.tight_layout()
    return fig


def plot_projection_error(err: pd.DataFrame, proj_dims):
    """Relative error of the projected kernels against K (mean ± std over seeds), with a K^(-1/2) line."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    for kind, g in err.groupby("kernel"):
        ax.errorbar(g["k"], g["mean"], yerr=g["std"], marker="o", label=f"proj-{kind} (slope {g['slope'].iloc[0]:.2f})")
    k = np.array(sorted(proj_dims), float)
    ax.plot(k, err["mean"].max() * np.sqrt(k[0] / k), "k--", lw=1, label="K^(-1/2)")
    ax.set(xscale="log", yscale="log", xlabel="projection dimension K", ylabel="relative Frobenius error")
    ax.legend(fontsize="x-small")
    return fig


def plot_poisoning(rows: pd.DataFrame, topk: int):
    """Precision@k and detection AUC per kernel (bars: mean ± std over seeds; dashed: chance AUC)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for ax, col, label in ((axes[0], "precision_at_k", f"precision@{topk} of poisoned points"),
                           (axes[1], "auc", "detection AUC")):
        sns.barplot(data=rows, x="kernel", y=col, errorbar="sd", ax=ax, color="C0")
        ax.set(xlabel="", ylabel=label)
        ax.tick_params(axis="x", rotation=45)
    axes[1].axhline(0.5, color="black", lw=0.8, ls="--")
    fig.tight_layout()
    return fig


def plot_explanations(x_test, x_train, rows: list[dict], k: int = 3):
    """An image grid: each test image, then its k supporting and k opposing training images.

    rows: dicts with "test" (index into x_test), "label" (row title), "support" and
    "oppose" (k training indices each), "support_y"/"oppose_y" (labels, optional),
    as ``attribution.explain_rows`` makes them.
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), 1 + 2 * k, figsize=(1.3 * (1 + 2 * k), 1.5 * len(rows)), squeeze=False)
    img = lambda t: t[0].cpu().numpy() if t.dim() == 3 else t.cpu().numpy()  # noqa: E731
    for r, row in enumerate(rows):
        cells = [(x_test[row["test"]], row["label"])]
        cells += [(x_train[i], f"+ y={row.get('support_y', [''] * k)[j]}") for j, i in enumerate(row["support"])]
        cells += [(x_train[i], f"- y={row.get('oppose_y', [''] * k)[j]}") for j, i in enumerate(row["oppose"])]
        for c, (im, title) in enumerate(cells):
            ax = axes[r, c]
            ax.imshow(img(im), cmap="gray")
            ax.set_title(title, fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    return fig
