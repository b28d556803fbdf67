"""Two-way ANOVA, variance-equality tests and post-hoc comparisons (study 04).

Follows the analysis of arXiv 2307.11684 ("Minibatching offers improved
generalization performance for second order optimizers"): peak accuracy of
repeated trainings as the response of an OLS model ``acc ~ C(optimizer) * C(batch)``.

- ``anova``: statsmodels' Type II ``anova_lm`` table plus partial eta squared
  (SS_effect / (SS_effect + SS_residual)), which statsmodels does not report.
- ``residual_diagnostics``: Shapiro-Wilk on the OLS residuals (scipy); the QQ
  plot is ``statsmodels.graphics.gofplots.qqplot`` on ``ols(...).resid``.
- ``tukey``: Tukey HSD (statsmodels ``pairwise_tukeyhsd``) as a DataFrame.
- ``brown_forsythe``: the median-centred Levene test (scipy), with the
  degenerate cases (a group of one, every group constant) reported in words.
- ``variance_ratios``: var(second order) / var(first order) per batch size and
  pair, each tested with a two-group Brown-Forsythe test, Holm-corrected
  across all pairs and batch sizes (statsmodels ``multipletests``).
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import scipy.stats
import statsmodels.formula.api as smf
from statsmodels.stats.anova import anova_lm
from statsmodels.stats.multicomp import pairwise_tukeyhsd
from statsmodels.stats.multitest import multipletests


class DegenerateDataError(ValueError):
    """The data cannot support the requested test (too few observations, no variance)."""


def _check(df: pd.DataFrame, columns) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise KeyError(f"columns {missing} not in the data; available: {', '.join(map(str, df.columns))}")


def formula(response: str, factors) -> str:
    """``response ~ C(a) * C(b) * ...``: all main effects and interactions of categorical factors."""
    return f"{response} ~ " + " * ".join(f"C({f})" for f in factors)


def ols(df: pd.DataFrame, response: str, factors=("optimizer", "batch")):
    """The fitted statsmodels OLS model of ``formula(response, factors)``."""
    _check(df, [response, *factors])
    cells = df.groupby(list(factors))[response].size()
    if (cells < 2).any():
        raise DegenerateDataError(f"every cell of {' x '.join(factors)} needs >= 2 observations for an "
                                  f"interaction ANOVA; smallest cell has {int(cells.min())}")
    return smf.ols(formula(response, factors), data=df).fit()


def anova(df: pd.DataFrame, response: str, factors=("optimizer", "batch"), typ: int = 2) -> pd.DataFrame:
    """Type ``typ`` ANOVA table: rows per term and ``Residual``; columns sum_sq, df, F, PR(>F), partial_eta_sq.

    Raises ``DegenerateDataError`` when the residual sum of squares is zero (every
    cell constant): F is then undefined and the table would be all NaN/inf.
    """
    model = ols(df, response, factors)
    ss_res = float(model.ssr)
    if ss_res <= 1e-12 * max(1.0, float(((df[response] - df[response].mean()) ** 2).sum())):
        raise DegenerateDataError(f"the residual sum of squares of {response} is zero: every "
                                  f"{' x '.join(factors)} cell is constant, so F tests are undefined")
    table = anova_lm(model, typ=typ)
    eta = table["sum_sq"] / (table["sum_sq"] + ss_res)
    table["partial_eta_sq"] = eta.where(table.index != "Residual")
    return table


def residual_diagnostics(model) -> dict:
    """Shapiro-Wilk test of the residuals' normality: {n, shapiro_W, shapiro_p, note}."""
    resid = np.asarray(model.resid, dtype=float)
    if len(resid) < 3 or np.ptp(resid) == 0:
        return {"n": len(resid), "shapiro_W": math.nan, "shapiro_p": math.nan,
                "note": "Shapiro-Wilk needs >= 3 residuals that are not all equal"}
    w, p = scipy.stats.shapiro(resid)
    return {"n": len(resid), "shapiro_W": float(w), "shapiro_p": float(p), "note": ""}


def tukey(df: pd.DataFrame, response: str, group: str, alpha: float = 0.05) -> pd.DataFrame:
    """Tukey HSD of ``response`` between the levels of ``group``: one row per pair."""
    _check(df, [response, group])
    res = pairwise_tukeyhsd(df[response].to_numpy(float), df[group].astype(str).to_numpy(), alpha=alpha)
    head, *rows = res.summary().data
    out = pd.DataFrame(rows, columns=head).rename(columns={"p-adj": "p_adj"})
    out["p_adj"] = res.pvalues  # the summary rounds p to 4 digits
    return out


def brown_forsythe(df: pd.DataFrame, response: str, group: str) -> tuple[float, float]:
    """Median-centred Levene (Brown-Forsythe) test of equal variance across ``group``: (statistic, p).

    Groups with fewer than 2 observations, or fewer than 2 groups, raise
    ``DegenerateDataError``. When every group is constant the statistic is 0/0:
    the variances are all zero, hence equal, and (nan, 1.0) is returned with a warning.
    """
    _check(df, [response, group])
    samples = [g[response].to_numpy(float) for _, g in df.groupby(group, sort=True)]
    if len(samples) < 2:
        raise DegenerateDataError(f"Brown-Forsythe needs >= 2 groups of {group}, got {len(samples)}")
    if min(len(s) for s in samples) < 2:
        raise DegenerateDataError(f"Brown-Forsythe needs >= 2 observations per {group} group")
    dev = np.concatenate([np.abs(s - np.median(s)) for s in samples])
    if np.ptp(dev) == 0:
        warnings.warn(f"Brown-Forsythe: absolute deviations of {response} are all equal across {group} "
                      f"(e.g. every group constant); no evidence of unequal variance, returning p = 1",
                      stacklevel=2)
        return math.nan, 1.0
    stat, p = scipy.stats.levene(*samples, center="median")
    return float(stat), float(p)


def brown_forsythe_by(df: pd.DataFrame, response: str, group: str, by: str) -> pd.DataFrame:
    """``brown_forsythe`` within each level of ``by``: columns by, statistic, p_value, note."""
    rows = []
    for level, part in df.groupby(by, sort=True):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                stat, p = brown_forsythe(part, response, group)
                note = str(caught[0].message).split(";")[0] if caught else ""
            except DegenerateDataError as e:
                stat, p, note = math.nan, math.nan, str(e)
        rows.append({by: level, "statistic": stat, "p_value": p, "note": note})
    return pd.DataFrame(rows)


def variance_ratios(df: pd.DataFrame, response: str, first: list, second: list, group: str = "optimizer",
                    by: str = "batch", alpha: float = 0.05) -> pd.DataFrame:
    """var(second) / var(first) for every (first-order, second-order) pair within each ``by`` level.

    Each pair is tested with a two-group Brown-Forsythe test; p-values are
    Holm-corrected over every row. ``lower`` marks a second-order optimizer with
    significantly lower variance (ratio < 1 and Holm p < alpha). A pair where
    both variances are zero gets ratio nan, p = 1 and a note.
    """
    _check(df, [response, group, by])
    rows = []
    for level, part in df.groupby(by, sort=True):
        for f in first:
            for s in second:
                a = part.loc[part[group] == f, response].to_numpy(float)
                b = part.loc[part[group] == s, response].to_numpy(float)
                if len(a) < 2 or len(b) < 2:
                    continue
                va, vb = a.var(ddof=1), b.var(ddof=1)
                note = ""
                if va == 0 and vb == 0:
                    ratio, p, note = math.nan, 1.0, "both variances zero"
                else:
                    ratio = vb / va if va > 0 else math.inf
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        _, p = brown_forsythe(pd.DataFrame({"y": np.r_[a, b], "g": [0] * len(a) + [1] * len(b)}),
                                              "y", "g")
                rows.append({by: level, "first": f, "second": s, "var_first": va, "var_second": vb,
                             "ratio": ratio, "p": p, "note": note})
    out = pd.DataFrame(rows)
    if out.empty:
        raise DegenerateDataError("no (first, second) pair with >= 2 observations each in any group")
    out["p_holm"] = multipletests(out["p"].to_numpy(float), alpha=alpha, method="holm")[1]
    out["lower"] = (out["ratio"] < 1) & (out["p_holm"] < alpha)
    return out


def lowest_mean_level(df: pd.DataFrame, response: str, group: str = "optimizer", by: str = "batch") -> pd.DataFrame:
    """For each ``group``: the ``by`` level with the lowest mean response (and that mean)."""
    means = df.groupby([group, by])[response].mean().reset_index()
    idx = means.groupby(group)[response].idxmin()
    return means.loc[idx].rename(columns={by: f"worst_{by}", response: f"worst_mean_{response}"}).reset_index(drop=True)
