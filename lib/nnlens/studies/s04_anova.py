"""Study 04: optimizer variance by ANOVA (arXiv 2307.11684).

"Minibatching offers improved generalization performance for second order
optimizers": the same model trained many times, peak test accuracy as the
response of a two-factor ANOVA with interaction (optimizer x batch size).

The notebook calls, in order:

- ``tune_lr(cfg)``: one learning rate per optimizer (``lr_search`` over ``cfg.lr_grid``).
- ``run_grid(cfg, lrs)``: every (batch size, optimizer, seed) training, through
  ``sweeps.run`` (local processes or a Dask cluster; finished jobs resume from a store).
- ``cells(df)``, ``analyze(df, cfg)``: per-cell summaries; the ANOVA, residual
  diagnostics, Tukey HSD, Brown-Forsythe tests and variance ratios (``nnlens.stats``).
- ``claims(results, cfg)``: the paper's three claims against the thresholds below.
- ``plot_*``: the study's figures.
"""
from __future__ import annotations

import functools
import math
import warnings

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from .. import paths, profiles, reports, stats, sweeps

# Thresholds, fixed before any run.
FULL_BATCH_MAJORITY = 0.5    # 04.2 "largely the worst": full batch worst for more than half of the optimizers
MIN_LOWER_PAIRS = 1          # 04.3 "at specific batch sizes": at least one (first, second)-order pair at one
                             # batch size with significantly lower second-order variance


# --------------------------------------------------------------------------- the training job
@functools.lru_cache(maxsize=4)
def _dataset(name: str, n_train: int, n_test: int):
    from .. import data

    return data.load(name, n_train, n_test, seed=0)   # one fixed split: seeds vary init and batch order only


def train_job(*, dataset: str, model: str, width: int, depth: int, optimizer: str, lr: float,
              batch_size: int, epochs: int, seed: int, schedule: str = "constant",
              n_train: int = 0, n_test: int = 0) -> dict:
    """Train one model and summarize its test-accuracy curve.

    The seed sets the initialization and the minibatch order (``train.fit``).
    Returns best and final test accuracy, the epoch of the best, whether the
    final training loss is finite, the effective batch size and the seconds taken.
    """
    from .. import models, train

    ds = _dataset(dataset, n_train, n_test)
    kwargs = {"width": width, "depth": depth} if model == "mlp" else {"width": width}
    spec = models.spec_for(model, ds, **kwargs)
    cfg = train.TrainConfig(optimizer=optimizer, lr=lr, epochs=epochs, batch_size=batch_size, seed=seed,
                            schedule=schedule)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # create_graph=True reference-cycle warning of Hessian optimizers
        h = train.fit(spec, ds, cfg, cache=False, progress=False, device="cpu").history
    acc = h["test_acc"].fillna(0.0)
    n = len(ds.x_train)
    return {"best_acc": float(acc.max()), "final_acc": float(acc.iloc[-1]), "best_epoch": int(acc.idxmax()) + 1,
            "finite": bool(math.isfinite(h["train_loss"].iloc[-1])),
            "batch": train.effective_batch(n, batch_size),
            "seconds": float(h["seconds"].iloc[-1])}


def lr_search(base: dict, lr_grid: dict[str, tuple], *, batch_size: int, seed: int = 0, **run_kwargs):
    """One lr per optimizer: the one with the best peak test accuracy at one batch size and one seed.

    base: the ``train_job`` params shared by every run (dataset, model, epochs, ...).
    lr_grid: optimizer -> candidate learning rates. Returns (table of every
    candidate with ``chosen`` marked, {optimizer: lr}). Ties go to the smaller lr.
    """
    grid = [{**base, "optimizer": o, "lr": float(lr), "batch_size": batch_size, "seed": seed}
            for o, lrs in lr_grid.items() for lr in lrs]
    df = sweeps.run(train_job, grid, **run_kwargs)
    df = df[["optimizer", "lr", "batch_size", "seed", "best_acc", "final_acc", "finite"]].copy()
    best = df.sort_values(["optimizer", "best_acc", "lr"], ascending=[True, False, True]).groupby(
        "optimizer", sort=False).head(1)
    df["chosen"] = df.index.isin(best.index)
    chosen = {o: float(best.loc[best["optimizer"] == o, "lr"].iloc[0]) for o in lr_grid}
    return df.reset_index(drop=True), chosen


# --------------------------------------------------------------------------- drivers
def _check(cfg) -> None:
    if not isinstance(cfg, profiles.Study04):
        raise TypeError(f"cfg must be profiles.Study04 (profiles.load('04', profile)), got {type(cfg).__name__}")


def orders(cfg) -> tuple[list[str], list[str]]:
    """(first-order, second-order) optimizers of ``cfg.optimizers``, by ``train.OPTIMIZERS``."""
    from .. import train

    _check(cfg)
    return ([o for o in cfg.optimizers if train.OPTIMIZERS[o].order == 1],
            [o for o in cfg.optimizers if train.OPTIMIZERS[o].order == 2])


def base_params(cfg) -> dict:
    """The ``train_job`` params every training of the study shares."""
    _check(cfg)
    return dict(dataset=cfg.dataset, model=cfg.model, width=cfg.width, depth=cfg.depth, epochs=cfg.epochs,
                schedule=cfg.schedule, n_train=cfg.n_train, n_test=cfg.n_test)


def _run_kwargs(cfg, address: str) -> dict:
    return dict(address=address, n_jobs=cfg.n_jobs, threads=1)


def default_store():
    """Where finished sweep jobs are kept (resumable; keys include the job's code path)."""
    return paths.cache_dir() / "sweeps" / "04"


def tune_lr(cfg, *, store=None, address: str = "") -> tuple[pd.DataFrame, dict]:
    """The learning-rate search of ``cfg``: (table of candidates, {optimizer: lr})."""
    store = default_store() if store is None else store
    return lr_search(base_params(cfg), dict(cfg.lr_grid), batch_size=cfg.lr_batch, store=store / "lr",
                     **_run_kwargs(cfg, address))


def run_grid(cfg, lrs: dict, *, store=None, address: str = "") -> pd.DataFrame:
    """Every (batch size, optimizer, seed) training: one row each, params then ``train_job``'s results."""
    store = default_store() if store is None else store
    grid = [{**base_params(cfg), "optimizer": o, "lr": lrs[o], "batch_size": b, "seed": s}
            for b in cfg.batch_sizes for o in cfg.optimizers for s in range(cfg.seeds)]  # costly small batches first
    return sweeps.run(train_job, grid, store=store / "grid", **_run_kwargs(cfg, address))


def cells(df: pd.DataFrame) -> pd.DataFrame:
    """Per (optimizer, batch) cell: n, mean/sd/var of peak accuracy, mean final accuracy."""
    return (df.groupby(["optimizer", "batch"])
            .agg(n=("best_acc", "size"), mean_best=("best_acc", "mean"), sd_best=("best_acc", "std"),
                 var_best=("best_acc", "var"), mean_final=("final_acc", "mean"))
            .reset_index())


def analyze(df: pd.DataFrame, cfg) -> dict:
    """The statistics of the grid ``df``: a dict of the model and tables the claims and figures use.

    Keys: ``model`` (statsmodels OLS of ``best_acc ~ C(optimizer) * C(batch)``), ``anova``
    (Type II table with partial eta²), ``diagnostics`` (Shapiro-Wilk of the residuals),
    ``tukey`` (between batch sizes), ``brown_forsythe`` (across optimizers, per batch size),
    ``variance_ratios`` (every first/second-order pair per batch size, Holm-corrected),
    ``worst`` (each optimizer's batch size with the lowest mean peak accuracy), ``full_batch``.
    """
    first, second = orders(cfg)
    model = stats.ols(df, "best_acc", ("optimizer", "batch"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vr = stats.variance_ratios(df, "best_acc", first, second, alpha=cfg.alpha)
    return {
        "model": model,
        "anova": stats.anova(df, "best_acc", ("optimizer", "batch")),
        "diagnostics": stats.residual_diagnostics(model),
        "tukey": stats.tukey(df, "best_acc", "batch", alpha=cfg.alpha),
        "brown_forsythe": stats.brown_forsythe_by(df, "best_acc", "optimizer", "batch"),
        "variance_ratios": vr,
        "worst": stats.lowest_mean_level(df, "best_acc"),
        "full_batch": int(df["batch"].max()),
    }


# --------------------------------------------------------------------------- claims
def claims(results: dict, cfg) -> list[reports.Row]:
    """The paper's three claims, from ``analyze``'s results (``anova``, ``worst``, ``full_batch``,
    ``variance_ratios``)."""
    _check(cfg)
    table, worst, vr, full = results["anova"], results["worst"], results["variance_ratios"], results["full_batch"]
    p_batch = float(table.loc["C(batch)", "PR(>F)"])
    n_full = int((worst["worst_batch"] == full).sum())
    low = vr[vr["lower"]]
    where = ", ".join(f"{r.second}<{r.first}@{r.batch}" for r in low.itertuples()) or "none"
    return [
        reports.Row("04.1", "Batch size has a significant effect on peak accuracy (Type II ANOVA, batch term)",
                    f"p = {p_batch:.2e}, partial eta^2 = {table.loc['C(batch)', 'partial_eta_sq']:.3f}",
                    f"p < {cfg.alpha}", p_batch < cfg.alpha),
        reports.Row("04.2", "Full batch is largely the worst (lowest mean peak accuracy per optimizer)",
                    f"{n_full} of {len(worst)} optimizers worst at full batch ({full})",
                    "a majority of optimizers", n_full > FULL_BATCH_MAJORITY * len(worst)),
        reports.Row("04.3", "Second-order optimizers have significantly lower variance at specific batch sizes",
                    f"{len(low)} of {len(vr)} pairs (min Holm p = {vr['p_holm'].min():.2g}): {where}",
                    f"at least one pair with ratio < 1 and Holm p < {cfg.alpha}", len(low) >= MIN_LOWER_PAIRS),
    ]


# --------------------------------------------------------------------------- figures
def plot_residuals(results: dict):
    """QQ plot and histogram of the OLS residuals, Shapiro-Wilk in the title."""
    from statsmodels.graphics.gofplots import qqplot

    model, diag = results["model"], results["diagnostics"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    qqplot(model.resid, line="s", ax=axes[0], markersize=3)
    axes[0].set_title(f"QQ plot of residuals (Shapiro-Wilk W={diag['shapiro_W']:.3f}, p={diag['shapiro_p']:.2g})")
    sns.histplot(model.resid, ax=axes[1], bins=40)
    axes[1].set_xlabel("residual")
    return fig


def plot_interaction(df: pd.DataFrame, cfg):
    """Mean peak accuracy per cell with bootstrap 95% CIs (seeded), one line per optimizer."""
    order = sorted(df["batch"].unique())
    fig, ax = plt.subplots(figsize=(7, 4.5))
    sns.pointplot(data=df, x="batch", y="best_acc", hue="optimizer", order=order, hue_order=list(cfg.optimizers),
                  errorbar=("ci", 95), seed=0, dodge=0.3, ax=ax, markersize=4, linewidth=1.5)
    ax.set(xlabel="batch size (last = full batch)", ylabel="peak test accuracy",
           title="Interaction: optimizer x batch size (95% CI)")
    return fig


def plot_distributions(df: pd.DataFrame, cfg):
    """Box plots per cell with every seed as a dot (a swarm: deterministic, unlike jitter)."""
    order = sorted(df["batch"].unique())
    fig, ax = plt.subplots(figsize=(9, 4.5))
    sns.boxplot(data=df, x="batch", y="best_acc", hue="optimizer", order=order, hue_order=list(cfg.optimizers),
                fliersize=0, ax=ax, linewidth=0.8)
    sns.swarmplot(data=df, x="batch", y="best_acc", hue="optimizer", order=order, hue_order=list(cfg.optimizers),
                  dodge=True, size=2, palette="dark:k", legend=False, ax=ax)
    ax.set(xlabel="batch size", ylabel="peak test accuracy", title="Per-cell distributions over seeds")
    return fig


def plot_variance_heatmap(df: pd.DataFrame, cfg):
    """Seed-to-seed standard deviation of peak accuracy per (optimizer, batch) cell."""
    var = df.pivot_table(index="optimizer", columns="batch", values="best_acc", aggfunc="std").loc[
        list(cfg.optimizers)]
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    sns.heatmap(var, annot=True, fmt=".3f", cmap="viridis", ax=ax, cbar_kws={"label": "sd of peak accuracy"})
    ax.set(xlabel="batch size", ylabel="", title="Seed-to-seed standard deviation")
    return fig
