"""Study 03's figures; each returns a matplotlib figure (the notebook shows and saves it).

Spread over seeds: seaborn's ``errorbar="sd"`` bands (mean ± 1 sd over seeds) on every
multi-seed curve, error bars on the ladder.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ... import spectra

NAMES = {"gd_small": "GD small", "sgd_small": "SGD small", "gd_large": "GD 1.5x edge (catapult)",
         "one_step": "one large step (spike)", "adam": "Adam", "gd_small_matched": "GD small, on to the others' loss"}


def plot_esd(esd: dict, ratio: float, title: str, sigma2: float = 1.0):
    """Weight ESD eig(WᵀW/h) at init and at the end per regime (first seed), with MP(ratio, sigma2)."""
    lo, hi = spectra.mp_edges(ratio, sigma2)
    fig, axes = plt.subplots(1, len(esd), figsize=(3.1 * len(esd), 2.8), sharey=True)
    for ax, (name, e) in zip(np.atleast_1d(axes), esd.items()):
        bins = np.linspace(0, max(hi * 1.1, e["W"][-1] * 1.05), 60)      # wide enough to show every outlier
        ax.hist(e["W0"], bins, density=True, alpha=0.5, label="init")
        ax.hist(e["W"], bins, density=True, alpha=0.5, label="end")
        t = np.linspace(lo, hi, 400)
        ax.plot(t, spectra.mp_density(t, ratio, sigma2), "k-", lw=1, label="MP")
        ax.axvline(hi * 1.05, color="k", ls=":", lw=1)
        out = e["W"][e["W"] > hi * 1.05]
        n_out = len(out)
        ax.plot(out, np.full(n_out, 0.05), "rv", ms=5, label="outliers" if n_out else None)   # single eigenvalues
        ax.set(title=f"{NAMES.get(name, name)}\nλ1 = {e['W'][-1]:.3g}, {n_out} outliers", xlabel="eigenvalue of WᵀW/h")
    np.atleast_1d(axes)[0].legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_kernel_spectra(esd: dict):
    """CK and NTK eigenvalues against rank (log-log) at init (black) and at the end per regime (first seed)."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.3))
    for ax, k in zip(axes, ("ck", "ntk")):
        first = next(iter(esd.values()))
        e0 = np.sort(first[f"{k}0"])[::-1]
        keep = e0 > 1e-9 * e0[0]                       # the CK has rank <= h: its null eigenvalues are not shown
        r = np.arange(1, len(e0) + 1)[keep]
        ax.loglog(r, e0[keep], "k-", lw=2, label="init")
        for name, e in esd.items():
            ax.loglog(r, np.sort(e[k])[::-1][keep], lw=1, label=NAMES.get(name, name))
        ax.set(title=f"{k.upper()} spectrum on the training set", xlabel="rank", ylabel="eigenvalue")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_ladder(ladder: pd.DataFrame):
    """The width ladder: ‖ΔW‖op/√h, ‖ΔW‖F/√h, ‖ΔW‖F/‖W0‖F (log-log, mean ± sd over seeds) and the
    worst bulk KS of W, CK and NTK against k."""
    cols = [("dW_op_sqrt_h", "‖ΔW‖op / √h"), ("dW_fro_sqrt_h", "‖ΔW‖F / √h"), ("dW_fro_rel", "‖ΔW‖F / ‖W0‖F")]
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.0))
    for ax, (c, lab) in zip(axes, cols):
        for reg, part in ladder.groupby("regime"):
            m = part.groupby("k")[c].agg(["mean", "std"])
            ax.errorbar(m.index, m["mean"], yerr=m["std"].fillna(0), marker="o", capsize=3, label=NAMES.get(reg, reg))
        ax.set(xscale="log", yscale="log", xlabel="k  ((n, d, h) = k x base)", title=lab)
        ax.set_xticks(sorted(ladder["k"].unique()), [str(k) for k in sorted(ladder["k"].unique())])
        ax.minorticks_off()
    ks = ladder.melt(id_vars=["regime", "k", "seed"], value_vars=["bulk_ks", "ck_ks", "ntk_ks"], var_name="matrix")
    ks["matrix"] = ks["matrix"].map({"bulk_ks": "W", "ck_ks": "CK", "ntk_ks": "NTK"})
    sns.lineplot(data=ks, x="k", y="value", hue="matrix", style="regime", marker="o", errorbar="sd", ax=axes[3])
    axes[3].axhline(0.1, color="k", ls=":", lw=1)
    axes[3].set(xscale="log", title="bulk KS, final vs init", ylabel="KS", ylim=(0, None))
    axes[3].set_xticks(sorted(ladder["k"].unique()), [str(k) for k in sorted(ladder["k"].unique())])
    axes[3].minorticks_off()
    axes[3].legend(fontsize=6)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_dynamics(curves: pd.DataFrame, dyn: pd.DataFrame):
    """Per epoch: train and test MSE, λ1 of WᵀW/h, the NTK's top eigenvalue early on (with n/η of the
    catapult run); per snapshot: ‖P_out β‖ and NTK distance. Mean ± sd over seeds."""
    c = curves.assign(regime=curves["regime"].map(NAMES))
    d = dyn.assign(regime=dyn["regime"].map(NAMES))
    fig, axes = plt.subplots(2, 3, figsize=(12, 6))
    many = c[c["regime"] != NAMES["one_step"]]
    for ax, col, title in ((axes[0, 0], "train_loss", "train MSE"), (axes[0, 1], "test_loss", "test MSE (network)"),
                           (axes[0, 2], "lambda1", "λ1 of WᵀW/h")):
        sns.lineplot(data=many, x="epoch", y=col, hue="regime", errorbar="sd", ax=ax, legend=ax is axes[0, 0])
        ax.set(yscale="log", title=title)
    axes[0, 0].legend(fontsize=7)
    cat = c[(c["regime"] == NAMES["gd_large"]) & c["ntk_top"].notna()] if "ntk_top" in c else c.iloc[:0]
    ax = axes[1, 0]
    if len(cat):
        sns.lineplot(data=cat, x="epoch", y="ntk_top", errorbar="sd", ax=ax, label="λmax(NTK)")
        ax.axhline(float((cat["n"] / cat["lr"]).mean()), color="k", ls=":", lw=1, label="n / η (stability)")
        ax.legend(fontsize=7)
    ax.set(title="catapult run: NTK top eigenvalue", yscale="log")
    for ax, col, title in ((axes[1, 1], "p_out_beta", "‖P_out β‖ (outlier subspace)"),
                           (axes[1, 2], "ntk_distance", "NTK distance from init")):
        sns.lineplot(data=d[d["regime"] != NAMES["one_step"]], x="epoch", y=col, hue="regime", marker="o",
                     errorbar="sd", ax=ax, legend=False)
        ax.set(title=title)
    fig.tight_layout()
    return fig
