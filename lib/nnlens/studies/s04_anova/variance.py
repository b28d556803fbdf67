"""Study 04's variance claim (04.3 / 04.6): a small family of tests, intervals on every ratio, and the design's power.

The audit (issue 22) found 24 Brown-Forsythe pairs under Holm with 10 seeds per cell: power 1.5% at a variance
ratio of 3. Here the family is one test per batch size (second-order cells pooled against first-order cells),
each pair's log variance ratio gets a bootstrap interval over seeds, and the minimum detectable ratio of the
design (80% power, Holm over the batch sizes) is simulated at the design's own size.

- ``pooled_tests(df, first, second)``: per batch size, Brown-Forsythe (median-centred Levene) of the pooled
  second-order cells against the pooled first-order cells; Holm over the batch sizes.
- ``ratio_intervals(df, first, second)``: per (second, first) pair and batch size, and pooled, var(second) /
  var(first) with a percentile bootstrap interval over seeds (resampled within each cell).
- ``min_detectable_ratio(n, n_first, n_second, n_tests)``: the smallest fold reduction of the variance that the
  pooled test finds with 80% power, by simulation of normal responses.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as st

ALPHA = 0.05
POWER = 0.80
N_BOOT = 2000
N_SIM = 2000
RATIOS = (1.25, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 32.0)   # fold reductions searched for the MDE


def _deviations(values: np.ndarray) -> np.ndarray:
    """|y - median| within one cell (the Brown-Forsythe transform); ``values`` (..., n)."""
    return np.abs(values - np.median(values, axis=-1, keepdims=True))


def _holm(p: np.ndarray) -> np.ndarray:
    order = np.argsort(p)
    adj = np.empty_like(p, dtype=float)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        adj[i] = running
    return adj


def pooled_tests(df: pd.DataFrame, response: str, first: list[str], second: list[str]) -> pd.DataFrame:
    """One row per batch size: pooled variance of each order, their ratio, Brown-Forsythe p, Holm p, direction."""
    rows = []
    for batch, part in df.groupby("batch", sort=True):
        dev = {o: _deviations(g[response].to_numpy(float)) for o, g in part.groupby("optimizer")}
        var = part.groupby("optimizer")[response].var(ddof=1)
        z1 = np.concatenate([dev[o] for o in first if o in dev])
        z2 = np.concatenate([dev[o] for o in second if o in dev])
        p = float(st.ttest_ind(z2, z1).pvalue) if z1.std() + z2.std() > 0 else 1.0
        v1, v2 = var.reindex(first).mean(), var.reindex(second).mean()
        rows.append({"batch": int(batch), "var_first": v1, "var_second": v2, "ratio": v2 / v1 if v1 > 0 else np.inf,
                     "p": p})
    out = pd.DataFrame(rows)
    out["p_holm"] = _holm(out["p"].to_numpy())
    out["lower"] = (out["p_holm"] < ALPHA) & (out["ratio"] < 1)
    out["higher"] = (out["p_holm"] < ALPHA) & (out["ratio"] > 1)
    return out


def _boot_var(values: np.ndarray, rng) -> np.ndarray:
    idx = rng.integers(0, len(values), (N_BOOT, len(values)))
    return values[idx].var(axis=1, ddof=1)


def ratio_intervals(df: pd.DataFrame, response: str, first: list[str], second: list[str],
                    seed: int = 0) -> pd.DataFrame:
    """var(second)/var(first) per pair and batch size (and ``pooled``), with a 95% bootstrap interval of its log."""
    rng = np.random.default_rng(seed)
    rows = []
    for batch, part in df.groupby("batch", sort=True):
        cells = {o: g[response].to_numpy(float) for o, g in part.groupby("optimizer")}
        boot = {o: _boot_var(v, rng) for o, v in cells.items()}
        pairs = [(s, f, boot[s], boot[f], cells[s].var(ddof=1), cells[f].var(ddof=1))
                 for s in second for f in first if s in cells and f in cells]
        pool = lambda os, src: np.mean([src[o] for o in os if o in src], axis=0)    # noqa: E731
        pairs.append(("second order", "first order", pool(second, boot), pool(first, boot),
                      pool(second, {o: v.var(ddof=1) for o, v in cells.items()}),
                      pool(first, {o: v.var(ddof=1) for o, v in cells.items()})))
        for s, f, bs, bf, vs, vf in pairs:
            with np.errstate(divide="ignore", invalid="ignore"):
                lr = np.log(bs / bf)
            lo, hi = np.nanquantile(lr, [0.025, 0.975])
            rows.append({"batch": int(batch), "second": s, "first": f, "ratio": vs / vf if vf > 0 else np.inf,
                         "log_ratio": float(np.log(vs / vf)) if vf > 0 and vs > 0 else np.nan,
                         "log_lo": float(lo), "log_hi": float(hi)})
    return pd.DataFrame(rows)


def simulated_power(ratio: float, n: int, n_first: int, n_second: int, n_tests: int, seed: int = 0) -> float:
    """Share of ``N_SIM`` normal designs in which the pooled test finds var(second) = var(first) / ``ratio``
    at one batch size with p < ALPHA / n_tests (Holm's first step; the other batch sizes null)."""
    rng = np.random.default_rng(seed)
    y1 = rng.standard_normal((N_SIM, n_first, n))
    y2 = rng.standard_normal((N_SIM, n_second, n)) / np.sqrt(ratio)
    z1 = _deviations(y1).reshape(N_SIM, -1)
    z2 = _deviations(y2).reshape(N_SIM, -1)
    p = st.ttest_ind(z2, z1, axis=1).pvalue
    return float(np.mean(p < ALPHA / n_tests))


def min_detectable_ratio(n: int, n_first: int, n_second: int, n_tests: int) -> tuple[float, pd.DataFrame]:
    """The smallest fold reduction in ``RATIOS`` with power >= POWER (inf if none), and the power curve."""
    curve = pd.DataFrame({"ratio": RATIOS, "power": [simulated_power(r, n, n_first, n_second, n_tests)
                                                     for r in RATIOS]})
    hit = curve[curve["power"] >= POWER]
    return (float(hit["ratio"].iloc[0]) if len(hit) else np.inf), curve
