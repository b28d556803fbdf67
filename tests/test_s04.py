"""Study 04 (optimizer ANOVA): claims on hand-built results, each row holding and failing; the lr search."""
import pandas as pd
import pytest

from nnlens import profiles, reports
from nnlens.studies import s04_anova as s04

CFG = profiles.load("04", "default")
TINY = dict(dataset="digits", model="mlp", width=8, depth=1, epochs=1, n_train=100, n_test=50)


def _results(p_batch=1e-6, worst_batches=(1347, 1347, 1347, 21, 84), lower=(True, False)):
    anova = pd.DataFrame({"PR(>F)": [0.3, p_batch, 0.5, float("nan")], "partial_eta_sq": [0.1, 0.6, 0.05, float("nan")]},
                         index=["C(optimizer)", "C(batch)", "C(optimizer):C(batch)", "Residual"])
    worst = pd.DataFrame({"optimizer": list("abcde")[:len(worst_batches)], "worst_batch": list(worst_batches),
                          "worst_mean_best_acc": 0.9})
    vr = pd.DataFrame({"batch": [21, 1347][:len(lower)], "first": "sgdm", "second": "lbfgs",
                       "ratio": [0.2 if lo else 1.5 for lo in lower], "p_holm": [0.01 if lo else 0.4 for lo in lower],
                       "lower": list(lower)})
    return {"anova": anova, "worst": worst, "variance_ratios": vr, "full_batch": 1347}


def _verdicts(results):
    rows = s04.claims(results, CFG)
    assert all(isinstance(r, reports.Row) for r in rows)
    return {r.id: r.holds for r in rows}


def test_claims_hold_on_results_that_support_them():
    assert _verdicts(_results()) == {"04.1": True, "04.2": True, "04.3": True}


def test_each_claim_fails_on_its_own():
    assert _verdicts(_results(p_batch=0.2))["04.1"] is False
    assert _verdicts(_results(worst_batches=(1347, 1347, 21, 84)))["04.2"] is False     # half is not a majority
    assert _verdicts(_results(lower=(False, False)))["04.3"] is False


def test_claims_need_the_study_config():
    with pytest.raises(TypeError, match="Study04"):
        s04.claims(_results(), profiles.load("01", "default"))


def test_lr_search_picks_one_lr_per_optimizer():
    table, chosen = s04.lr_search(TINY, {"sgdm": (0.01, 0.3), "adam": (0.01,)}, batch_size=32, backend="sequential")
    assert set(chosen) == {"sgdm", "adam"} and chosen["adam"] == 0.01
    assert table["chosen"].sum() == 2 and len(table) == 3
