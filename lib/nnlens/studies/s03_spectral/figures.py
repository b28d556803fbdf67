"""Study 03's figures; each returns a matplotlib figure (the notebook shows and saves it).

One colour per regime in every figure (``COLORS``); where several seeds ran, curves are the mean
(or median) over seeds with a band or error bars for their spread, and titles say how many seeds.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D
from scipy import stats

from ... import spectra
from .claims import ks_excess

NAMES = {"gd_small": "GD small", "sgd_small": "SGD small", "gd_large": "GD 1.5x edge (catapult)",
         "one_step": "one large step (spike)", "adam": "Adam", "gd_small_matched": "GD small, on to the others' loss"}
COLORS = dict(zip(NAMES, sns.color_palette("colorblind", len(NAMES)), strict=True))
STYLES = {"W": "-", "CK": "--", "NTK": ":"}


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _log_ticks(ax, axis: str, values) -> None:
    """Four readable ticks on a log axis whose range may hold less than a decade."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v) & (v > 0)]
    if not len(v):
        return
    ticks = np.unique([float(f"{t:.2g}") for t in np.geomspace(v.min(), v.max(), 4)])
    getattr(ax, f"set_{axis}ticks")(ticks, [f"{t:g}" for t in ticks])
    getattr(ax, f"{axis}axis").set_minor_locator(plt.NullLocator())


def plot_esd(esd: dict, ratio: float, title: str, sigma2: float = 1.0, edge: float | None = None,
             gram: str = "WᵀW / h"):
    """Weight ESD at init (filled) and at the end (outline), pooled over the seeds that ran, with the
    MP density of the init and the outlier edge (dotted; default 1.05 λ+); outliers marked per seed.
    ``gram`` names the matrix whose eigenvalues these are (``spectra.weight_esd``: W Wᵀ / d when d > h)."""
    lo, hi = spectra.mp_edges(ratio, sigma2)
    cut = hi * 1.05 if edge is None else edge
    fig, axes = plt.subplots(1, len(esd), figsize=(3.3 * len(esd), 3.6), sharey=True)
    for ax, (name, runs) in zip(np.atleast_1d(axes), esd.items(), strict=True):
        top = max(r["W"][-1] for r in runs)
        bins = np.linspace(0, max(hi * 1.1, top * 1.05), 60)            # wide enough to show every outlier
        ax.hist(np.concatenate([r["W0"] for r in runs]), bins, density=True, color="0.8", label="init")
        ax.hist(np.concatenate([r["W"] for r in runs]), bins, density=True, histtype="step", lw=1.3,
                color=COLORS.get(name, "C0"), label="end")
        t = np.linspace(lo, hi, 400)
        ax.plot(t, spectra.mp_density(t, ratio, sigma2), "k-", lw=0.8, label="MP law of the init")
        ax.axvline(cut, color="k", ls=":", lw=1, label="outlier edge")
        counts = []
        for i, r in enumerate(runs):
            out = r["W"][r["W"] > cut]
            counts.append(len(out))
            ax.plot(out, np.full(len(out), 0.04 + 0.05 * i), "v", color="C3", ms=4,
                    label="outliers (one row per seed)" if i == 0 and len(out) else None)
        per = ", ".join(str(c) for c in counts)
        ax.set(title=f"{NAMES.get(name, name)}\nmean λ1 = {np.mean([r['W'][-1] for r in runs]):.3g}\n"
                     f"{_plural(counts[0], 'outlier') if len(runs) == 1 else 'outliers per seed: ' + per}",
               xlabel=f"eigenvalue of {gram}")
    first = np.atleast_1d(axes)[0]
    first.set_ylabel("density")
    handles = {lab: h for a in np.atleast_1d(axes) for h, lab in zip(*a.get_legend_handles_labels(), strict=True)}
    fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    n_seeds = len(next(iter(esd.values())))
    fig.suptitle(f"{title} ({'one seed' if n_seeds == 1 else f'{n_seeds} seeds pooled'})")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def _by_rank(runs: list, key: str) -> np.ndarray:
    """(seeds, N) eigenvalues sorted in descending order per seed."""
    return np.stack([np.sort(r[key])[::-1] for r in runs])


def plot_kernel_spectra(esd: dict):
    """Top: CK and NTK eigenvalues against rank (log-log), median over seeds, init dashed on top.
    Bottom: each regime's final eigenvalue over the initial one at the same rank, median over seeds with
    the seeds' range as a band (1 = unchanged; the init curve hides nothing here)."""
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.4), sharex="col")
    n_seeds = len(next(iter(esd.values())))
    for j, k in enumerate(("ck", "ntk")):
        e0 = _by_rank(next(iter(esd.values())), f"{k}0")
        keep = np.median(e0, 0) > 1e-9 * np.median(e0, 0)[0]         # the CK has rank <= h: drop its null space
        r = np.arange(1, e0.shape[1] + 1)[keep]
        for name, runs in esd.items():
            e1, base = _by_rank(runs, k)[:, keep], _by_rank(runs, f"{k}0")[:, keep]
            c = COLORS.get(name, "C0")
            axes[0, j].loglog(r, np.median(e1, 0), lw=1.2, color=c, label=NAMES.get(name, name))
            ratio = e1 / base
            axes[1, j].plot(r, np.median(ratio, 0), lw=1.2, color=c)
            axes[1, j].fill_between(r, ratio.min(0), ratio.max(0), color=c, alpha=0.2, lw=0)
        axes[0, j].loglog(r, np.median(e0[:, keep], 0), "k--", lw=1.2, zorder=10, label="init")
        axes[1, j].axhline(1, color="k", ls="--", lw=1, zorder=10)
        axes[0, j].set(title=f"{k.upper()} spectrum on the training set", ylabel="eigenvalue")
        axes[1, j].set(xscale="log", xlabel="rank", ylabel="final / initial eigenvalue")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.suptitle(f"Kernel spectra, median over {_plural(n_seeds, 'seed')} (band: their range)")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def plot_ladder(ladder: pd.DataFrame):
    """The width ladder: ‖ΔW‖op/√h, ‖ΔW‖F/√h, ‖ΔW‖F/‖W0‖F (log-log, mean ± sd over seeds) and each bulk's
    KS minus its coupled null (+1/N), worst seed, for W, CK and NTK against k (≤ 0: within the null)."""
    cols = [("dW_op_sqrt_h", "‖ΔW‖op / √h"), ("dW_fro_sqrt_h", "‖ΔW‖F / √h"), ("dW_fro_rel", "‖ΔW‖F / ‖W0‖F")]
    ks = sorted(ladder["k"].unique())
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.6))
    for ax, (c, lab) in zip(axes, cols, strict=False):
        for reg, part in ladder.groupby("regime"):
            m = part.groupby("k")[c].agg(["mean", "std"])
            ax.errorbar(m.index, m["mean"], yerr=m["std"].fillna(0), marker="o", capsize=3, color=COLORS[reg])
        ax.set(xscale="log", yscale="log", xlabel="k  ((n, d, h) = k × base)", ylabel=lab, title=lab)
        _log_ticks(ax, "x", ks)
        _log_ticks(ax, "y", ladder[c])
    ax = axes[3]
    for m, v in ks_excess(ladder).items():
        for reg, part in ladder.assign(v=v).groupby("regime"):
            worst = part.groupby("k")["v"].max()
            ax.plot(worst.index, worst.values, STYLES[m], marker="o", ms=3, color=COLORS[reg])
    ax.axhline(0, color="k", lw=1)
    ax.set(xscale="log", xlabel="k  ((n, d, h) = k × base)", ylabel="KS − (null + 1/N)",
           title="bulk KS over its null (worst seed)")
    _log_ticks(ax, "x", ks)
    regs = [Line2D([], [], color=COLORS[r], marker="o", label=NAMES[r]) for r in sorted(ladder["regime"].unique())]
    mats = [Line2D([], [], color="k", ls=s, label=f"{m} (last panel)") for m, s in STYLES.items()]
    fig.legend(handles=regs + mats, loc="lower center", ncol=len(regs) + len(mats), fontsize=8, frameon=False)
    fig.suptitle(f"Width ladder, {ladder['seed'].nunique()} seeds (mean ± sd)")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def plot_dynamics(curves: pd.DataFrame, dyn: pd.DataFrame):
    """Per epoch: train and test MSE, λ1 of WᵀW/h, the NTK's top eigenvalue early on (with n/η of the
    catapult run); per snapshot: ‖P_out β‖ and NTK distance. Mean over seeds, band = their range; the one-step run
    is its two points (epochs 0 and 1)."""
    pal = {NAMES[k]: v for k, v in COLORS.items()}
    c = curves.assign(regime=curves["regime"].map(NAMES))
    d = dyn.assign(regime=dyn["regime"].map(NAMES))
    fig, axes = plt.subplots(2, 3, figsize=(12, 6.6))
    for ax, col, lab in ((axes[0, 0], "train_loss", "train MSE"), (axes[0, 1], "test_loss", "test MSE (network)"),
                         (axes[0, 2], "lambda1", "λ1 of WᵀW / h")):
        sns.lineplot(data=c.dropna(subset=[col]), x="epoch", y=col, hue="regime", palette=pal, errorbar=("pi", 100),
                     ax=ax, legend=False)
        ax.set(yscale="log", title=lab, ylabel=lab)
        _log_ticks(ax, "y", c[col])
    cat = c[(c["regime"] == NAMES["gd_large"]) & c["ntk_top"].notna()] if "ntk_top" in c else c.iloc[:0]
    ax = axes[1, 0]
    if len(cat):
        sns.lineplot(data=cat, x="epoch", y="ntk_top", errorbar=("pi", 100), ax=ax, color=COLORS["gd_large"],
                     label="λmax(NTK)")
        ax.axhline(float((cat["n"] / cat["lr"]).mean()), color="k", ls=":", lw=1, label="n / η (stability limit)")
        ax.legend(fontsize=7)
    ax.set(title="catapult run: NTK top eigenvalue", yscale="log", ylabel="λmax(NTK)")
    if len(cat):
        _log_ticks(ax, "y", list(cat["ntk_top"]) + [float((cat["n"] / cat["lr"]).mean())])
    for ax, col, lab in ((axes[1, 1], "p_out_beta", "‖P_out β‖ (outlier subspace)"),
                         (axes[1, 2], "ntk_distance", "NTK distance from init")):
        sns.lineplot(data=d, x="epoch", y=col, hue="regime", palette=pal, marker="o", errorbar=("pi", 100), ax=ax,
                     legend=False)
        ax.set(title=lab, ylabel=lab)
    regs = [Line2D([], [], color=COLORS[r], marker="o", label=NAMES[r]) for r in curves["regime"].unique()]
    fig.legend(handles=regs, loc="lower center", ncol=len(regs), fontsize=8, frameon=False)
    fig.suptitle(f"Two-layer training dynamics, mean over {curves['seed'].nunique()} seeds (band: their range)")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def plot_kappa_sweep(sweep: pd.DataFrame, d: int, kappa: float, q: float = 0.99):
    """One large step against κ (‖ΔW‖op = κ (hd)^¼): outliers (all, created), and ‖P_out β‖ against the
    ``q`` quantile of its null for a random subspace of the same dimension (Beta law); mean ± sd over seeds.
    Vertical lines: the study's κ and (hd)^¼ (the largest κ)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    m = sweep.groupby("kappa").agg(["mean", "std"]).fillna(0)
    x = m.index.values
    for col, lab, mk, ls in (("n_outliers", "outliers above the edge", "o", "-"),
                             ("n_created", "created by the step", "x", "--")):
        axes[0].errorbar(x, m[(col, "mean")], yerr=m[(col, "std")], marker=mk, ls=ls, capsize=3, label=lab)
    axes[0].set(xscale="log", ylabel="number of outliers", title="outlier eigenvalues after one step")
    null = [np.sqrt(stats.beta.ppf(q, k / 2, (d - k) / 2)) if k >= 1 else np.nan
            for k in np.maximum(np.round(m[("n_outliers", "mean")].values), 0)]
    axes[1].errorbar(x, m[("p_out_beta", "mean")], yerr=m[("p_out_beta", "std")], marker="o", capsize=3,
                     color=COLORS["one_step"], label="measured")
    axes[1].plot(x, null, "k:", marker="x", label=f"random subspace, {q:.0%} quantile")
    axes[1].set(xscale="log", ylabel="‖P_out β‖", ylim=(0, 1), title="alignment of the outlier subspace with β")
    for ax in axes:
        ax.axvline(kappa, color="0.5", lw=1, ls="--")
        ax.axvline(x.max(), color="0.5", lw=1, ls="-.")
        ax.set(xlabel="κ  (‖ΔW‖op = κ (hd)^¼)")
        ax.set_xticks(x, [f"{v:g}" for v in x])
        ax.xaxis.set_minor_locator(plt.NullLocator())
        ax.legend(fontsize=7, loc="upper left")
    fig.suptitle(f"One-step κ sweep, {sweep['seed'].nunique()} seeds (dashed: κ = {kappa:g}; dash-dot: (hd)^¼)")
    fig.tight_layout()
    return fig
