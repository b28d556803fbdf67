"""Figures of study 01 (re-exported by ``s01_pca``). Each returns a matplotlib figure.

Every multi-seed quantity is drawn as the mean over network seeds with a ±1 sd band
(seaborn ``errorbar="sd"``); reference lines: chance (1/C), the network's test accuracy
(mean over seeds), the v* target (network - ``NEAR_NETWORK``) and kNN on raw pixels.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

PROBE_LABELS = {"knn": "kNN", "ncc": "NCC", "svm": "linear SVM"}


def _order(df: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(df.sort_values("depth")["layer"]))


def _titles(g, df: pd.DataFrame) -> None:
    dims = df.groupby("layer")["dim"].first()
    for layer, ax in g.axes_dict.items():
        ax.set_title(f"{layer} ({dims[layer]} dims)")


def _references(ax, results: dict, near: float, legend: bool = False) -> None:
    nets = results["nets"]
    net = nets["test_acc"].mean()
    ax.axhline(results["chance"], color="grey", lw=1.0, ls=":", label="chance")
    ax.axhline(nets["raw_knn"].iloc[0], color="tab:brown", lw=0.9, ls="-.", label="kNN on raw pixels")
    ax.axhline(net, color="black", lw=0.9, ls="--", label="network (mean over seeds)")
    ax.axhline(net - near, color="tab:red", lw=0.9, ls=(0, (5, 2)), label=f"v* target: network − {near}")


def _tidy(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(probe=df["probe"].map(PROBE_LABELS))


HUE_ORDER = list(PROBE_LABELS.values())


def _reference_legend(g, n: int) -> None:
    """The reference lines' legend (the last ``n`` artists of the first panel) under the grid."""
    handles, labels = g.axes.flat[0].get_legend_handles_labels()
    g.figure.legend(handles[-n:], labels[-n:], loc="upper center", ncol=n, fontsize="small",
                    bbox_to_anchor=(0.45, 0.0), frameon=False)


def plot_training(history: pd.DataFrame):
    """Loss and accuracy per epoch, train and test, one line per seed."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    long = history.melt(id_vars=["epoch", "seed"], value_vars=["train_loss", "test_loss", "train_acc", "test_acc"])
    long["split"] = long["variable"].str.split("_").str[0]
    for ax, what in zip(axes, ("loss", "acc"), strict=False):
        part = long[long["variable"].str.endswith(what)]
        sns.lineplot(data=part, x="epoch", y="value", hue="split", units="seed", estimator=None, lw=1, ax=ax)
        ax.set_title(f"{'loss' if what == 'loss' else 'accuracy'} (one line per seed)")
        ax.set_ylabel("loss" if what == "loss" else "accuracy")
    axes[0].set_yscale("log")
    fig.suptitle(f"Training of the ResNet-18, {history['seed'].nunique()} seeds", y=1.02)
    return fig


def plot_accuracy_vs_k(results: dict, near: float):
    """Test accuracy of each probe against the number of PCs k (log axis), one panel per layer."""
    df = _tidy(results["probes"])
    df = df[~df["all_features"]]
    g = sns.relplot(data=df, x="k", y="accuracy", hue="probe", hue_order=HUE_ORDER, col="layer",
                    col_order=_order(df), col_wrap=5, kind="line", errorbar="sd", height=2.3, aspect=1.15,
                    facet_kws={"sharex": False})
    g.set(xscale="log", ylim=(0, 1.02))
    _titles(g, df)
    for ax in g.axes.flat:
        _references(ax, results, near)
    _reference_legend(g, 4)
    g.set_axis_labels("k (number of PCs)", "test accuracy")
    g.figure.suptitle("Probes on the first k PCs (mean ± sd over seeds)", y=1.02)
    return g.figure


def plot_accuracy_vs_variance(results: dict, vstar: pd.DataFrame, near: float, v_max: float):
    """Test accuracy against the cumulative explained variance of the first k PCs; v* per seed marked."""
    df = _tidy(results["probes"])
    df = df[~df["all_features"]]
    keys = ["layer", "depth", "dim", "k", "probe"]
    mean = df.groupby(keys, as_index=False)[["explained_variance", "accuracy"]].mean()
    mean["sd"] = df.groupby(keys)["accuracy"].std(ddof=1).fillna(0.0).to_numpy()
    g = sns.relplot(data=mean, x="explained_variance", y="accuracy", hue="probe", hue_order=HUE_ORDER, col="layer",
                    col_order=_order(df), col_wrap=5, kind="line", height=2.3, aspect=1.15)
    colors = dict(zip(HUE_ORDER, sns.color_palette(n_colors=len(HUE_ORDER)), strict=True))
    for layer, ax in g.axes_dict.items():
        for probe, part in mean[mean["layer"] == layer].groupby("probe"):
            part = part.sort_values("explained_variance")
            ax.fill_between(part["explained_variance"], part["accuracy"] - part["sd"], part["accuracy"] + part["sd"],
                            color=colors[probe], alpha=0.2, lw=0)
    g.set(xlim=(0, 1), ylim=(0, 1.02))
    _titles(g, df)
    for layer, ax in g.axes_dict.items():
        _references(ax, results, near)
        ax.axvline(v_max, color="tab:red", lw=0.8, ls="--", label=f"v* threshold {v_max}")
        v = vstar[vstar["layer"] == layer]["v_star"].dropna()
        ax.plot(v, np.full(len(v), 0.05), "v", color="tab:red", ms=5, label="v* (one per seed)")
    _reference_legend(g, 6)
    g.set(xticks=[0, 0.5, 1], xticklabels=["0", "0.5", "1"])
    g.set_axis_labels("cum. explained variance", "test accuracy")
    g.figure.suptitle("Accuracy against the variance kept (mean ± sd over seeds; ▼ = v* of each seed)", y=1.02)
    return g.figure


def plot_scree(results: dict, v_max: float):
    """Cumulative explained variance against k, one panel per layer (mean ± sd over seeds)."""
    sc = results["scree"]
    dims = results["probes"].groupby("layer")["dim"].first()
    sc = sc.assign(dim=sc["layer"].map(dims))
    g = sns.relplot(data=sc, x="k", y="explained_variance", col="layer", col_order=_order(sc), col_wrap=5,
                    kind="line", errorbar="sd", height=2.1, aspect=1.15)
    g.set(ylim=(0, 1.02))
    _titles(g, sc)
    for ax in g.axes.flat:
        ax.axhline(v_max, color="tab:red", lw=0.8, ls="--")
    g.set_axis_labels("k (number of PCs)", "cum. variance")
    g.figure.suptitle(f"Scree: cumulative explained variance per layer (dashed: {v_max})", y=1.02)
    return g.figure


def plot_vstar(vstar: pd.DataFrame, v_max: float, k_max: int):
    """v* per layer: one point per seed and the mean; layers where no probe got there at k <= k_max at the top."""
    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    order = _order(vstar)
    v = vstar.assign(x=vstar["layer"].map({name: i for i, name in enumerate(order)}))
    hit = v.dropna(subset=["v_star"])
    miss = v[v["v_star"].isna()]
    sns.stripplot(data=hit, x="layer", y="v_star", order=order, color="tab:blue", size=5, jitter=0.15, ax=ax,
                  label="v* of one seed")
    means = hit.groupby("layer")["v_star"].mean().reindex(order)
    ax.plot(range(len(order)), means.to_numpy(), "_", color="black", ms=18, mew=2, label="mean over seeds")
    if len(miss):                       # no v*: drawn in a band above the axis, not at a variance of 1
        ax.plot(miss["x"], np.full(len(miss), 1.12), "x", color="grey", label=f"no probe within reach at k ≤ {k_max}")
        ax.axhline(1.04, color="grey", lw=0.6)
    ax.axhline(v_max, color="tab:red", lw=0.9, ls="--", label=f"threshold {v_max}")
    ax.set_ylim(0, 1.18)
    ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0, 1.12], ["0", "0.25", "0.5", "0.75", "1", "no v*"])
    ax.set_xticks(range(len(order)), order, rotation=45, ha="right")
    ax.set_xlabel("")
    ax.set_ylabel("v* (cumulative variance)")
    ax.set_title("Least variance at which a probe comes within reach of the network")
    handles, labels = ax.get_legend_handles_labels()
    keep = dict(zip(labels, handles, strict=False))
    ax.legend(keep.values(), keep.keys(), fontsize="x-small", loc="lower left")
    return fig


def plot_collapse(nc: pd.DataFrame):
    """NC1, NC2 and NC4 against depth (mean ± sd over seeds)."""
    order = _order(nc)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    sns.lineplot(data=nc, x="depth", y="nc1", errorbar="sd", marker="o", ax=axes[0])
    axes[0].set_yscale("log")
    axes[0].set_title("NC1 = Tr(Σ_W Σ_B⁺)/C")
    names = {"equinorm": "equinorm (std/mean of norms)", "equiangular_std": "equiangular (std of cosines)",
             "equiangular_etf": "distance to simplex ETF angles", "nc4_test": "test points",
             "nc4_train": "train points"}
    nc2 = nc.melt(id_vars=["seed", "depth"], value_vars=["equinorm", "equiangular_std", "equiangular_etf"])
    nc2["variable"] = nc2["variable"].map(names)
    sns.lineplot(data=nc2, x="depth", y="value", hue="variable", errorbar="sd", marker="o", ax=axes[1])
    axes[1].set_title("NC2 (0 = simplex ETF)")
    nc4 = nc.melt(id_vars=["seed", "depth"], value_vars=["nc4_test", "nc4_train"])
    nc4["variable"] = nc4["variable"].map(names)
    sns.lineplot(data=nc4, x="depth", y="value", hue="variable", errorbar="sd", marker="o", ax=axes[2])
    axes[2].set_title("NC4: network ≠ nearest class mean")
    for ax, ylabel in zip(axes, ("NC1 (log scale)", "NC2 deviation", "share of points"), strict=True):
        ax.set_xticks(range(len(order)), order, rotation=60, fontsize="x-small")
        ax.set_xlabel("")
        ax.set_ylabel(ylabel)
        if ax.get_legend():
            ax.legend(fontsize="x-small", title=None)
    lo, hi = nc["nc1"].min(), nc["nc1"].max()
    ticks = [t for t in (0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30, 100, 300, 1000) if lo / 1.5 <= t <= hi * 1.5]
    axes[0].yaxis.set_minor_formatter(plt.NullFormatter())
    axes[0].set_yticks(ticks, [f"{t:g}" for t in ticks])
    fig.suptitle("Neural collapse against depth (mean ± sd over seeds)", y=1.02)
    fig.tight_layout()
    return fig


def plot_vstar_vs_width(ladder: pd.DataFrame, epochs: int, v_max: float, paper_width: int = 64):
    """v* (least over layers, mean over seeds, ±1 sd where there are seeds) against the ResNet-18 width, log2 axis;
    networks trained longer than ``epochs`` drawn apart; the threshold and the paper's width marked."""
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    rungs = ladder[ladder["epochs"] == epochs].sort_values("width")
    ax.errorbar(rungs["width"], rungs["v_star"], yerr=rungs["v_star_sd"].fillna(0.0), fmt="o-", color="tab:blue",
                capsize=3, label=f"{epochs} epochs (sd over seeds where > 1)")
    for x in rungs.itertuples():
        if isinstance(x.layer, str):
            ax.annotate(f"{x.layer}, k*={x.k_star:.3g}", (x.width, x.v_star), textcoords="offset points",
                        xytext=(4, 6), fontsize="x-small")
    longer = ladder[ladder["epochs"] != epochs]
    if len(longer):
        ax.plot(longer["width"], longer["v_star"], "s", color="tab:orange", label="trained longer: " + ", ".join(
            f"{int(e)} epochs" for e in sorted(longer["epochs"].unique())))
    ax.axhline(v_max, color="tab:red", lw=0.9, ls="--", label=f"threshold {v_max}")
    ax.axvline(paper_width, color="grey", lw=0.8, ls=":", label=f"the paper's width ({paper_width})")
    ax.set_xscale("log", base=2)
    ticks = sorted(set(ladder["width"].astype(int)) | {paper_width})
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.set_ylim(0, 1)
    ax.set_xlabel("ResNet-18 width (log2 axis)")
    ax.set_ylabel("v* (least over layers)")
    ax.set_title("v* against the network's width")
    ax.legend(fontsize="x-small", loc="lower left")
    return fig
