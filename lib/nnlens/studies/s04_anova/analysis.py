"""Study 04's analysis: per-cell summaries, each arm's ANOVA and variance tests, the published tables.

``analyze(df, cfg)`` takes the grid of every arm (``runs.run_grid`` and ``arms.run_converged`` stacked) and
returns {arm: statistics}; ``tables`` stacks them; ``eta_table`` gives each arm's partial eta^2 side by side.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ... import stats
from . import variance
from .config import Study04
from .runs import ALPHA, ARM_LABELS, ARMS, FULL_BATCH_MAJORITY, N_BOOT, RESPONSE, orders

TERMS = {"C(batch)": "batch", "C(optimizer)": "optimizer", "C(optimizer):C(batch)": "interaction"}


def cells(df: pd.DataFrame) -> pd.DataFrame:
    """Per (arm, optimizer, batch) cell: lr, updates (the most a seed made), n, mean/sd/var of peak accuracy,
    mean final accuracy, diverged runs, gradient evaluations per update, and SophiaH's clipped and
    non-positive-curvature shares; with the converged arm, ``stopped_early`` (share of its runs that the patience,
    not the cap, ended; empty in the other arms).
    (CPU seconds stay out: a published table must not change between reruns; ``cpu_seconds`` sums them.)"""
    extra = {"stopped_early": ("stopped_early", "mean")} if "stopped_early" in df.columns else {}
    if extra:
        df = df.assign(stopped_early=df["stopped_early"].astype(float))
    return (df.groupby(["arm", "optimizer", "batch"], sort=False)
            .agg(lr=("lr", "first"), updates=("updates", "max"), n=(RESPONSE, "size"),
                 mean_best=(RESPONSE, "mean"), sd_best=(RESPONSE, "std"), var_best=(RESPONSE, "var"),
                 mean_final=("final_acc", "mean"), diverged=("finite", lambda f: int((~f.astype(bool)).sum())),
                 grad_evals=("grad_evals_per_update", "mean"), clip_fraction=("clip_fraction", "mean"),
                 hessian_nonpositive=("hessian_nonpositive", "mean"), **extra)
            .reset_index())


def cpu_seconds(df: pd.DataFrame, column: str = "cpu_seconds") -> float:
    """CPU seconds of the distinct trainings (or candidates) in ``df``: a row both arms share counts once."""
    keys = [c for c in ("optimizer", "batch", "updates", "lr", "seed", "grad_budget", "patience") if c in df.columns]
    df = df.assign(**{c: df[c].fillna(0) for c in ("grad_budget", "patience") if c in df.columns})
    return float(df.drop_duplicates(keys)[column].sum())


def analyze(df: pd.DataFrame, cfg: Study04) -> dict:
    """The statistics of each arm of the grid ``df`` (the arms it has, in ``ARMS`` order): {arm: dict of the model
    and tables}.

    Per arm: ``model`` (OLS of ``best_acc ~ C(optimizer) * C(batch)``), ``anova`` (Type II,
    partial eta²), ``anova_hc3`` (the same F tests with HC3 covariance), ``art`` (aligned
    rank transform ANOVA), ``diagnostics`` (residual normality, cell-variance spread),
    ``tukey`` (between batch sizes), ``brown_forsythe`` (equal variance across optimizers,
    per batch size), ``pooled_variance`` (the 04.3 family: per batch size, second- against first-order
    cells pooled, Brown-Forsythe, Holm over the batch sizes), ``variance_ratios`` (every pair's and the
    pooled variance ratio with a bootstrap interval of its log), ``mde_ratio`` and ``power`` (the fold
    reduction this design detects with 80% power, by simulation, and the power curve), ``worst`` (each
    optimizer's batch size with the lowest mean and the bootstrap share of resamples in which full batch is lowest),
    ``p_majority`` (bootstrap share in which a majority is lowest at full batch), ``full_batch``.
    """
    first, second = orders(cfg)
    factors = ("optimizer", "batch")
    out = {}
    for arm in [a for a in ARMS if a in set(df["arm"])]:
        part = df[df["arm"] == arm]
        model = stats.ols(part, RESPONSE, factors)
        full = int(part["batch"].max())
        pooled = variance.pooled_tests(part, RESPONSE, first, second)
        n_seeds = int(part.groupby(["optimizer", "batch"]).size().min())
        mde, power = variance.min_detectable_ratio(n_seeds, len(first), len(second), len(pooled))
        boot, counts = stats.lowest_mean_bootstrap(part, RESPONSE, full, n_boot=N_BOOT, seed=0)
        worst = stats.lowest_mean_level(part, RESPONSE).merge(boot.rename(columns={"p_lowest": "p_full_lowest"}))
        out[arm] = {
            "model": model,
            "anova": stats.anova(part, RESPONSE, factors),
            "anova_hc3": stats.anova(part, RESPONSE, factors, robust="hc3"),
            "art": stats.aligned_rank_anova(part, RESPONSE, factors),
            "diagnostics": stats.residual_diagnostics(model, factors),
            "tukey": stats.tukey(part, RESPONSE, "batch", alpha=ALPHA),
            "brown_forsythe": stats.brown_forsythe_by(part, RESPONSE, "optimizer", "batch"),
            "variance_ratios": variance.ratio_intervals(part, RESPONSE, first, second),
            "pooled_variance": pooled,
            "mde_ratio": mde,
            "power": power,
            "n_seeds": n_seeds,
            "worst": worst,
            "p_majority": float(np.mean(counts > FULL_BATCH_MAJORITY * len(worst))),
            "full_batch": full,
        }
    return out


def tables(results: dict) -> dict[str, pd.DataFrame]:
    """``analyze``'s tables with the arms stacked (an ``arm`` column first), ready for ``Outputs.save_table``;
    ``eta`` is ``eta_table``."""
    def stack(f):
        return pd.concat([f(arm, r).assign(arm=arm) for arm, r in results.items()], ignore_index=True).pipe(
            lambda t: t[["arm", *[c for c in t.columns if c != "arm"]]])

    def anova(arm, r):
        a = r["anova"].rename(columns={"F": "F", "PR(>F)": "p"})
        a = a.join(r["anova_hc3"][["F", "PR(>F)"]].rename(columns={"F": "F_hc3", "PR(>F)": "p_hc3"}))
        a = a.join(r["art"][["F", "PR(>F)"]].rename(columns={"F": "F_art", "PR(>F)": "p_art"}))
        return a.rename_axis("term").reset_index()

    return {
        "anova": stack(anova),
        "diagnostics": stack(lambda arm, r: pd.DataFrame([r["diagnostics"]])),
        "tukey_batch": stack(lambda arm, r: r["tukey"]),
        "brown_forsythe": stack(lambda arm, r: r["brown_forsythe"]),
        "variance_ratios": stack(lambda arm, r: r["variance_ratios"]),
        "pooled_variance": stack(lambda arm, r: r["pooled_variance"]),
        "power": stack(lambda arm, r: r["power"]),
        "worst": stack(lambda arm, r: r["worst"]),
        "eta": eta_table(results),
    }


def eta_table(results: dict) -> pd.DataFrame:
    """One row per arm: its label, seeds per cell, and the classical Type II partial eta^2 of batch size, optimizer
    and their interaction (with the HC3 p of each): how much of the seed-to-seed variance each factor explains
    under each way of matching the budget."""
    rows = []
    for arm, r in results.items():
        a, hc3 = r["anova"], r["anova_hc3"]
        row = {"arm": arm, "label": ARM_LABELS[arm], "seeds": r["n_seeds"]}
        for term, name in TERMS.items():
            row[f"eta_{name}"] = float(a.loc[term, "partial_eta_sq"])
            row[f"p_hc3_{name}"] = float(hc3.loc[term, "PR(>F)"])
        rows.append(row)
    return pd.DataFrame(rows)


