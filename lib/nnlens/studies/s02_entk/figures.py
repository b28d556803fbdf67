"""Figures of study 02 (``nnlens.studies.s02_entk`` re-exports them): each returns a matplotlib figure.

Every multi-seed figure shows its spread (±1 std over seeds, or a bootstrap CI over test points),
and says which in its axis label or legend.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .runs import CI_LEVEL, JUDGED_RECIPES, label

def plot_tau_tad(faith: pd.DataFrame, recipes=JUDGED_RECIPES):
    """True-class τ per kernel and setting for each recipe, and TAD (bars: mean; whiskers: std over seeds)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    f = faith.assign(kernel=faith["kernel"].map(label))
    panels = [(r, "tau", f"Kendall τ (true class), kGLM {r}") for r in recipes] + [
        (recipes[0], "tad", f"TAD (kGLM {recipes[0]} − network accuracy)")]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2))
    for ax, (r, col, title) in zip(axes, panels):
        sns.barplot(data=f[f["recipe"] == r], x="kernel", y=col, hue="setting", errorbar="sd", ax=ax)
        ax.set(xlabel="", ylabel=title)
        ax.tick_params(axis="x", rotation=60)
        ax.axhline(0, color="black", lw=0.8)
        if ax is not axes[0]:
            ax.get_legend().remove()
    axes[0].legend(fontsize="x-small", title="setting (bars: mean, whiskers: ±1 std over seeds)",
                   title_fontsize="x-small")
    fig.tight_layout()
    return fig


def plot_tau_paired(paired: pd.DataFrame, setting: str):
    """Paired τ differences trNTK − other kernel (and proj-trNTK − trNTK) with their bootstrap CIs, per recipe."""
    import matplotlib.pyplot as plt

    p = paired[paired["setting"] == setting]
    names = [f"{label(a)} − {label(b)}" for a, b in p[["a", "b"]].drop_duplicates().itertuples(index=False)]
    recipes = list(dict.fromkeys(p["recipe"]))
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(names) * len(recipes) + 1.5))
    for j, r in enumerate(recipes):
        g = p[p["recipe"] == r]
        y = np.arange(len(g)) + (j - (len(recipes) - 1) / 2) * 0.25
        ax.errorbar(g["diff"], y, xerr=[g["diff"] - g["lo"], g["hi"] - g["diff"]], fmt="o", capsize=3,
                    label=f"kGLM {r}")
    ax.set_yticks(np.arange(len(names)), names)
    ax.axvline(0, color="black", lw=0.8)
    ax.set(xlabel=f"Δ Kendall τ, mean over seeds ({CI_LEVEL:.0%} bootstrap CI over test points)", title=setting)
    ax.invert_yaxis()
    ax.legend(fontsize="x-small")
    fig.tight_layout()
    return fig


def plot_tau_binary(summary: pd.DataFrame, setting_names):
    """The paper's binary τ (P(class 1) vs the kGLM's class-1 score) with its printed numbers beside it."""
    import matplotlib.pyplot as plt

    s = summary[summary["setting"].isin(setting_names) & (summary["recipe"] == "sgd_1e-4")]
    kernels = list(dict.fromkeys(s["kernel"]))
    fig, ax = plt.subplots(figsize=(8, 3.8))
    width = 0.8 / max(1, len(setting_names))
    for j, name in enumerate(setting_names):
        g = s[s["setting"] == name].set_index("kernel").loc[kernels]
        x = np.arange(len(kernels)) + (j - (len(setting_names) - 1) / 2) * width
        ax.bar(x, g["tau_class1_mean"], width, yerr=g["tau_class1_std"], capsize=2, label=f"{name} (±1 std over seeds)")
        ax.scatter(x, g["paper_tau_class1"], marker="*", s=80, color="black", zorder=5,
                   label="paper, MNIST 0-vs-1 (same model type)" if j == 0 else None)
    cola = s.drop_duplicates("kernel").set_index("kernel").loc[kernels, "paper_tau_cola"]
    ax.scatter(np.arange(len(kernels)), cola, marker="x", color="black", zorder=5, label="paper, BERT/COLA")
    ax.set_xticks(np.arange(len(kernels)), [label(k) for k in kernels], rotation=45)
    ax.set(ylabel="Kendall τ, P(class 1) vs class-1 score", title="binary settings, paper's kGLM recipe (SGD, α = 1e-4)")
    ax.legend(fontsize="x-small", loc="lower left")
    fig.tight_layout()
    return fig


def plot_projection_error(err: pd.DataFrame, proj_dims):
    """Relative error of the projected kernels against K (mean ± std over seeds), with a K^(-1/2) line."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullLocator

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for kind, g in err.groupby("kernel"):
        ax.errorbar(g["k"], g["mean"], yerr=g["std"], marker="o", capsize=3,
                    label=f"{label('proj_' + kind)} (slope {g['slope'].iloc[0]:.2f})")
    k = np.array(sorted(proj_dims), float)
    ax.plot(k, err["mean"].max() * np.sqrt(k[0] / k), "k--", lw=1, label="K^(-1/2)")
    ax.set(xscale="log", yscale="log", xlabel="projection dimension K",
           ylabel="relative Frobenius error (mean ± std over seeds)")
    ax.set_xticks(k, [f"{int(v)}" for v in k])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.legend(fontsize="x-small")
    fig.tight_layout()
    return fig


def plot_poisoning(rows: pd.DataFrame, topk: int):
    """Precision@k and detection AUC per kernel and recipe (bars: mean; whiskers: std over seeds, clipped to [0, 1])."""
    import matplotlib.pyplot as plt

    kernels = list(dict.fromkeys(rows["kernel"]))
    recipes = list(dict.fromkeys(rows["recipe"]))
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    width = 0.8 / len(recipes)
    for ax, col, name in ((axes[0], "precision_at_k", f"precision@{topk} of poisoned points"),
                          (axes[1], "auc", "detection AUC")):
        for j, r in enumerate(recipes):
            g = rows[rows["recipe"] == r].groupby("kernel")[col].agg(["mean", "std"]).loc[kernels]
            x = np.arange(len(kernels)) + (j - (len(recipes) - 1) / 2) * width
            lo = np.clip(g["mean"] - g["std"].fillna(0), 0, 1)
            hi = np.clip(g["mean"] + g["std"].fillna(0), 0, 1)
            ax.bar(x, g["mean"], width, yerr=[g["mean"] - lo, hi - g["mean"]], capsize=2, label=f"kGLM {r}")
        ax.set_xticks(np.arange(len(kernels)), [label(k) for k in kernels], rotation=45)
        ax.set(ylabel=name, ylim=(0, 1.05))
    axes[1].axhline(0.5, color="black", lw=0.8, ls="--", label="chance")
    axes[1].legend(fontsize="x-small", title="whiskers: ±1 std over seeds, clipped to [0, 1]",
                   title_fontsize="x-small", loc="lower right")
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
        kernel, _, rest = row["label"].partition(":")                 # "trntk: pred 3" -> "trNTK: pred 3"
        cells = [(x_test[row["test"]], f"{label(kernel)}:{rest}" if rest else row["label"])]
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


def plot_lds(table: pd.DataFrame, n_subsets: int):
    """LDS per attribution method with its bootstrap CI over test points."""
    import matplotlib.pyplot as plt

    t = table.sort_values("lds", ascending=False)
    fig, ax = plt.subplots(figsize=(7, 0.42 * len(t) + 1.3))
    y = np.arange(len(t))
    colors = ["C3" if m == "trak" else "C0" for m in t["method"]]
    ax.errorbar(t["lds"], y, xerr=[t["lds"] - t["lo"], t["hi"] - t["lds"]], fmt="none", ecolor="gray", capsize=3)
    ax.scatter(t["lds"], y, c=colors, zorder=3)
    ax.set_yticks(y, [label(m) for m in t["method"]])
    ax.invert_yaxis()
    ax.axvline(0, color="black", lw=0.8)
    ax.set(xlabel=f"LDS: mean Spearman over test points of predicted vs retrained margin ({n_subsets} half-subsets)\n"
                  f"dots: LDS, bars: {CI_LEVEL:.0%} bootstrap CI over test points")
    fig.tight_layout()
    return fig
