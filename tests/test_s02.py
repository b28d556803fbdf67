"""Study 02's claims on hand-built results: each row holds in one case and fails in another."""
import numpy as np
import pandas as pd
import pytest

from nnlens import surrogates
from nnlens.studies import profiles
from nnlens.studies import s02_entk as study

CFG = profiles.load("02", "default")          # proj_dims (32, 128, 512): kmax = 512
KMAX = max(CFG.proj_dims)
MAIN, BIN = "digits cnn", "digits01 mlp"
OTHERS = ("trntk0", "pntk", "em", "ck", "gradcos")
NTK = ["trntk", "pntk", f"proj_trntk@{KMAX}", f"proj_pntk@{KMAX}"]


def _faith(tad=0.0, binary_acc=1.0):
    rows = []
    for s, acc in ((MAIN, 0.94), (BIN, binary_acc)):
        for seed in (0, 1, 2):
            for k in NTK + list(OTHERS):
                for r in CFG.recipes:
                    rows.append({"setting": s, "seed": seed, "kernel": k, "recipe": r, "acc_net": acc,
                                 "acc_sur": acc + (tad if s == MAIN else 0.0), "tad": tad if s == MAIN else 0.0})
    return pd.DataFrame(rows)


def _paired(lo=0.01, proj_gap=0.005, worse=None):
    rows = []
    for r in CFG.recipes:
        for b in OTHERS:
            low = -0.01 if (worse == (b, r)) else lo
            rows.append({"setting": MAIN, "recipe": r, "a": "trntk", "b": b, "diff": low + 0.02, "lo": low,
                         "hi": low + 0.04})
        rows.append({"setting": MAIN, "recipe": r, "a": f"proj_trntk@{KMAX}", "b": "trntk", "diff": proj_gap,
                     "lo": proj_gap - 0.01, "hi": proj_gap + 0.01})
        rows.append({"setting": BIN, "recipe": r, "a": "trntk", "b": "trntk0", "diff": -0.2, "lo": -0.3, "hi": -0.1})
    return pd.DataFrame(rows)


def _poison_pairs(bad=None):
    rows = [{"recipe": r, "metric": m, "baseline": b, "diff": 0.05, "p_value": 0.01}
            for r in CFG.poison_recipes for m in ("auc", "precision_at_k") for b in ("em", "ck")]
    if bad:
        rows[bad[0]].update(bad[1])
    return pd.DataFrame(rows)


def _lds(lo_em=0.02, lo_trak=0.02, proj=0.01):
    return pd.DataFrame([
        {"a": "trntk", "b": "em", "diff": lo_em + 0.05, "lo": lo_em, "hi": lo_em + 0.1},
        {"a": "trntk", "b": "ck", "diff": 0.1, "lo": 0.05, "hi": 0.15},
        {"a": "trntk", "b": "trak", "diff": lo_trak + 0.05, "lo": lo_trak, "hi": lo_trak + 0.1},
        {"a": f"proj_trntk@{KMAX}", "b": "trntk", "diff": proj, "lo": proj - 0.01, "hi": proj + 0.01}])


def _results(**kw):
    err = pd.DataFrame({"kernel": ["trntk", "trntk", "pntk", "pntk"], "k": [32, 512, 32, 512],
                        "mean": [0.2, 0.05, 0.2, 0.05], "std": 0.0,
                        "slope": [kw.get("slope", -0.5)] * 2 + [-0.5] * 2})
    return {"main": MAIN, "faith": kw.get("faith", _faith()), "paired": kw.get("paired", _paired()),
            "proj_error": err, "poison_pairs": kw.get("poison_pairs", _poison_pairs()),
            "lds_paired": kw.get("lds", _lds())}


def _verdicts(results):
    return {r.id: r.holds for r in study.claims(results, CFG)}


def test_every_claim_holds_on_good_results():
    rows = study.claims(_results(), CFG)
    assert [r.id for r in rows] == [f"02.{i}" for i in range(1, 9)]
    assert all(r.holds for r in rows), rows
    assert "ceiling" in rows[0].value                                    # the binary setting at 1.000 is not judged


@pytest.mark.parametrize("claim, results", [
    ("02.1", _results(faith=_faith(tad=-(study.TAD_MAX + 0.01)))),
    ("02.1", _results(faith=_faith(tad=0.0, binary_acc=0.9).assign(
        tad=lambda d: np.where(d["setting"] == BIN, 0.05, d["tad"])))),  # below the ceiling a binary TAD counts
    ("02.2", _results(paired=_paired(worse=("em", "cv")))),
    ("02.2", _results(paired=_paired(worse=("ck", "sgd_1e-4")))),        # must hold under the paper's recipe too
    ("02.3", _results(paired=_paired(worse=("trntk0", "cv")))),
    ("02.4", _results(slope=-0.2)),
    ("02.4", _results(paired=_paired(proj_gap=2 * study.PROJ_TAU_GAP))),
    ("02.5", _results(poison_pairs=_poison_pairs(bad=(0, {"p_value": 0.2})))),
    ("02.5", _results(poison_pairs=_poison_pairs(bad=(3, {"diff": -0.01})))),   # precision@k disagrees with AUC
    ("02.6", _results(lds=_lds(lo_em=-0.01))),
    ("02.7", _results(lds=_lds(lo_trak=-0.01))),
    ("02.8", _results(lds=_lds(proj=-2 * study.LDS_TRACK_GAP))),
])
def test_each_claim_can_fail(claim, results):
    v = _verdicts(results)
    assert v[claim] is False
    also = {"02.3": {"02.2"}}.get(claim, set())          # trNTK⁰ above trNTK also breaks "trNTK highest"
    assert all(h for c, h in v.items() if c != claim and c not in also), v


def test_paired_tau_separates_a_faithful_kernel_from_noise():
    rng = np.random.default_rng(0)
    net = rng.normal(size=200)
    probs = {("s", seed): {"net": net, ("good", "cv"): net + 0.1 * rng.normal(size=200),
                           ("bad", "cv"): rng.normal(size=200)} for seed in (0, 1)}
    w = surrogates.bootstrap_weights(200, 300, seed=0)
    d = study.paired_tau(probs, "s", (0, 1), "good", "bad", "cv", w)
    assert d["lo"] > 0.5 and d["lo"] <= d["diff"] <= d["hi"] and len(d["per_seed"]) == 2
    d0 = study.paired_tau(probs, "s", (0, 1), "good", "good", "cv", w)
    assert d0["diff"] == d0["lo"] == d0["hi"] == 0.0


def test_poisoning_pairs_one_sided_paired_test():
    rows = pd.DataFrame([{"seed": s, "kernel": k, "recipe": "cv", "auc": v + 0.01 * s, "precision_at_k": v}
                         for s in range(4) for k, v in (("trntk", 0.9), ("em", 0.8), ("ck", 0.95))])
    rows.loc[(rows["kernel"] == "trntk") & (rows["seed"] == 1), "auc"] += 0.02
    p = study.poisoning_pairs(rows, ["cv"]).set_index(["metric", "baseline"])
    assert p.loc[("auc", "em"), "diff"] > 0 and p.loc[("auc", "em"), "p_value"] < 0.05
    assert p.loc[("auc", "ck"), "p_value"] > 0.5
    assert p.loc[("precision_at_k", "em"), "p_value"] == 0.0          # identical positive differences
