"""Two-way ANOVA, variance-equality tests and post-hoc comparisons (study 04).

Follows the analysis of arXiv 2307.11684 ("Minibatching offers improved
generalization performance for second order optimizers"): peak accuracy of
repeated trainings as the response of an OLS model ``acc ~ C(optimizer) * C(batch)``.

- ``anova``: statsmodels' Type II ``anova_lm`` table plus partial eta squared
  (SS_effect / (SS_effect + SS_residual)), which statsmodels does not report;
  ``robust="hc3"`` gives F tests with a heteroscedasticity-consistent covariance
  (``anova_lm(..., robust="hc3")``, MacKinnon & White 1985).
- ``aligned_rank_anova``: the aligned rank transform (ART) ANOVA of Wobbrock et
  al. (CHI 2011) for two crossed factors, a nonparametric factorial test of main
  effects and the interaction. Written here because no maintained Python package
  has it (ARTool is R); it reuses ``anova`` on the ranks.
- ``residual_diagnostics``: Shapiro-Wilk, skewness and excess kurtosis of the OLS
  residuals (scipy), and across cells the spread of residual variances and a
  Brown-Forsythe test of equal variance; the QQ plot is
  ``statsmodels.graphics.gofplots.qqplot`` on ``ols(...).resid``.
- ``tukey``: Tukey HSD (statsmodels ``pairwise_tukeyhsd``) as a DataFrame.
- ``brown_forsythe``: the median-centred Levene test (scipy), with the
  degenerate cases (a group of one, every group constant) reported in words.
- ``variance_ratios``: var(second order) / var(first order) per batch size and
  pair, each tested with a two-group Brown-Forsythe test, Holm-corrected
  across all pairs and batch sizes (statsmodels ``multipletests``); both
  directions are marked (``lower``, ``higher``).
- ``lowest_mean_level`` and ``lowest_mean_bootstrap``: the level of ``by`` with
  the lowest mean response per group, and how often that holds when the
  observations of every cell are resampled (a seeded bootstrap).
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


def anova(df: pd.DataFrame, response: str, factors=("optimizer", "batch"), typ: int = 2,
          robust: str | None = None) -> pd.DataFrame:
    """Type ``typ`` ANOVA table: rows per term and ``Residual``; columns sum_sq, df, F, PR(>F), partial_eta_sq.

    robust: None for the classical F tests, or "hc0".."hc3" for F tests with that
    heteroscedasticity-consistent covariance (statsmodels ``anova_lm(robust=...)``); the
    table then has no sum_sq column (statsmodels backs a pseudo one out of F) and its
    partial_eta_sq is the classical effect size. Raises ``DegenerateDataError`` when the
    residual sum of squares is zero (every cell constant): F is then undefined.
    """
    if robust not in (None, "hc0", "hc1", "hc2", "hc3"):
        raise ValueError(f"unknown robust covariance {robust!r}; valid: None, 'hc0', 'hc1', 'hc2', 'hc3'")
    model = ols(df, response, factors)
    ss_res = float(model.ssr)
    if ss_res <= 1e-12 * max(1.0, float(((df[response] - df[response].mean()) ** 2).sum())):
        raise DegenerateDataError(f"the residual sum of squares of {response} is zero: every "
                                  f"{' x '.join(factors)} cell is constant, so F tests are undefined")
    table = anova_lm(model, typ=typ)
    eta = (table["sum_sq"] / (table["sum_sq"] + ss_res)).where(table.index != "Residual")
    if robust is not None:
        table = anova_lm(model, typ=typ, robust=robust).drop(columns="sum_sq")
    table["partial_eta_sq"] = eta
    return table


def art_align(df: pd.DataFrame, response: str, factors=("optimizer", "batch")) -> dict[str, pd.Series]:
    """The aligned responses of the ART for two crossed factors a, b: term -> (N,) Series.

    Each is the cell residual y - mean_ab plus that one effect's estimate from the cell
    means (a_i = mean_a - grand, b_j likewise, ab_ij = mean_ab - mean_a - mean_b + grand),
    so an ANOVA of it has (near) zero sums of squares for the other effects.
    """
    if len(factors) != 2:
        raise ValueError(f"the aligned rank transform takes exactly two factors, got {list(factors)}")
    a, b = factors
    _check(df, [response, a, b])
    frame = df[[response, a, b]]
    cell = frame.groupby([a, b])[response].transform("mean")
    means = frame.groupby([a, b])[response].mean()                        # cell means
    grand = means.mean()
    effect_a = frame[a].map(means.groupby(level=0).mean()) - grand
    effect_b = frame[b].map(means.groupby(level=1).mean()) - grand
    resid = frame[response] - cell
    return {f"C({a})": resid + effect_a, f"C({b})": resid + effect_b,
            f"C({a}):C({b})": resid + cell - grand - effect_a - effect_b}


def aligned_rank_anova(df: pd.DataFrame, response: str, factors=("optimizer", "batch")) -> pd.DataFrame:
    """Aligned rank transform ANOVA (Wobbrock et al. 2011) of two crossed factors.

    For each effect the aligned response (``art_align``) is ranked (ties averaged) and a
    full-factorial ANOVA of the ranks is fitted; only the aligned effect's F is read from it.
    Returns one row per term (``C(a)``, ``C(b)``, ``C(a):C(b)``): df, df_resid, F, PR(>F).
    """
    rows = []
    for term, aligned in art_align(df, response, factors).items():
        ranks = scipy.stats.rankdata(aligned.to_numpy(float))              # average ranks for ties
        table = anova(df[list(factors)].assign(aligned_rank=ranks), "aligned_rank", factors)
        rows.append({"term": term, "df": table.loc[term, "df"], "df_resid": table.loc["Residual", "df"],
                     "F": table.loc[term, "F"], "PR(>F)": table.loc[term, "PR(>F)"]})
    return pd.DataFrame(rows).set_index("term")


def residual_diagnostics(model, factors=None) -> dict:
    """Checks of the OLS assumptions on ``model``'s residuals.

    Always: n, Shapiro-Wilk W and p (normality), skewness and excess kurtosis. With
    ``factors`` (the model's factor columns): the ratio of the largest to the smallest
    within-cell residual variance (``var_ratio``, inf when a cell is constant) and a
    Brown-Forsythe test of equal residual variance across cells (``bf_stat``, ``bf_p``).
    ``note`` says what could not be computed.
    """
    resid = np.asarray(model.resid, dtype=float)
    out = {"n": len(resid), "shapiro_W": math.nan, "shapiro_p": math.nan, "skew": math.nan,
           "excess_kurtosis": math.nan, "note": ""}
    if len(resid) < 3 or np.ptp(resid) == 0:
        out["note"] = "Shapiro-Wilk needs >= 3 residuals that are not all equal"
    else:
        w, p = scipy.stats.shapiro(resid)
        out.update(shapiro_W=float(w), shapiro_p=float(p), skew=float(scipy.stats.skew(resid)),
                   excess_kurtosis=float(scipy.stats.kurtosis(resid)))
    if factors:
        frame = model.model.data.frame.assign(resid=resid)
        var = frame.groupby(list(factors))["resid"].var(ddof=1)
        out["var_ratio"] = float(var.max() / var.min()) if var.min() > 0 else math.inf
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                cells = frame[list(factors)].astype(str).agg(" x ".join, axis=1)
                out["bf_stat"], out["bf_p"] = brown_forsythe(frame.assign(cell=cells), "resid", "cell")
            except DegenerateDataError as e:
                out["bf_stat"], out["bf_p"] = math.nan, math.nan
                out["note"] = "; ".join(filter(None, [out["note"], str(e)]))
        if caught:
            out["note"] = "; ".join(filter(None, [out["note"], str(caught[0].message).split(";")[0]]))
    return out


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
    significantly lower variance (ratio < 1 and Holm p < alpha), ``higher`` one with
    significantly higher variance (ratio > 1 and Holm p < alpha). A pair where
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
    out["higher"] = (out["ratio"] > 1) & (out["p_holm"] < alpha)
    return out


def lowest_mean_level(df: pd.DataFrame, response: str, group: str = "optimizer", by: str = "batch") -> pd.DataFrame:
    """For each ``group``: the ``by`` level with the lowest mean response (and that mean)."""
    means = df.groupby([group, by])[response].mean().reset_index()
    idx = means.groupby(group)[response].idxmin()
    return means.loc[idx].rename(columns={by: f"worst_{by}", response: f"worst_mean_{response}"}).reset_index(drop=True)


def lowest_mean_bootstrap(df: pd.DataFrame, response: str, level, group: str = "optimizer", by: str = "batch",
                          n_boot: int = 1000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """How often ``level`` of ``by`` has the lowest mean response within each ``group``, under resampling.

    Every (group, by) cell's observations are resampled with replacement ``n_boot`` times
    (numpy generator seeded with ``seed``). Returns (one row per group: ``p_lowest``, the
    share of resamples in which ``level`` has the lowest mean; (n_boot,) counts of groups
    in which it is lowest, one per resample).
    """
    _check(df, [response, group, by])
    if level not in set(df[by]):
        raise KeyError(f"level {level!r} not in column {by!r}; levels: {sorted(set(df[by]))}")
    rng = np.random.default_rng(seed)
    rows, lowest = [], []
    for g, part in df.groupby(group, sort=True):
        levels = sorted(part[by].unique())
        means = np.empty((n_boot, len(levels)))                            # (B, L) resampled cell means
        for j, lv in enumerate(levels):
            v = part.loc[part[by] == lv, response].to_numpy(float)
            means[:, j] = v[rng.integers(0, len(v), (n_boot, len(v)))].mean(1)
        is_low = np.asarray(levels)[means.argmin(1)] == level              # (B,)
        lowest.append(is_low)
        rows.append({group: g, "p_lowest": float(is_low.mean())})
    return pd.DataFrame(rows), np.sum(lowest, axis=0)
