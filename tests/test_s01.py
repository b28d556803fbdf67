"""Study 01 (PCA surrogates, neural collapse): claims on hand-built results, each holding and failing."""
import numpy as np
import pandas as pd

from nnlens import profiles, reports
from nnlens.studies import s01_pca as s01

CFG = profiles.load("01", "default")
LAYERS = ["stem", "b1", "b2", "pool"]


def _probes(acc_low_var=0.85, gap100=0.0, svm_edge=0.05):
    """Tidy probe frame: k in (1, 8, 100, 256), variance 0.1 at k=1; all-PC accuracies knn .8, ncc .7, svm .8+edge."""
    rows = []
    for depth, layer in enumerate(LAYERS):
        all_acc = {"knn": 0.8, "ncc": 0.7, "svm": 0.8 + svm_edge}
        for k, ev in ((1, 0.1), (8, 0.5), (100, 0.9), (256, 1.0)):
            for p, a in all_acc.items():
                acc = a
                if k == 1:
                    acc = acc_low_var if layer == "b2" and p == "svm" else 0.3
                elif k == 100 and p == "knn":
                    acc = a + gap100
                rows.append({"layer": layer, "depth": depth, "k": k, "explained_variance": ev, "probe": p,
                             "accuracy": acc})
    return pd.DataFrame(rows)


def _results(raw_knn=0.5, net_train=1.0, nc1=(10.0, 3.0, 1.0, 0.3), onset_probes="b2", onset_nc1="b2", **kw):
    nc = pd.DataFrame({"layer": LAYERS, "depth": range(len(LAYERS)), "nc1": nc1})
    return {"raw_knn": raw_knn, "net_train_acc": net_train, "net_test_acc": 0.88, "probes": _probes(**kw),
            "collapse": nc, "onsets": {"order": LAYERS, "probes": onset_probes, "nc1": onset_nc1}}


def _verdicts(**kw):
    rows = s01.claims(_results(**kw), CFG)
    assert all(isinstance(r, reports.Row) for r in rows)
    return {r.id: r.holds for r in rows}


def test_claims_hold_on_results_that_support_them():
    assert _verdicts() == {f"01.{i}": True for i in range(6)}


def test_each_claim_fails_on_its_own():
    base = _verdicts()
    assert _verdicts(raw_knn=0.7) == {**base, "01.0": False}            # gap 0.18 < 0.25
    assert _verdicts(net_train=0.95)["01.0"] is False
    assert _verdicts(acc_low_var=0.80) == {**base, "01.1": False}       # 0.80 < 0.88 - 0.05
    assert _verdicts(gap100=-0.05) == {**base, "01.2": False}
    assert _verdicts(svm_edge=-0.05) == {**base, "01.3": False}
    assert _verdicts(nc1=(0.3, 1.0, 3.0, 10.0)) == {**base, "01.4": False}
    assert _verdicts(onset_probes="stem", onset_nc1="b2") == {**base, "01.5": False}
    assert _verdicts(onset_probes=None)["01.5"] is False
