"""Study 02's claims on hand-built results (each row holds in one case and not in another), and its statistics
against slow references and simulated nulls at the design's size."""
import numpy as np
import pandas as pd
import pytest
import torch

from nnlens import data, datamodels, report, surrogates
from nnlens.studies import profiles
from nnlens.studies import s02_entk as study

CFG = profiles.load("02", "default")
KMAX = max(CFG.proj_dims)
MAIN, BIN = "digits cnn", "digits01 mlp"
OTHERS = ("trntk0", "pntk", "em", "ck", "gradcos")
NTK = ["trntk", "pntk", f"proj_trntk@{KMAX}", f"proj_pntk@{KMAX}"]
RECIPES = ("cv", study.PAPER_RECIPE)


def _tad(lo=-0.01, hi=0.01, binary_ceiling=True):
    rows = [{"setting": s, "kernel": k, "recipe": r, "tad": (lo + hi) / 2, "lo": lo, "hi": hi, "sd_draws": 0.01,
             "ceiling": s == BIN and binary_ceiling} for s in (MAIN, BIN) for k in NTK + list(OTHERS) for r in RECIPES]
    return pd.DataFrame(rows)


def _paired(lo=0.01, proj=(-0.01, 0.01), worse=None):
    rows = []
    for r in RECIPES:
        for b in OTHERS:
            lo_b = worse[1] if worse and worse[0] == b and r == "cv" else lo
            rows.append({"setting": MAIN, "recipe": r, "a": "trntk", "b": b, "diff": lo_b + 0.02, "lo": lo_b,
                         "hi": lo_b + 0.04, "sd_draws": 0.0})
        rows.append({"setting": MAIN, "recipe": r, "a": f"proj_trntk@{KMAX}", "b": "trntk", "diff": sum(proj) / 2,
                     "lo": proj[0], "hi": proj[1], "sd_draws": 0.0})
        rows.append({"setting": BIN, "recipe": r, "a": "trntk", "b": "trntk0", "diff": -0.2, "lo": -0.3, "hi": -0.1,
                     "sd_draws": 0.0})
    return pd.DataFrame(rows)


def _slopes(slope=-0.5):
    return pd.DataFrame([{"kernel": k, "slope": slope if k == "trntk" else -0.5, "lo": slope - 0.01,
                          "hi": slope + 0.01, "null_lo": -0.52, "null_hi": -0.48, "sqrtk_err_first": 1.0,
                          "sqrtk_err_last": 1.0, "n_k": 5, "draws": 5} for k in ("trntk", "pntk")])


def _poison(p=0.01, p_less=0.9, best=0.8, diff=0.05):
    table = pd.DataFrame([{"level": lv, "fraction": 0.05, "trigger": 2, "amplitude": 1.0, "kernel": k, "recipe": r,
                           "precision_at_k_mean": 1.0 if lv == 0 else best, "precision_at_k_std": 0.0,
                           "auc_mean": 0.9, "auc_std": 0.0}
                          for lv in (0, 1) for k in ("trntk", "em", "ck") for r in CFG.poison_recipes])
    attack = pd.DataFrame([{"level": lv, "seed": s, "n_scored": 10} for lv in (0, 1) for s in CFG.poison_seeds])
    pairs = pd.DataFrame([{"level": lv, "recipe": r, "metric": m, "baseline": b, "diff": diff, "p_value": p,
                           "p_less": p_less, "sd": 0.05, "n_seeds": 5, "per_seed": ""}
                          for lv in (0, 1) for r in CFG.poison_recipes for m in ("auc", "precision_at_k")
                          for b in ("em", "ck")])
    return {"table": table, "attack": attack, "pairs": pairs, "judged": study.judged_level(table, attack)}


def _lds(em=(0.01, 0.05), trak=(0.01, 0.05), proj=(-0.01, 0.01)):
    def row(a, b, ci):
        return {"a": a, "b": b, "diff": 0.1, "lo": 0.05, "hi": 0.15, "diff_partial": sum(ci) / 2,
                "lo_partial": ci[0], "hi_partial": ci[1]}
    paired = pd.DataFrame([row("trntk", "em", em), row("trntk", "ck", (0.01, 0.05)),
                           row("trntk_best", "trak_best", trak), row("trntk", "trak", trak),
                           row(f"proj_trntk@{KMAX}", "trntk", proj), row("trntk", "label", (0.0, 0.1)),
                           row("trntk", "pixel", (0.0, 0.1))])
    table = pd.DataFrame([{"method": m, "lds": 0.2} for m in ("trntk", "label", "pixel")])
    best = pd.DataFrame([{"method": "trntk", "M": 3, "K": np.nan, "ridge": np.nan},
                         {"method": "trak", "M": 10, "K": 256, "ridge": 0.01}]).set_index("method")
    return {"paired": paired, "table": table, "best": best,
            "ceiling": {"r": 0.15, "lo": 0.1, "hi": 0.2, "ceiling": 0.39}}


def _results(**kw):
    return {"main": MAIN, "tad": kw.get("tad", _tad()), "paired": kw.get("paired", _paired()),
            "slopes": kw.get("slopes", _slopes()), "poison": kw.get("poison", _poison()),
            "lds": kw.get("lds", _lds()),
            "sgd": {"n_iter": 80, "converged": 1.0, "train_acc": 0.95, "net_train_acc": 1.0}}


def _verdicts(results):
    return {r.id: r.verdict for r in study.claims(results, CFG)}


def test_every_claim_holds_on_good_results():
    rows = study.claims(_results(), CFG)
    assert [r.id for r in rows] == [f"02.{i}" for i in range(1, 9)]
    assert all(r.holds for r in rows), [(r.id, r.verdict, r.value) for r in rows]
    assert "ceiling" in rows[0].value                                    # the binary setting at 1.000 is not judged
    assert {r.kind for r in rows[5:]} == {"beyond the paper"} and {r.kind for r in rows[:5]} == {"paper claim"}
    ledger = report.Ledger("02", "default", report.Outputs("/tmp/unused"))
    ledger.extend(rows)                                                  # every row renders in the ledger
    assert (ledger.frame()["reason"] != "").all()


@pytest.mark.parametrize("claim, results, verdict", [
    ("02.1", _results(tad=_tad(lo=0.03, hi=0.05)), "does not hold"),
    ("02.1", _results(tad=_tad(lo=0.0, hi=0.04)), "inconclusive"),
    ("02.1", _results(tad=_tad(lo=0.03, hi=0.05, binary_ceiling=False)), "does not hold"),
    ("02.2", _results(paired=_paired(worse=("em", -0.06))), "does not hold"),
    ("02.2", _results(paired=_paired(worse=("ck", -0.01))), "inconclusive"),
    ("02.3", _results(paired=_paired(worse=("trntk0", -0.06))), "does not hold"),
    ("02.4", _results(slopes=_slopes(-0.3)), "does not hold"),
    ("02.4", _results(paired=_paired(proj=(0.03, 0.05))), "does not hold"),
    ("02.4", _results(paired=_paired(proj=(0.0, 0.04))), "inconclusive"),
    ("02.5", _results(poison=_poison(p=0.2)), "inconclusive"),
    ("02.5", _results(poison=_poison(p=0.9, p_less=0.01, diff=-0.1)), "does not hold"),
    ("02.5", _results(poison=_poison(best=1.0)), "untestable"),
    ("02.6", _results(lds=_lds(em=(-0.05, -0.01))), "does not hold"),
    ("02.6", _results(lds=_lds(em=(-0.01, 0.03))), "inconclusive"),
    ("02.7", _results(lds=_lds(trak=(-0.05, -0.01))), "does not hold"),
    ("02.8", _results(lds=_lds(proj=(-0.06, -0.03))), "does not hold"),
])
def test_each_claim_can_fail(claim, results, verdict):
    v = _verdicts(results)
    assert v[claim] == verdict, v
    also = {"02.3": {"02.2"}}.get(claim, set())          # trNTK⁰ above trNTK also breaks "trNTK highest"
    assert all(h == "holds" for c, h in v.items() if c != claim and c not in also), v


def test_hier_boot_spreads_over_seeds_draws_and_test_points():
    rng = np.random.default_rng(0)
    stat = np.zeros((3, 5, 201))
    assert study.hier_boot(stat) == {"diff": 0.0, "lo": 0.0, "hi": 0.0, "sd_draws": 0.0}
    stat = 0.1 + rng.normal(0, 0.05, size=(3, 5, 1)) + np.zeros((3, 5, 201))   # only the optimizer draw varies
    d = study.hier_boot(stat)
    assert d["hi"] - d["lo"] > 0.05 and abs(d["sd_draws"] - 0.05) < 0.03


def test_paired_tau_separates_a_faithful_kernel_from_noise():
    rng = np.random.default_rng(0)
    net = rng.normal(size=200)
    probs = {("s", seed): {"net": net, **{("good", "cv", d): net + 0.1 * rng.normal(size=200) for d in (0, 1)},
                           **{("bad", "cv", d): rng.normal(size=200) for d in (0, 1)}} for seed in (0, 1)}
    w = surrogates.bootstrap_weights(200, 300, seed=0)
    d = study.paired_tau(probs, "s", (0, 1), "good", "bad", "cv", w)
    assert d["lo"] > 0.5 and d["lo"] <= d["diff"] <= d["hi"] and len(d["per_seed"]) == 2
    d0 = study.paired_tau(probs, "s", (0, 1), "good", "good", "cv", w)
    assert d0["diff"] == d0["lo"] == d0["hi"] == 0.0


def test_slope_null_calibrated_at_the_design():
    """When the error follows K^(-1/2) exactly, the fitted slope lands in the null range ~95 % of the time;
    a K^(-0.3) error never does."""
    ks, draws, sd = (16, 64, 256, 1024, 4096), 5, np.full(5, 0.05)
    null = study.slope_null(sd, draws, ks, n_sim=4000, seed=0)
    lo, hi = np.quantile(null, [0.025, 0.975])
    fresh = study.slope_null(sd, draws, ks, n_sim=2000, seed=1)
    assert 0.93 < ((fresh >= lo) & (fresh <= hi)).mean() < 0.97
    rng = np.random.default_rng(2)
    err = pd.DataFrame([{"kernel": "trntk", "k": k, "draw": d, "rel_error": k ** -0.3 * np.exp(rng.normal(0, 0.05))}
                        for k in ks for d in range(draws)])
    s = study.slope_fit(err).iloc[0]
    assert not s["null_lo"] <= s["slope"] <= s["null_hi"] and abs(s["slope"] + 0.3) < 0.03


def test_spearman_partial_matches_a_residual_reference():
    rng = np.random.default_rng(0)
    c = rng.integers(20, 40, size=(30, 4)).astype(float)
    p, a = c + rng.normal(size=(30, 4)), c + rng.normal(size=(30, 4))
    from scipy.stats import pearsonr, rankdata
    ref = []
    for j in range(4):
        rp, ra, rc = rankdata(p[:, j]), rankdata(a[:, j]), rankdata(c[:, j])
        ref.append(pearsonr(*(v - np.polyval(np.polyfit(rc, v, 1), rc) for v in (rp, ra))).statistic)
    np.testing.assert_allclose(datamodels.spearman_partial(p, a, c), ref, atol=1e-10)


def test_class_counts_and_two_way_bootstrap():
    masks = np.array([[1, 1, 0, 0], [1, 0, 1, 1]], bool)
    counts = datamodels.class_counts(masks, np.array([0, 1, 1, 0]), np.array([1, 0]))
    np.testing.assert_array_equal(counts, [[1, 1], [1, 2]])   # subset 1 holds labels 0, 1, 0
    rng = np.random.default_rng(0)
    act = rng.normal(size=(40, 50))
    boot = datamodels.lds_two_way({"same": act, "noise": rng.normal(size=(40, 50))}, act, None, n_boot=50)
    assert np.allclose(boot["same"], 1.0) and abs(boot["noise"].mean()) < 0.1


def test_label_floor_scores_class_composition():
    ds = data.load("digits", 100, 40, seed=0)
    f = study.floor_scores(ds)
    assert f["label"].shape == (40, 100) and set(np.unique(f["label"])) == {0.0, 1.0}
    assert (f["pixel"][f["label"] == 0] == 0).all()


def test_poison_blend_fainter_trigger():
    ds = data.load("digits", 100, 40, seed=0)
    full, idx, _ = study.poison_blend(ds, 0.1, 0, 2, 1.0, 0)
    faint, idx2, trig = study.poison_blend(ds, 0.1, 0, 2, 0.5, 0)
    np.testing.assert_array_equal(idx, idx2)
    t = torch.from_numpy(idx)
    assert torch.allclose(faint.x_train[t], 0.5 * ds.x_train[t] + 0.5 * full.x_train[t])
    assert (faint.y_train[t] == 0).all() and trig(ds.x_test).shape == ds.x_test.shape


def test_pool_reaches_the_networks_and_the_lds_retraining_alike():
    import dataclasses

    from nnlens.studies.s02_entk import retrain

    cfg = dataclasses.replace(profiles.load("02", "smoke"), pool=2)
    ds = study.settings(cfg)[f"digits4 {cfg.model}"].ds           # the smoke set (digits 8x8) pooled to 4x4
    job = retrain._lds_data(cfg.dataset, cfg.n_train, cfg.n_test, cfg.pool)  # what every LDS retraining job loads
    assert ds.x_train.shape[1:] == (1, 4, 4)
    for a, b in ((ds.x_train, job.x_train), (ds.x_test, job.x_test), (ds.y_train, job.y_train)):
        assert torch.equal(a, b)
    assert not torch.equal(ds.x_train, data.pooled(data.load("digits", cfg.n_train, cfg.n_test, seed=1), 2).x_train)


def test_poisoning_pairs_one_sided_paired_tests():
    rows = pd.DataFrame([{"seed": s, "kernel": k, "recipe": "cv", "auc": v + 0.01 * s, "precision_at_k": v}
                         for s in range(4) for k, v in (("trntk", 0.9), ("em", 0.8), ("ck", 0.95))])
    rows.loc[(rows["kernel"] == "trntk") & (rows["seed"] == 1), "auc"] += 0.02
    p = study.poisoning_pairs(rows, ["cv"]).set_index(["metric", "baseline"])
    assert p.loc[("auc", "em"), "diff"] > 0 and p.loc[("auc", "em"), "p_value"] < 0.05
    assert p.loc[("auc", "ck"), "p_value"] > 0.5 and p.loc[("auc", "ck"), "p_less"] < 0.05
    assert p.loc[("precision_at_k", "em"), "p_value"] == 0.0          # identical positive differences


def test_verdict_helpers():
    assert study.three_way([0.1], [0.2]) == "holds" and study.three_way([-0.2], [-0.1]) == "does not hold"
    assert study.three_way([-0.1], [0.1]) == "inconclusive"
    assert study.equivalence([-0.01], [0.01], 0.02) == "holds" and study.equivalence([0.03], [0.05], 0.02) == \
        "does not hold" and study.equivalence([0.0], [0.03], 0.02) == "inconclusive"


@pytest.mark.parametrize("name, kind", [("mnist2_mlp", "mlp"), ("fmnist2_cnn", "cnn")])
def test_paper_setups_vectorized_trainer_equals_one_by_one(name, kind):
    from nnlens.studies.s02_entk import paper_models as pm
    setup = pm.SETUPS[name]
    assert setup.model == kind and setup.batch_size == 4 and setup.lr == 1e-3
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (24, 28, 28), generator=g, dtype=torch.uint8)
    y = torch.randint(0, 2, (24,), generator=g)
    xs, ys = pm.binary_slice(x, y, 6)
    assert xs.shape == (12, 1, 28, 28) and float(xs.max()) <= 1.0 and ys.tolist() == [0.0] * 6 + [1.0] * 6
    seeds = (0, 1)
    fast = pm.train_ensemble(setup, seeds, xs, ys, epochs=2)
    orders = pm._orders(len(ys), seeds, 2, setup.shuffle)
    for j, s in enumerate(seeds):
        slow = pm.train_one(setup, s, xs, ys, orders[j])
        for (k, a), b in zip(fast[j].state_dict().items(), slow.state_dict().values(), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=k)
    assert not torch.equal(fast[0].state_dict()["fc3.weight" if kind == "cnn" else "l4.weight"],
                           fast[1].state_dict()["fc3.weight" if kind == "cnn" else "l4.weight"])
    n = sum(p.numel() for p in pm.make_model("mlp", 0).parameters())
    assert n == 784 * 100 + 100 + 2 * (100 * 100 + 100) + 101


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["mnist2_mlp", "fmnist2_cnn"])
def test_paper_trainer_cuda_graph_equals_eager(name):
    """The replayed CUDA graph trains exactly as the eager steps on the GPU, and as the CPU up to float rounding."""
    from nnlens.studies.s02_entk import paper_models as pm
    setup = pm.SETUPS[name]
    g = torch.Generator().manual_seed(1)
    xs, ys = pm.binary_slice(torch.randint(0, 256, (40, 28, 28), generator=g, dtype=torch.uint8),
                             torch.randint(0, 2, (40,), generator=g), 10)
    seeds = (0, 1, 2)
    torch.backends.cudnn.allow_tf32 = False     # TF32 convolutions (the default) differ from the CPU's float32 by
    # ~1e-3, which Adam's normalized steps carry into the weights: compare the arithmetic, not the precision
    graphed = pm.train_ensemble(setup, seeds, xs, ys, epochs=3, device="cuda", graph=True)
    eager = pm.train_ensemble(setup, seeds, xs, ys, epochs=3, device="cuda", graph=False)
    cpu = pm.train_ensemble(setup, seeds, xs, ys, epochs=3, device="cpu")
    for a, b, c in zip(graphed, eager, cpu, strict=True):
        for (k, u), v, w in zip(a.state_dict().items(), b.state_dict().values(), c.state_dict().values(), strict=True):
            torch.testing.assert_close(u, v, rtol=1e-5, atol=1e-6, msg=k)
            torch.testing.assert_close(u, w, rtol=1e-3, atol=1e-4, msg=k)
    torch.backends.cudnn.allow_tf32 = True
