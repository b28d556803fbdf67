"""Figures of study 04 (optimizer variance by ANOVA): one ``plot_*`` function per figure.

Each takes the grid ``df`` of ``s04_anova.run_grid`` (or the results of
``s04_anova.analyze``, or the chosen learning rates of ``s04_anova.tune_lr``) and the
study's config, draws the arms it has side by side and returns the matplotlib figure; the
notebook shows it and saves it with ``plots.savefig``.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import matplotlib.ticker
import pandas as pd
import seaborn as sns

from .runs import ARM_LABELS, ARMS, RESPONSE

# One colour per optimizer, far apart (Okabe-Ito): Adam and AdaHessian were orange and red, hard to tell apart.
OPT_PALETTE = {"sgdm": "#0072B2", "sgd": "#56B4E9", "adam": "#E69F00", "lbfgs": "#009E73", "adahessian": "#CC79A7",
               "sophiah": "#555555"}
OPT_MARKERS = {"sgdm": "o", "sgd": "o", "adam": "s", "lbfgs": "^", "adahessian": "D", "sophiah": "v"}


def _palette(cfg) -> dict:
    return {o: OPT_PALETTE.get(o, "black") for o in cfg.optimizers}


def _arms(frame) -> list[str]:
    """The arms ``frame`` (a grid, chosen lrs, or ``analyze``'s results) has, in ``ARMS`` order."""
    have = set(frame) if isinstance(frame, dict) else set(frame["arm"])
    return [a for a in ARMS if a in have]


def _arm_axes(arms, width: float, **kw):
    fig, axes = plt.subplots(1, len(arms), squeeze=False, figsize=(width * len(arms), kw.pop("height")), **kw)
    return fig, axes


def _batch_axis(ax, batches) -> None:
    """A log-2 x axis with one tick per batch size, labelled in plain numbers."""
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(batches), [str(b) for b in sorted(batches)])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())


def plot_lr(chosen: pd.DataFrame, cfg):
    """The tuned learning rate of every cell, against batch size, one panel per arm."""
    arms = _arms(chosen)
    fig, axes = _arm_axes(arms, 5, height=3.8, sharey=True)
    n = len(cfg.optimizers)
    for ax, arm in zip(axes[0], arms, strict=False):
        part = chosen[chosen["arm"] == arm]
        for i, o in enumerate(cfg.optimizers):         # each optimizer nudged sideways: equal choices stay visible
            p = part[part["optimizer"] == o].sort_values("batch")
            ax.plot(p["batch"] * 2 ** (0.12 * (i - (n - 1) / 2)), p["lr"], marker=OPT_MARKERS.get(o, "o"), ms=5,
                    color=OPT_PALETTE.get(o, "black"), lw=1.2, label=o)
        ax.set(yscale="log", xlabel="batch size (last = full batch)", ylabel="tuned learning rate",
               title=ARM_LABELS[arm])
        _batch_axis(ax, part["batch"].unique())
    axes[0, -1].legend(title="optimizer", fontsize="small")
    if axes[0, -1].get_legend():
        sns.move_legend(axes[0, -1], "upper left", bbox_to_anchor=(1, 1))
    return fig


def plot_interaction(df: pd.DataFrame, cfg):
    """Mean peak accuracy per cell with bootstrap 95% CIs (seeded), one line per optimizer, one panel per arm."""
    arms = _arms(df)
    fig, axes = _arm_axes(arms, 4.5, height=4.5)     # own y scales: the arms differ by x10 in spread
    for ax, arm in zip(axes[0], arms, strict=False):
        part = df[df["arm"] == arm]
        sns.pointplot(data=part, x="batch", y=RESPONSE, hue="optimizer", order=sorted(part["batch"].unique()),
                      hue_order=list(cfg.optimizers), palette=_palette(cfg), markers=[OPT_MARKERS.get(o, "o") for o in
                      cfg.optimizers], errorbar=("ci", 95), seed=0, dodge=0.3, ax=ax, markersize=4,
                      linewidth=1.5, legend=arm == arms[-1])
        ax.set(xlabel="batch size (last = full batch)", ylabel="peak test accuracy", title=ARM_LABELS[arm])
    sns.move_legend(axes[0, -1], "lower left")
    fig.suptitle("Interaction: optimizer x batch size (mean, 95% CI over seeds)")
    return fig


def plot_distributions(df: pd.DataFrame, cfg):
    """Box plots per cell with every seed as a dot (a swarm: deterministic, unlike jitter), one row per arm."""
    arms = _arms(df)
    fig, axes = plt.subplots(len(arms), 1, figsize=(10, 4 * len(arms)), squeeze=False)
    for ax, arm in zip(axes[:, 0], arms, strict=False):
        part = df[df["arm"] == arm]
        order = sorted(part["batch"].unique())
        kw = dict(data=part, x="batch", y=RESPONSE, hue="optimizer", order=order, hue_order=list(cfg.optimizers),
                  ax=ax)
        sns.boxplot(**kw, palette=_palette(cfg), fliersize=0, linewidth=0.8, legend=arm == arms[0])
        sns.swarmplot(**kw, dodge=True, size=2, palette="dark:k", legend=False)
        ax.set(xlabel="batch size", ylabel="peak test accuracy", title=ARM_LABELS[arm])
    sns.move_legend(axes[0, 0], "lower center", bbox_to_anchor=(0.5, 1.08), ncols=len(cfg.optimizers), title=None)
    fig.tight_layout()
    return fig


def plot_variance_heatmap(df: pd.DataFrame, cfg):
    """Seed-to-seed standard deviation of peak accuracy per (optimizer, batch) cell, one panel per arm, one scale."""
    arms = _arms(df)
    sds = {arm: df[df["arm"] == arm].pivot_table(index="optimizer", columns="batch", values=RESPONSE,
                                                 aggfunc="std").loc[list(cfg.optimizers)] for arm in arms}
    vmax = max(float(t.max().max()) for t in sds.values())
    fig, axes = plt.subplots(1, len(arms) + 1, figsize=(6 * len(arms) + 0.5, 3.8),
                             gridspec_kw={"width_ratios": [1] * len(arms) + [0.05]})
    for i, (ax, arm) in enumerate(zip(axes[:-1], arms, strict=True)):
        sns.heatmap(sds[arm], annot=True, fmt=".3f", cmap="viridis", vmin=0, vmax=vmax, ax=ax, cbar=i == 0,
                    cbar_ax=axes[-1] if i == 0 else None, cbar_kws={"label": "sd of peak accuracy"})
        ax.set(xlabel="batch size", ylabel="", title=ARM_LABELS[arm])
    n = df.groupby(["arm", "optimizer", "batch"]).size()
    fig.suptitle(f"Seed-to-seed sd of peak test accuracy ({n.min()}-{n.max()} seeds per cell; one colour scale)")
    fig.tight_layout()
    return fig


def plot_residuals(results: dict):
    """Per arm: QQ plot of the OLS residuals (Shapiro-Wilk in the title) and residuals against fitted values."""
    from statsmodels.graphics.gofplots import qqplot

    arms = _arms(results)
    fig, axes = plt.subplots(len(arms), 2, figsize=(10, 3.75 * len(arms)), squeeze=False)
    for (ax_qq, ax_rf), arm in zip(axes, arms, strict=False):
        model, d = results[arm]["model"], results[arm]["diagnostics"]
        qqplot(model.resid, line="s", ax=ax_qq, markersize=3)
        ax_qq.set(xlabel="normal quantile", ylabel="residual quantile")
        ax_qq.set_title(f"{ARM_LABELS[arm]}: Shapiro-Wilk W = {d['shapiro_W']:.3f}")
        ax_rf.scatter(model.fittedvalues, model.resid, s=6, alpha=0.6)
        ax_rf.axhline(0, color="k", lw=0.8)
        ax_rf.set(xlabel="fitted peak accuracy (cell mean)", ylabel="residual")
        ax_rf.set_title(f"cell variances span a factor {d['var_ratio']:,.0f} (Brown-Forsythe p = {d['bf_p']:.2g})")
    fig.tight_layout()
    return fig


def plot_curves(df: pd.DataFrame, cfg):
    """Test accuracy against updates, mean and sd over seeds, per optimizer (columns) and arm (rows). Readings are
    evenly spaced in updates, except in the gradient-evaluation-matched arm, whose second-order readings (equal
    fractions of the gradient budget) are drawn at the same fractions of the updates the run made."""
    arms = _arms(df)
    n_read = df["curve"].map(len)
    long = df.assign(update=[[u * (k + 1) // n for k in range(n)] for u, n in zip(df["updates"], n_read, strict=False)])
    long = long.explode(["curve", "update"]).astype({"curve": float, "update": int}).rename(columns={"curve": "acc"})
    batches = [str(b) for b in sorted(df["batch"].unique())]
    palette = sns.color_palette("viridis", len(batches))
    fig, axes = plt.subplots(len(arms), len(cfg.optimizers), figsize=(2.6 * len(cfg.optimizers), 2.75 * len(arms)),
                             sharey="row", squeeze=False)
    for i, arm in enumerate(arms):
        for j, o in enumerate(cfg.optimizers):
            ax = axes[i, j]
            part = long[(long["arm"] == arm) & (long["optimizer"] == o)]
            sns.lineplot(data=part, x="update", y="acc", hue=part["batch"].astype(str), hue_order=batches,
                         palette=palette, errorbar="sd", marker="o", markersize=3, ax=ax,
                         legend=(i, j) == (0, len(cfg.optimizers) - 1))
            ax.set_xscale("log", base=2)
            ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            ax.set(xlabel="updates" if i == len(arms) - 1 else "", ylabel="test accuracy" if j == 0 else "",
                   title=o if i == 0 else "")
        axes[i, 0].annotate(ARM_LABELS[arm], (0, 0.5), xytext=(-60, 0), xycoords="axes fraction",
                            textcoords="offset points", rotation=90, va="center", ha="center")
    if axes[0, -1].get_legend():
        sns.move_legend(axes[0, -1], "upper left", bbox_to_anchor=(1.02, 1), title="batch")   # off the data
    fig.tight_layout()
    return fig
