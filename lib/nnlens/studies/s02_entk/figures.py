"""Figures of study 02 (``nnlens.studies.s02_entk`` re-exports them): each returns a matplotlib figure.

Every figure shows its spread and says which (±1 std over seeds and optimizer draws, or a CI), keeps its
legend off the data (in its own panel or below the axes) and names what every mark means.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .faith import CI_LEVEL
from .runs import PAPER_RECIPE, label

RECIPE_NAME = {"cv": "cross-validated kGLM (judged)", "sgd_1e-4": "paper's SGD, α = 1e-4 (beside)",
               "sgd_1e-2": "paper's SGD, α = 1e-2"}


def _recipe(r: str) -> str:
    return RECIPE_NAME.get(r, r)


def _bars(ax, summary: pd.DataFrame, recipe: str, settings: list, kernels: list) -> None:
    width = 0.8 / len(settings)
    for j, s in enumerate(settings):
        g = summary[(summary["setting"] == s) & (summary["recipe"] == recipe)].set_index("kernel").reindex(kernels)
        x = np.arange(len(kernels)) + (j - (len(settings) - 1) / 2) * width
        ax.bar(x, g["tau_mean"], width, yerr=g["tau_std"].fillna(0), capsize=2, color=f"C{j}", label=s)
    ax.set_xticks(np.arange(len(kernels)), [label(k) for k in kernels], rotation=45, ha="right")
    low = min(0.0, float((summary["tau_mean"] - summary["tau_std"].fillna(0)).min()) - 0.05)
    ax.set(ylabel="Kendall τ (true class)", title=f"τ, {_recipe(recipe)}", ylim=(low, 1))
    ax.axhline(0, color="black", lw=0.8)


def plot_tau_tad(summary: pd.DataFrame, tad: pd.DataFrame, main: str, recipes=("cv", PAPER_RECIPE)):
    """True-class τ per kernel and setting under each recipe, and TAD under both recipes on the 10-class setting.

    summary: ``runs.summarize_faithfulness``; tad: ``faith.tad_table``. Bars: mean; whiskers: ±1 std over seeds
    (and optimizer draws for SGD); TAD points with their CI over seeds × draws × test points.
    """
    import matplotlib.pyplot as plt

    settings = list(dict.fromkeys(summary["setting"]))
    kernels = list(dict.fromkeys(summary["kernel"]))
    recipes = [r for r in recipes if r in set(summary["recipe"])]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    for ax, r in zip(axes[0], recipes, strict=False):
        _bars(ax, summary, r, settings, kernels)
    ax = axes[1, 0]
    for j, r in enumerate(recipes):
        g = tad[(tad["setting"] == main) & (tad["recipe"] == r)].set_index("kernel").reindex(kernels)
        x = np.arange(len(kernels)) + (j - (len(recipes) - 1) / 2) * 0.3
        ax.errorbar(x, g["tad"], yerr=[g["tad"] - g["lo"], g["hi"] - g["tad"]], fmt="o", capsize=3,
                    color=f"C{j + 3}", label=f"TAD, {_recipe(r)}")
    ax.axhspan(-0.02, 0.02, color="0.85", zorder=0, label="±0.02 (02.1's band)")
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(np.arange(len(kernels)), [label(k) for k in kernels], rotation=45, ha="right")
    ax.set(ylabel="TAD = kGLM − network test accuracy", title=f"TAD on {main} ({CI_LEVEL:.0%} CI)")
    leg = axes[1, 1]
    leg.axis("off")
    handles = axes[0, 0].get_legend_handles_labels()[0] + ax.get_legend_handles_labels()[0]
    labels = ([f"setting: {s}" for s in settings] + ax.get_legend_handles_labels()[1])
    leg.legend(handles, labels, loc="upper left", fontsize=11, frameon=False,
               title="bars: mean, whiskers ±1 std over seeds (SGD: × 5 random_states)", title_fontsize=10)
    cv = tad[(tad["setting"] != main) & (tad["recipe"] == recipes[0])]
    ceil = cv.groupby("setting", sort=False)["ceiling"].all()
    if len(ceil):
        at = ", ".join(ceil.index[ceil]) or "none"
        leg.text(0, 0.2, "TAD of the binary settings is in the table 02_tad, not drawn here.\n"
                         f"At the ceiling under {recipes[0]} (network and every kGLM right on every\n"
                         f"test point, TAD = 0): {at}.",
                 fontsize=10, va="top", transform=leg.transAxes)
    fig.tight_layout()
    return fig


def plot_tau_paired(paired: pd.DataFrame, setting: str):
    """Paired τ differences trNTK − other kernel (and proj-trNTK − trNTK) with their CIs, per recipe."""
    import matplotlib.pyplot as plt

    p = paired[paired["setting"] == setting]
    names = [f"{label(a)} − {label(b)}" for a, b in p[["a", "b"]].drop_duplicates().itertuples(index=False)]
    recipes = list(dict.fromkeys(p["recipe"]))
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(names) * len(recipes) + 2))
    for j, r in enumerate(recipes):
        g = p[p["recipe"] == r]
        y = np.arange(len(g)) + (j - (len(recipes) - 1) / 2) * 0.25
        ax.errorbar(g["diff"], y, xerr=[g["diff"] - g["lo"], g["hi"] - g["diff"]], fmt="o", capsize=3,
                    label=_recipe(r))
    ax.set_yticks(np.arange(len(names)), names)
    ax.axvline(0, color="black", lw=0.8)
    ax.set(xlabel=f"Δ Kendall τ, mean over seeds ({CI_LEVEL:.0%} CI over seeds × SGD draws × test points)",
           title=f"paired τ differences, {setting}")
    ax.invert_yaxis()
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=len(recipes), frameon=False)
    fig.tight_layout()
    return fig


def plot_tau_binary(summary: pd.DataFrame, setting_names):
    """The paper's binary τ (P(class 1) vs the kGLM's class-1 score) with its printed numbers beside it."""
    import matplotlib.pyplot as plt

    s = summary[summary["setting"].isin(setting_names) & (summary["recipe"] == PAPER_RECIPE)]
    kernels = list(dict.fromkeys(s["kernel"]))
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / max(1, len(setting_names))
    for j, name in enumerate(setting_names):
        g = s[s["setting"] == name].set_index("kernel").reindex(kernels)
        x = np.arange(len(kernels)) + (j - (len(setting_names) - 1) / 2) * width
        ax.bar(x, g["tau_class1_mean"], width, yerr=g["tau_class1_std"].fillna(0), capsize=2,
               label=f"{name} (mean ± 1 std over seeds × draws)")
        ax.scatter(x, g["paper_tau_class1"], marker="*", s=90, color="black", zorder=5,
                   label="paper, MNIST 0-vs-1 (same model type)" if j == 0 else None)
    cola = s.drop_duplicates("kernel").set_index("kernel").reindex(kernels)["paper_tau_cola"]
    ax.scatter(np.arange(len(kernels)), cola, marker="x", s=60, color="black", zorder=5, label="paper, BERT/COLA")
    ax.set_xticks(np.arange(len(kernels)), [label(k) for k in kernels], rotation=45, ha="right")
    ax.set(ylabel="Kendall τ, P(class 1) vs class-1 score", ylim=(0, 1.05),
           title=f"binary settings, paper's kGLM recipe ({PAPER_RECIPE})")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    fig.tight_layout()
    return fig


def plot_projection_error(err: pd.DataFrame, slopes: pd.DataFrame):
    """Relative error of the projected kernels against K (mean ± std over projection draws), K^(-1/2) line."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullLocator

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    sl = slopes.set_index("kernel")
    for kind, g in err.groupby("kernel"):
        ax.errorbar(g["k"], g["mean"], yerr=g["std"], marker="o", capsize=3,
                    label=f"{label('proj_' + kind)}: slope {sl.loc[kind, 'slope']:.3f} "
                          f"[{sl.loc[kind, 'lo']:.3f}, {sl.loc[kind, 'hi']:.3f}]")
    k = np.array(sorted(set(err["k"])), float)
    ax.plot(k, err["mean"].max() * np.sqrt(k[0] / k), "k--", lw=1, label="K^(-1/2)")
    ax.set(xscale="log", yscale="log", xlabel="projection dimension K",
           ylabel="relative Frobenius error (mean ± std over draws)",
           title=f"projection error, {int(slopes['draws'].iloc[0])} projections per K")
    ax.set_xticks(k, [f"{int(v)}" for v in k])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.legend(loc="lower left", fontsize=9)
    fig.tight_layout()
    return fig


def plot_poisoning(table: pd.DataFrame, judged):
    """Detection of poisoned training points against the attack's strength, per kernel and recipe.

    table: ``poisoning_runs``'s "table" (mean and std over seeds per level, kernel, recipe).
    """
    import matplotlib.pyplot as plt

    recipes = list(dict.fromkeys(table["recipe"]))
    fig, axes = plt.subplots(len(recipes), 2, figsize=(11, 3.6 * len(recipes) + 0.8), squeeze=False)
    levels = sorted(table["level"].unique())
    ticks = [f"{g['fraction'].iloc[0]:.0%}\n{int(g['trigger'].iloc[0])} px, a={g['amplitude'].iloc[0]:g}"
             for _, g in table.groupby("level")]
    for i, r in enumerate(recipes):
        for ax, col, name in ((axes[i, 0], "precision_at_k", "precision@k"), (axes[i, 1], "auc", "detection AUC")):
            for j, (kernel, g) in enumerate(table[table["recipe"] == r].groupby("kernel", sort=False)):
                g = g.set_index("level").reindex(levels)
                ax.errorbar(np.array(levels) + (j - 1) * 0.06, g[f"{col}_mean"], yerr=g[f"{col}_std"].fillna(0),
                            marker="o", capsize=3, label=label(kernel))
            if judged is not None:
                ax.axvspan(judged - 0.3, judged + 0.3, color="0.9", zorder=0)
            ax.set_xticks(levels, ticks)
            ax.set(ylabel=name, title=f"{name}, {_recipe(r)}", ylim=(-0.1, 1.15))
    for ax in axes[-1]:
        ax.set_xlabel("attack: % poisoned, trigger side, amplitude a")
    h, lab = axes[0, 0].get_legend_handles_labels()
    fig.legend(h, lab, loc="lower center", ncol=len(lab), frameon=False,
               title="mean ± 1 std over poisoning seeds; strongest attack left; grey band: the level 02.5 is judged at")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def plot_explanations(x_test, x_train, rows: list[dict], k: int = 3):
    """An image grid: each test image, then its k supporting and k opposing training images.

    rows: dicts with "test" (index into x_test), "label" (row title), "support" and "oppose" (k training
    indices each), "support_y"/"oppose_y" (labels, optional), as ``attribution.explain_rows`` makes them.
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), 1 + 2 * k, figsize=(1.4 * (1 + 2 * k), 1.55 * len(rows) + 0.8),
                             squeeze=False)
    img = lambda t: t[0].cpu().numpy() if t.dim() == 3 else t.cpu().numpy()  # noqa: E731
    for r, row in enumerate(rows):
        kernel, _, rest = row["label"].partition(":")                 # "trntk: pred 3" -> "trNTK: pred 3"
        cells = [(x_test[row["test"]], f"{label(kernel)}:{rest}" if rest else row["label"])]
        cells += [(x_train[i], f"+ label {row.get('support_y', [''] * k)[j]}") for j, i in enumerate(row["support"])]
        cells += [(x_train[i], f"− label {row.get('oppose_y', [''] * k)[j]}") for j, i in enumerate(row["oppose"])]
        for c, (im, title) in enumerate(cells):
            ax = axes[r, c]
            ax.imshow(img(im), cmap="gray")
            ax.set_title(title, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle("first column: test image (kernel, predicted class); + : the training images that push the "
                 "prediction up most,\n− : those that push it down most (contribution K(x, xᵢ)·W[pred, i] of the "
                 "kGLM); 'label': the training image's label", fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return fig


def plot_lds(table: pd.DataFrame, ceiling: dict, curve: pd.DataFrame, n_subsets: int):
    """LDS per method (raw and class-partialled) with floors and the retraining ceiling; LDS against cost."""
    import matplotlib.pyplot as plt

    floors = {"label": "floor: same label", "pixel": "floor: pixel cosine × same label"}
    t = table[~table["method"].isin(list(floors))].sort_values("lds", ascending=False)
    fig, axes = plt.subplots(1, 2, figsize=(13, 0.4 * len(t) + 2.8), gridspec_kw={"width_ratios": [1.3, 1]})
    ax, y = axes[0], np.arange(len(t))
    for off, (col, lo, hi, name, c) in zip((-0.15, 0.15), (("lds", "lo", "hi", "raw LDS", "C0"),
                                                           ("lds_partial", "lo_partial", "hi_partial",
                                                            "class-partialled LDS", "C1")), strict=True):
        ax.errorbar(t[col], y + off, xerr=[t[col] - t[lo], t[hi] - t[col]], fmt="o", color=c, capsize=3, label=name)
    for j, (m, name) in enumerate(floors.items()):
        v = table.loc[table["method"] == m, "lds"]
        if len(v):
            ax.axvline(float(v.iloc[0]), color="0.4", ls=[":", "-."][j], label=f"{name} (raw)")
    if np.isfinite(ceiling.get("ceiling", np.nan)):
        ax.axvline(ceiling["ceiling"], color="C3", ls="--", label="retraining noise ceiling √r")
    ax.set_yticks(y, [label(m) for m in t["method"]])
    ax.invert_yaxis()
    ax.axvline(0, color="black", lw=0.8)
    ax.set(xlabel=f"LDS over {n_subsets} half-subsets ({CI_LEVEL:.0%} CI over subsets × test points)",
           title="LDS by method")
    ax.legend(loc="upper left", bbox_to_anchor=(0, -0.12), ncol=2, frameon=False)
    ax = axes[1]
    for j, (m, g) in enumerate(curve.groupby("method", sort=False)):
        best = g.loc[g.groupby("M")["lds_partial"].idxmax()]
        for col, ls, what in (("lds_partial", "-", "class-partialled"), ("lds", ":", "raw")):
            ax.plot(best["M"], best[col], marker="o", ls=ls, color=f"C{j + 4}",
                    label=f"{label(m)}, {what}" + (" (best K, ridge per M)" if m == "trak" else ""))
    ax.set(xscale="log", xlabel="cost: networks trained (M; each also needs its kernels or TRAK features)",
           ylabel="LDS", title="LDS against cost")
    ax.set_xticks(sorted(set(curve["M"])), [str(int(v)) for v in sorted(set(curve["M"]))])
    ax.minorticks_off()
    ax.legend(loc="upper left", bbox_to_anchor=(0, -0.12), frameon=False)
    fig.tight_layout()
    return fig
