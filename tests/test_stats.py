"""stats: ANOVA against hand formulas, Brown-Forsythe against scipy, degenerate cases."""
import itertools
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.stats
from statsmodels.stats.multitest import multipletests

from nnlens import stats


def _balanced(seed=0, n=4):
    rng = np.random.default_rng(seed)
    rows = []
    for i, j in itertools.product(range(2), range(3)):
        for y in rng.normal(0.1 * i + 0.3 * j + 0.2 * i * j, 0.5 + 0.1 * j, n):
            rows.append({"a": f"a{i}", "b": f"b{j}", "y": y})
    return pd.DataFrame(rows)


def test_anova_matches_hand_sums_of_squares_on_balanced_design():
    df, n = _balanced(), 4
    y = df["y"].to_numpy()
    grand = y.mean()
    mi = df.groupby("a")["y"].mean()
    mj = df.groupby("b")["y"].mean()
    mij = df.groupby(["a", "b"])["y"].mean()
    ss_a = 3 * n * ((mi - grand) ** 2).sum()
    ss_b = 2 * n * ((mj - grand) ** 2).sum()
    ss_ab = n * sum((mij[(i, j)] - mi[i] - mj[j] + grand) ** 2 for i, j in mij.index)
    ss_e = sum(((g["y"] - g["y"].mean()) ** 2).sum() for _, g in df.groupby(["a", "b"]))
    df_e = len(y) - 6
    table = stats.anova(df, "y", ("a", "b"))
    assert list(table.index) == ["C(a)", "C(b)", "C(a):C(b)", "Residual"]
    assert list(table.columns) == ["sum_sq", "df", "F", "PR(>F)", "partial_eta_sq"]
    np.testing.assert_allclose(table["sum_sq"], [ss_a, ss_b, ss_ab, ss_e], rtol=1e-10)
    np.testing.assert_allclose(table["df"], [1, 2, 2, df_e])
    f_b = (ss_b / 2) / (ss_e / df_e)
    assert table.loc["C(b)", "F"] == pytest.approx(f_b)
    assert table.loc["C(b)", "PR(>F)"] == pytest.approx(scipy.stats.f.sf(f_b, 2, df_e))
    assert table.loc["C(a)", "partial_eta_sq"] == pytest.approx(ss_a / (ss_a + ss_e))
    assert np.isnan(table.loc["Residual", "partial_eta_sq"])


def test_anova_degenerate_cases_say_why():
    df = _balanced()
    df["y"] = df.groupby(["a", "b"])["y"].transform("mean")     # every cell constant
    with pytest.raises(stats.DegenerateDataError, match="residual sum of squares"):
        stats.anova(df, "y", ("a", "b"))
    with pytest.raises(stats.DegenerateDataError, match=">= 2 observations"):
        stats.anova(_balanced(n=1), "y", ("a", "b"))
    with pytest.raises(KeyError, match="available"):
        stats.anova(_balanced(), "acc", ("a", "b"))


def test_brown_forsythe_matches_scipy_levene_median():
    df = _balanced(seed=3, n=6)
    stat, p = stats.brown_forsythe(df, "y", "b")
    ref = scipy.stats.levene(*[g["y"].to_numpy() for _, g in df.groupby("b")], center="median")
    assert stat == pytest.approx(ref.statistic) and p == pytest.approx(ref.pvalue)


def test_brown_forsythe_degenerate():
    df = pd.DataFrame({"g": ["x"] * 3 + ["z"] * 3, "y": [0.5] * 3 + [0.7] * 3})
    with pytest.warns(UserWarning, match="all equal"):
        stat, p = stats.brown_forsythe(df, "y", "g")
    assert np.isnan(stat) and p == 1.0
    with pytest.raises(stats.DegenerateDataError, match=">= 2 groups"):
        stats.brown_forsythe(df[df.g == "x"], "y", "g")
    by = stats.brown_forsythe_by(pd.concat([df.assign(k=1), _balanced().rename(columns={"b": "g"}).assign(k=2)]),
                                 "y", "g", "k")
    assert list(by["k"]) == [1, 2] and "all equal" in by.loc[0, "note"] and by.loc[1, "note"] == ""


def test_variance_ratios_find_lower_variance_and_holm():
    rng = np.random.default_rng(0)
    rows = []
    for batch in (32, 0):
        for opt, sd in (("sgdm", 0.05), ("adam", 0.05), ("lbfgs", 0.002 if batch == 32 else 0.05)):
            rows += [{"batch": batch, "optimizer": opt, "acc": v} for v in 0.9 + sd * rng.standard_normal(20)]
    rows += [{"batch": 7, "optimizer": o, "acc": 0.5} for o in ("sgdm", "adam", "lbfgs") for _ in range(3)]
    df = pd.DataFrame(rows)
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # no NaN/runtime warnings leak out
        vr = stats.variance_ratios(df, "acc", ["sgdm", "adam"], ["lbfgs"])
    assert len(vr) == 6
    np.testing.assert_allclose(vr["p_holm"], multipletests(vr["p"], method="holm")[1])
    low = vr[vr["lower"]]
    assert set(low["batch"]) == {32} and len(low) == 2
    const = vr[vr["batch"] == 7]
    assert (const["note"] == "both variances zero").all() and (const["p"] == 1).all()


def test_tukey_and_diagnostics_and_worst_level():
    df = _balanced(n=6)
    tk = stats.tukey(df, "y", "b")
    assert len(tk) == 3 and {"group1", "group2", "meandiff", "p_adj", "reject"} <= set(tk.columns)
    d = stats.residual_diagnostics(stats.ols(df, "y", ("a", "b")))
    assert d["n"] == len(df) and 0 < d["shapiro_p"] <= 1
    worst = stats.lowest_mean_level(df, "y", "a", "b")
    assert list(worst.columns) == ["a", "worst_b", "worst_mean_y"] and len(worst) == 2


def _heteroscedastic(seed=0, n=8):
    """Two factors, a real b effect, no a effect, cell sds spanning x20 (like accuracies near a ceiling)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i, j in itertools.product(range(3), range(3)):
        sd = 0.01 * (1 + 19 * (i == 2 and j == 2))
        rows += [{"a": f"a{i}", "b": f"b{j}", "y": 0.9 - 0.02 * j + e} for e in rng.normal(0, sd, n)]
    return pd.DataFrame(rows)


def test_hc3_anova_is_the_hc3_wald_test_by_hand():
    df = _heteroscedastic()
    table = stats.anova(df, "y", ("a", "b"), robust="hc3")
    classical = stats.anova(df, "y", ("a", "b"))
    assert "sum_sq" not in table.columns
    np.testing.assert_allclose(table["partial_eta_sq"], classical["partial_eta_sq"])
    model = stats.ols(df, "y", ("a", "b"))
    x, e = model.model.exog, np.asarray(model.resid)
    xtx_inv = np.linalg.inv(x.T @ x)
    h = np.einsum("ij,jk,ik->i", x, xtx_inv, x)                           # leverages
    v = xtx_inv @ (x.T * (e / (1 - h)) ** 2) @ x @ xtx_inv                # HC3 covariance
    cols = [k for k, name in enumerate(model.model.exog_names) if ":" in name]   # the interaction: highest order
    beta = model.params.to_numpy()[cols]
    f = beta @ np.linalg.solve(v[np.ix_(cols, cols)], beta) / len(cols)
    assert table.loc["C(a):C(b)", "F"] == pytest.approx(f, rel=1e-8)
    assert table.loc["C(a):C(b)", "F"] != pytest.approx(classical.loc["C(a):C(b)", "F"], rel=0.05)
    with pytest.raises(ValueError, match="hc3"):
        stats.anova(df, "y", ("a", "b"), robust="hc9")


def test_art_alignment_leaves_only_its_own_effect():
    df = _heteroscedastic(seed=1)
    aligned = stats.art_align(df, "y", ("a", "b"))
    for term, y in aligned.items():
        table = stats.anova(df.assign(y=y), "y", ("a", "b"))
        others = [t for t in aligned if t != term]
        assert (table.loc[others, "sum_sq"] < 1e-20).all(), (term, table)   # the ARTool sanity check
        assert table.loc[term, "sum_sq"] > 1e-6


def test_aligned_rank_anova_finds_the_real_effect_and_is_affine_invariant():
    df = _heteroscedastic(seed=2)
    art = stats.aligned_rank_anova(df, "y", ("a", "b"))
    assert list(art.index) == ["C(a)", "C(b)", "C(a):C(b)"]
    assert art.loc["C(b)", "PR(>F)"] < 1e-6 and art.loc["C(a)", "PR(>F)"] > 0.01
    assert (art["df_resid"] == len(df) - 9).all()
    scaled = stats.aligned_rank_anova(df.assign(y=3 * df["y"] - 1), "y", ("a", "b"))
    np.testing.assert_allclose(scaled["F"], art["F"], rtol=1e-9)


def test_residual_diagnostics_report_unequal_cell_variances():
    df = _heteroscedastic()
    d = stats.residual_diagnostics(stats.ols(df, "y", ("a", "b")), ("a", "b"))
    cell_var = df.groupby(["a", "b"])["y"].var()
    assert d["var_ratio"] == pytest.approx(cell_var.max() / cell_var.min())
    assert d["bf_p"] < 1e-3 and d["excess_kurtosis"] > 1 and d["note"] == ""


def test_variance_ratios_mark_both_directions():
    rng = np.random.default_rng(1)
    rows = [{"batch": 1, "optimizer": o, "acc": v} for o, sd in (("sgdm", 0.05), ("lbfgs", 0.002), ("adahessian", 0.5))
            for v in sd * rng.standard_normal(25)]
    vr = stats.variance_ratios(pd.DataFrame(rows), "acc", ["sgdm"], ["lbfgs", "adahessian"]).set_index("second")
    assert vr.loc["lbfgs", "lower"] and not vr.loc["lbfgs", "higher"]
    assert vr.loc["adahessian", "higher"] and not vr.loc["adahessian", "lower"]


def test_lowest_mean_bootstrap():
    rows = [{"optimizer": o, "batch": b, "acc": m + 0.01 * e}
            for o, gap in (("clear", 0.2), ("tie", 0.0)) for b, m in ((16, 0.9), (0, 0.9 - gap))
            for e in np.random.default_rng(0).standard_normal(10)]
    table, counts = stats.lowest_mean_bootstrap(pd.DataFrame(rows), "acc", 0, n_boot=400, seed=0)
    p = table.set_index("optimizer")["p_lowest"]
    assert p["clear"] == 1.0 and 0.2 < p["tie"] < 0.8         # same draws in both batches: a coin flip
    assert counts.shape == (400,) and set(np.unique(counts)) <= {1, 2}
    again, _ = stats.lowest_mean_bootstrap(pd.DataFrame(rows), "acc", 0, n_boot=400, seed=0)
    assert again.equals(table)
    with pytest.raises(KeyError, match="levels"):
        stats.lowest_mean_bootstrap(pd.DataFrame(rows), "acc", 7)
