"""Figures of study 04 (optimizer variance by ANOVA): one ``plot_*`` function per figure.

Each takes the grid ``df`` of ``s04_anova.run_grid`` (or the results of
``s04_anova.analyze``, or the chosen learning rates of ``s04_anova.tune_lr``) and the
study's config, draws both arms side by side and returns the matplotlib figure; the
notebook shows it and saves it with ``plots.savefig``.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import matplotlib.ticker
import pandas as pd
import seaborn as sns

from .runs import ARM_LABELS, ARMS, RESPONSE


def _arm_axes(n_rows=1, **kw):
    fig, axes = plt.subplots(n_rows, len(ARMS), squeeze=False, **kw)
    return fig, axes


def _batch_axis(ax, batches) -> None:
    """A log-2 x axis with one tick per batch size, labelled in plain numbers."""
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(batches), [str(b) for b in sorted(batches)])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())


def plot_lr(chosen: pd.DataFrame, cfg):
    """The tuned learning rate of every cell, against batch size, one panel per arm."""
    fig, axes = _arm_axes(figsize=(10, 3.8), sharey=True)
    for ax, arm in zip(axes[0], ARMS):
        part = chosen[chosen["arm"] == arm]
        sns.lineplot(data=part, x="batch", y="lr", hue="optimizer", hue_order=list(cfg.optimizers), marker="o",
                     ax=ax, legend=arm == ARMS[-1])
        ax.set(yscale="log", xlabel="batch size (last = full batch)", ylabel="tuned learning rate",
               title=ARM_LABELS[arm])
        _batch_axis(ax, part["batch"].unique())
    if axes[0, -1].get_legend():
        sns.move_legend(axes[0, -1], "upper left", bbox_to_anchor=(1, 1))
    return fig


def plot_interaction(df: pd.DataFrame, cfg):
    """Mean peak accuracy per cell with bootstrap 95% CIs (seeded), one line per optimizer, one panel per arm."""
    fig, axes = _arm_axes(figsize=(12, 4.5))         # own y scales: the arms differ by x10 in spread
    for ax, arm in zip(axes[0], ARMS):
        part = df[df["arm"] == arm]
        sns.pointplot(data=part, x="batch", y=RESPONSE, hue="optimizer", order=sorted(part["batch"].unique()),
                      hue_order=list(cfg.optimizers), errorbar=("ci", 95), seed=0, dodge=0.3, ax=ax, markersize=4,
                      linewidth=1.5, legend=arm == ARMS[-1])
        ax.set(xlabel="batch size (last = full batch)", ylabel="peak test accuracy", title=ARM_LABELS[arm])
    sns.move_legend(axes[0, -1], "lower left")
    fig.suptitle("Interaction: optimizer x batch size (mean, 95% CI over seeds)")
    return fig


def plot_distributions(df: pd.DataFrame, cfg):
    """Box plots per cell with every seed as a dot (a swarm: deterministic, unlike jitter), one row per arm."""
    fig, axes = plt.subplots(len(ARMS), 1, figsize=(10, 8), squeeze=False)
    for ax, arm in zip(axes[:, 0], ARMS):
        part = df[df["arm"] == arm]
        order = sorted(part["batch"].unique())
        kw = dict(data=part, x="batch", y=RESPONSE, hue="optimizer", order=order, hue_order=list(cfg.optimizers),
                  ax=ax)
        sns.boxplot(**kw, fliersize=0, linewidth=0.8, legend=arm == ARMS[0])
        sns.swarmplot(**kw, dodge=True, size=2, palette="dark:k", legend=False)
        ax.set(xlabel="batch size", ylabel="peak test accuracy", title=ARM_LABELS[arm])
    sns.move_legend(axes[0, 0], "lower center", bbox_to_anchor=(0.5, 1.08), ncols=len(cfg.optimizers), title=None)
    fig.tight_layout()
    return fig


def plot_variance_heatmap(df: pd.DataFrame, cfg):
    """Seed-to-seed standard deviation of peak accuracy per (optimizer, batch) cell, one panel per arm."""
    fig, axes = _arm_axes(figsize=(12, 3.8))
    for ax, arm in zip(axes[0], ARMS):
        sd = df[df["arm"] == arm].pivot_table(index="optimizer", columns="batch", values=RESPONSE,
                                              aggfunc="std").loc[list(cfg.optimizers)]
        sns.heatmap(sd, annot=True, fmt=".3f", cmap="viridis", ax=ax, cbar_kws={"label": "sd of peak accuracy"})
        ax.set(xlabel="batch size", ylabel="", title=ARM_LABELS[arm])
    fig.tight_layout()
    return fig


def plot_residuals(results: dict):
    """Per arm: QQ plot of the OLS residuals (Shapiro-Wilk in the title) and residuals against fitted values."""
    from statsmodels.graphics.gofplots import qqplot

    fig, axes = plt.subplots(len(ARMS), 2, figsize=(10, 7.5), squeeze=False)
    for (ax_qq, ax_rf), arm in zip(axes, ARMS):
        model, d = results[arm]["model"], results[arm]["diagnostics"]
        qqplot(model.resid, line="s", ax=ax_qq, markersize=3)
        ax_qq.set(xlabel="normal quantile", ylabel="residual quantile")
        ax_qq.set_title(f"{ARM_LABELS[arm]}: Shapiro-Wilk W = {d['shapiro_W']:.3f}", fontsize="small")
        ax_rf.scatter(model.fittedvalues, model.resid, s=6, alpha=0.6)
        ax_rf.axhline(0, color="k", lw=0.8)
        ax_rf.set(xlabel="fitted peak accuracy (cell mean)", ylabel="residual")
        ax_rf.set_title(f"cell variances span x{d['var_ratio']:.3g} (Brown-Forsythe p = {d['bf_p']:.2g})",
                        fontsize="small")
    fig.tight_layout()
    return fig


def plot_curves(df: pd.DataFrame, cfg):
    """Test accuracy against updates, mean and sd over seeds, per optimizer (columns) and arm (rows)."""
    n_read = df["curve"].map(len)                                    # readings are evenly spaced in updates
    long = df.assign(update=[[u * (k + 1) // n for k in range(n)] for u, n in zip(df["updates"], n_read)])
    long = long.explode(["curve", "update"]).astype({"curve": float, "update": int}).rename(columns={"curve": "acc"})
    batches = [str(b) for b in sorted(df["batch"].unique())]
    palette = sns.color_palette("viridis", len(batches))
    fig, axes = plt.subplots(len(ARMS), len(cfg.optimizers), figsize=(2.6 * len(cfg.optimizers), 5.5), sharey=True,
                             squeeze=False)
    for i, arm in enumerate(ARMS):
        for j, o in enumerate(cfg.optimizers):
            ax = axes[i, j]
            part = long[(long["arm"] == arm) & (long["optimizer"] == o)]
            sns.lineplot(data=part, x="update", y="acc", hue=part["batch"].astype(str), hue_order=batches,
                         palette=palette, errorbar="sd", marker="o", markersize=3, ax=ax,
                         legend=(i, j) == (0, len(cfg.optimizers) - 1))
            ax.set_xscale("log", base=2)
            ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            ax.set(xlabel="updates" if i == len(ARMS) - 1 else "", ylabel="test accuracy" if j == 0 else "",
                   title=o if i == 0 else "")
        axes[i, 0].annotate(ARM_LABELS[arm], (0, 0.5), xytext=(-60, 0), xycoords="axes fraction",
                            textcoords="offset points", rotation=90, va="center", ha="center")
    if axes[0, -1].get_legend():
        sns.move_legend(axes[0, -1], "lower right", title="batch")
    fig.tight_layout()
    return fig
