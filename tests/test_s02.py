"""Study 02's claims on hand-built results: each row holds in one case and fails in another."""
import pandas as pd
import pytest

from nnlens import profiles
from nnlens.studies import s02_entk as study

CFG = profiles.load("02", "smoke")          # proj_dims (16, 64): kmax = 64
KMAX = max(CFG.proj_dims)
KERNELS = ["trntk", "trntk0", "pntk", f"proj_trntk@{KMAX}", f"proj_pntk@{KMAX}", "em", "ck", "gradcos"]


def _summary(tau: dict, tad: float = 0.0, settings=("digits cnn", "digits01 mlp")):
    rows = []
    for s in settings:
        for k in KERNELS:
            rows.append({"setting": s, "kernel": k, "tau_mean": tau.get(k, 0.5), "tad_mean": tad})
    return pd.DataFrame(rows)


def _results(tau=None, tad=0.0, slopes=(-0.5, -0.5), auc=None):
    tau = tau or {"trntk": 0.8, f"proj_trntk@{KMAX}": 0.79}
    err = pd.DataFrame({"kernel": ["trntk", "trntk", "pntk", "pntk"], "k": [16, 64, 16, 64],
                        "mean": [0.2, 0.1, 0.2, 0.1], "std": 0.0,
                        "slope": [slopes[0], slopes[0], slopes[1], slopes[1]]})
    auc = auc or {"trntk": 0.9, "em": 0.8, "ck": 0.7}
    poison = pd.DataFrame([{"kernel": k, "auc_mean": v, "precision_at_k_mean": v} for k, v in auc.items()])
    return {"main": "digits cnn", "summary": _summary(tau, tad), "proj_error": err, "poisoning": poison}


def _verdicts(results):
    return {r.id: r.holds for r in study.claims(results, CFG)}


def test_every_claim_holds_on_good_results():
    rows = study.claims(_results(), CFG)
    assert [r.id for r in rows] == ["02.1", "02.2", "02.3", "02.4", "02.5"]
    assert all(r.holds for r in rows), rows


@pytest.mark.parametrize("claim, results", [
    ("02.1", _results(tad=-(study.TAD_MAX + 0.01))),
    ("02.2", _results(tau={"trntk": 0.8, "em": 0.85, f"proj_trntk@{KMAX}": 0.79})),
    ("02.3", _results(tau={"trntk": 0.8, "trntk0": 0.81, f"proj_trntk@{KMAX}": 0.79})),
    ("02.4", _results(slopes=(-0.5, -0.2))),
    ("02.4", _results(tau={"trntk": 0.8, f"proj_trntk@{KMAX}": 0.8 - 2 * study.PROJ_TAU_GAP})),
    ("02.5", _results(auc={"trntk": 0.8, "em": 0.82, "ck": 0.7})),
])
def test_each_claim_can_fail(claim, results):
    v = _verdicts(results)
    assert v[claim] is False
    also = {"02.3": {"02.2"}}.get(claim, set())          # trNTK⁰ above trNTK also breaks "trNTK highest"
    assert all(h for c, h in v.items() if c != claim and c not in also), v
