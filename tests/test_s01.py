"""Study 01 (PCA surrogates, neural collapse): claims on hand-built results (each holding and failing),
v* and the 01.2 gaps on small frames, and the fast probe paths against scikit-learn."""
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from nnlens import probes, report
from nnlens.studies import profiles
from nnlens.studies import s01_pca as s01

CFG = profiles.load("01", "default")          # k_max 64
LAYERS = [("stem", 512), ("b1", 512), ("mid", 150), ("b2", 512), ("pool", 64)]
SEEDS = (0, 1, 2)


def _acc(probe, k, layer, reach_k, gap100, gap_layer, svm_edge):
    base = {"knn": 0.80, "ncc": 0.70, "svm": 0.78 + svm_edge}[probe]      # all below 0.90 - 0.05
    if layer == "b2" and probe == "svm":
        return 0.86 if k >= reach_k else 0.40          # reaches network - 0.05 = 0.85 from k = reach_k
    if k == 100 and probe == "knn" and layer == gap_layer:
        return base + gap100
    return 0.30 if k == 1 else base


def _probes(reach_k=8, gap100=0.0, gap_layer="b1", svm_edge=0.05, bad_seed_edge=None):
    rows = []
    for seed in SEEDS:
        edge = bad_seed_edge if (bad_seed_edge is not None and seed == 2) else svm_edge
        for depth, (layer, dim) in enumerate(LAYERS):
            n_pc = min(dim, 100)
            grid = {"knn": list(range(1, min(64, n_pc) + 1)) + ([100] if n_pc >= 100 else []),
                    "svm": [k for k in s01.SVM_KS if k <= min(64, n_pc)]}
            grid["ncc"] = grid["knn"]
            for probe, ks in grid.items():
                ks = ks + ([dim] if probe != "svm" and dim > n_pc else [])
                for k in ks:
                    rows.append({"seed": seed, "layer": layer, "depth": depth, "dim": dim, "k": k,
                                 "explained_variance": 1.0 if k == dim else min(1.0, k / 128), "probe": probe,
                                 "all_features": k == dim and dim > n_pc,
                                 "accuracy": _acc(probe, k, layer, reach_k, gap100, gap_layer, edge)})
    return pd.DataFrame(rows)


def _pairs(diff=0.0, se=0.01):
    return pd.DataFrame([{"seed": s, "layer": name, "depth": d, "dim": dim, "probe": p, "n_test": 1000, "diff": diff,
                          "se": se} for s in SEEDS for d, (name, dim) in enumerate(LAYERS) if dim >= 100
                         for p in ("knn", "ncc")])


def _results(raw_knn=0.5, train_acc=1.0, nc1=(10.0, 3.0, 2.0, 1.0, 0.3), onset=("b1", "b1"), diff=0.0, **kw):
    nets = pd.DataFrame({"seed": SEEDS, "train_acc": train_acc, "test_acc": 0.90, "raw_knn": raw_knn})
    nc = pd.DataFrame([{"seed": s, "layer": name, "depth": d, "nc1": nc1[d]} for s in SEEDS
                       for d, (name, _) in enumerate(LAYERS)])
    order = [name for name, _ in LAYERS]
    dist = None if None in onset else abs(order.index(onset[0]) - order.index(onset[1]))
    on = pd.DataFrame({"seed": SEEDS, "probes": onset[0], "nc1": onset[1], "distance": dist})
    svm = pd.DataFrame({"seed": SEEDS, "converged": True})
    return {"nets": nets, "probes": _probes(**kw), "pairs": _pairs(diff), "collapse": nc, "onsets": on, "svm": svm,
            "chance": 0.1}


def _rows(**kw):
    rows = s01.claims(_results(**kw), CFG)
    assert all(isinstance(r, report.Row) for r in rows)
    return rows


def _verdicts(**kw):
    return {r.id: r.verdict for r in _rows(**kw)}


HOLD = {f"01.{i}": "holds" for i in range(6)}


def test_claims_hold_on_results_that_support_them():
    assert _verdicts() == HOLD
    assert {r.id: r.kind for r in _rows()}["01.0"] == "control"


def test_each_claim_fails_on_its_own():
    no = "does not hold"
    assert _verdicts(raw_knn=0.7) == {**HOLD, "01.0": no}                 # gap 0.18 < 0.25
    assert _verdicts(train_acc=0.95)["01.0"] == no
    assert _verdicts(reach_k=48) == {**HOLD, "01.1": no}                  # v* = 48/128 = 0.375 > 0.25
    assert _verdicts(reach_k=200)["01.1"] == no                          # never reached: no v*
    assert _verdicts(nc1=(0.3, 1.0, 2.0, 3.0, 10.0)) == {**HOLD, "01.4": no}
    assert _verdicts(onset=("stem", "b2")) == {**HOLD, "01.5": no}
    assert _verdicts(onset=(None, "b2"))["01.5"] == no


def test_01_2_is_a_one_sided_equivalence_test_on_the_paired_interval():
    assert _verdicts(diff=0.0)["01.2"] == "holds"                        # null: the PCs lose nothing (bound 0.016)
    assert _verdicts(diff=-0.05)["01.2"] == "holds"                      # 100 PCs beating all features is no loss
    assert _verdicts(diff=0.02)["01.2"] == "does not hold"               # inside noise of a 0.03 margin: bound 0.036
    assert _verdicts(diff=0.05)["01.2"] == "does not hold"               # effect: all features win by 5 points
    eq = s01.equivalence(_pairs(0.01, 0.01))
    assert set(eq["layer"]) == {"stem", "b1", "b2"}                      # "mid" (150 dims) is not judged
    assert np.allclose(eq["upper"], 0.01 + 1.6449 * 0.01, atol=1e-4)


def test_01_3_compares_each_probe_at_its_best_k_with_the_seeds_spread():
    assert _verdicts(svm_edge=-0.05)["01.3"] == "does not hold"          # effect against: below 0 in every seed
    row = {r.id: r for r in _rows(svm_edge=0.05, bad_seed_edge=-0.05)}["01.3"]
    assert row.verdict == "inconclusive" and "detects an edge of" in row.note     # seeds disagree
    best = s01.best_per_layer(_probes(reach_k=8))
    assert np.allclose(best.loc[best["layer"] == "b2", "svm"], 0.86)     # the best k, not k_max


def test_01_4_threshold_is_the_shuffled_order_null():
    q = s01.nc1_null_quantile(5)
    assert q == pytest.approx(-0.8)                                      # P(rho <= -0.8) = 8/120 at 5 layers
    rng = np.random.default_rng(1)
    passes = [s01.claims(_results(nc1=tuple(rng.permutation([10.0, 3.0, 2.0, 1.0, 0.3]))), CFG)[4].holds
              for _ in range(60)]
    assert np.mean(passes) < 0.1                                         # shuffled depth order: rarely holds


def test_01_5_is_inconclusive_when_the_last_block_guess_agrees_as_often():
    row = {r.id: r for r in _rows(onset=("b2", "b2"))}["01.5"]           # b2 = the last block: the guess agrees
    assert row.verdict == "inconclusive" and "last-block guess" in row.note


def _with_extra(results, label, **kw):
    """``results`` plus one extra network (seed 0 of ``_results(**kw)``) under ``label``."""
    sub = {k: v[v["seed"] == 0].reset_index(drop=True) if isinstance(v, pd.DataFrame) and "seed" in v else v
           for k, v in _results(**kw).items()}
    return {**results, "extra": {label: sub}}


def test_01_5_holds_only_when_the_surrogates_agree_where_nc1s_onset_leaves_the_last_block():
    cfg = replace(CFG, long_epochs=45)
    label = "width 8, 45 epochs"
    base = _results(onset=("b2", "b2"))                                 # the seeds: both onsets at the last block
    null = {r.id: r for r in s01.claims(_with_extra(base, label, onset=("pool", "b2")), cfg)}["01.5"]
    assert null.verdict == "inconclusive" and "cannot tell" in null.note    # the guess agrees everywhere
    effect = s01.claims(_with_extra(base, label, onset=("b1", "b1")), cfg)[5]   # NC1 moves to b1, surrogates too
    assert effect.verdict == "holds" and "in 1, where they agree in 1" in effect.value
    miss = s01.claims(_with_extra(base, label, onset=("b2", "stem")), cfg)[5]   # NC1 moves, the surrogates do not
    assert miss.verdict == "does not hold"
    none = s01.claims(_results(onset=(None, None)), cfg)[5]                 # no network collapses
    assert none.verdict == "untestable" and "no collapse onset" in none.note
    on = s01.network_onsets(_with_extra(base, label), cfg)
    assert list(on["network"]) == ["width 8, seed 0", "width 8, seed 1", "width 8, seed 2", label]


def test_01_1_is_judged_at_the_widest_rung_with_the_slope_against_width():
    cfg = replace(CFG, ladder_widths=(16,))
    narrow = _results(reach_k=64)                                       # width 8: v* = 64/128 = 0.5
    effect = s01.claims(_with_extra(narrow, "width 16", reach_k=12), cfg)[1]   # width 16: v* = 12/128
    assert effect.verdict == "holds" and "widths 8/16, judged at 16" in effect.statement
    assert "slope -0.406 per doubling" in effect.value and "0.094 at b2, k*=12" in effect.value
    null = s01.claims(_with_extra(narrow, "width 16", reach_k=48), cfg)[1]     # width 16: v* = 0.375
    assert null.verdict == "does not hold" and null.value.startswith("0.3750")
    lad = s01.ladder.table(_with_extra(narrow, "width 16", reach_k=12), cfg)
    assert list(lad["width"]) == [8, 16] and list(lad["seeds"]) == [3, 1]
    assert np.allclose(lad["pcs_share"], [64 / 512, 12 / 512]) and (lad["layer"] == "b2").all()


def test_extra_networks_follow_the_seeds_and_skip_the_main_width():
    nets = s01.networks(replace(CFG, seeds=(5, 6), ladder_widths=(16, 4, 8), long_epochs=45))
    assert [label for label, _ in nets] == ["width 4", "width 16", "width 8, 45 epochs"]
    assert all(c.seeds == (5,) for _, c in nets) and nets[2][1].epochs == 45 and nets[2][1].width == CFG.width


def test_light_probing_gives_the_same_rows_up_to_k_max():
    x, y = _clusters(500, 300, seed=3)
    cfg = replace(CFG, k_max=8, svm_cs=(0.1, 1.0))
    full = pd.DataFrame(s01.probe_layer(x[:300], y[:300], x[300:], y[300:], cfg)["rows"])
    light = s01.probe_layer(x[:300], y[:300], x[300:], y[300:], cfg, full=False)
    assert not light["pairs"]
    pd.testing.assert_frame_equal(pd.DataFrame(light["rows"]), full[full["k"] <= 8].reset_index(drop=True))


def test_01_2_ignores_layers_of_at_most_200_dims():
    assert _verdicts(gap100=-0.05, gap_layer="mid")["01.2"] == "holds"


def test_vstar_is_the_variance_of_the_first_k_that_reaches_the_target():
    vs = s01.vstar(_results(reach_k=12), CFG)
    b2 = vs[vs["layer"] == "b2"]
    assert (b2["k_star"] == 12).all() and np.allclose(b2["v_star"], 12 / 128) and (b2["probe"] == "svm").all()
    assert vs[vs["layer"] == "stem"]["v_star"].isna().all()                 # 0.80 < 0.85 at every k


def test_determine_gaps_only_where_k100_and_all_features_exist():
    g = s01.determine_gaps(_probes(gap100=-0.05))
    assert set(g["layer"]) == {"stem", "b1", "mid", "b2"}                    # pool (64 dims) has no k = 100
    b1 = g[(g["layer"] == "b1") & (g["probe"] == "knn")]
    assert np.allclose(b1["gap"], -0.05)


# --------------------------------------------------------------------------- the probes' fast paths
def _clusters(n, d, c=5, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % c
    return rng.standard_normal((n, d)) + 1.5 * rng.standard_normal((c, d))[y], y


def test_knn_ncc_path_matches_scikit_learn_at_every_k():
    from sklearn.neighbors import KNeighborsClassifier, NearestCentroid

    x, y = _clusters(700, 30)
    ks = [1, 2, 3, 5, 8, 13, 30]
    path = probes.knn_ncc_path(x[:500], y[:500], x[500:], y[500:], ks, knn_k=7)
    for i, k in enumerate(ks):
        knn = KNeighborsClassifier(7).fit(x[:500, :k], y[:500]).score(x[500:, :k], y[500:])
        ncc = NearestCentroid().fit(x[:500, :k], y[:500]).score(x[500:, :k], y[500:])
        assert path["knn"][i] == pytest.approx(knn, abs=1e-12) and path["ncc"][i] == pytest.approx(ncc, abs=1e-12)
    with pytest.raises(ValueError, match="increase"):
        probes.knn_ncc_path(x[:500], y[:500], x[500:], y[500:], [3, 2])


def test_randomized_pca_matches_the_full_svd():
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(0)
    x = (rng.standard_normal((600, 40)) * np.geomspace(10, 0.1, 40)) @ rng.standard_normal((40, 1500))
    x += 0.05 * rng.standard_normal(x.shape)
    fast = probes.fit_pca(x, 64, seed=0)
    full = PCA(64, svd_solver="full").fit(x)
    assert np.allclose(np.cumsum(fast.explained_variance_ratio_), np.cumsum(full.explained_variance_ratio_),
                       atol=1e-3)


def test_svm_c_chosen_by_cross_validation_converges():
    x, y = _clusters(300, 10)
    c, score, converged = probes.choose_svm_c(x, y, (0.01, 1.0), folds=3, seed=0)
    assert c in (0.01, 1.0) and 0.5 < score <= 1.0 and converged


def test_the_dataset_is_a_config_choice_passed_to_data_load():
    ds, raw = s01.load_data(replace(CFG, dataset="digits", n_train=200, n_test=100))
    assert len(ds.x_train) == 200 and 0.5 < raw <= 1.0
    with pytest.raises(ValueError, match="valid datasets"):
        s01.load_data(replace(CFG, dataset="nope"))


def test_wide_svm_on_the_span_equals_the_svm_on_all_features():
    rng = np.random.default_rng(0)
    n, m, d, c = 300, 200, 2000, 4
    y = np.arange(n + m) % c
    x = np.maximum(rng.standard_normal((n + m, d)) + 0.08 * rng.standard_normal((c, d))[y], 0).astype(np.float32)
    x[:n, :40] = 0                                             # units dead on train, alive on test
    for C in (0.01, 1.0):
        slow = probes.svm(C, seed=0)
        assert probes.fit_quietly(slow, x[:n], y[:n])
        pred, converged = probes.svm_predict_wide(x[:n], y[:n], x[n:], C, seed=0)
        assert converged and np.array_equal(pred, slow.predict(x[n:]))
        assert 0.4 < np.mean(pred == y[n:]) < 0.95            # not a trivially separable case


def test_span_coordinates_keep_inner_products_with_training_rows():
    rng = np.random.default_rng(1)
    xtr, xte = rng.standard_normal((50, 300)), rng.standard_normal((20, 300))
    xtr[-1] = xtr[0] + xtr[1]                                  # rank 49
    ztr, zte = probes.span_coordinates(xtr, xte)
    assert ztr.shape == (50, 49)
    assert np.allclose(ztr @ ztr.T, xtr @ xtr.T) and np.allclose(zte @ ztr.T, xte @ xtr.T)


def test_seeds_probed_in_processes_equal_the_loop(tmp_path, monkeypatch):
    monkeypatch.setenv("NNLENS_CACHE", str(tmp_path))
    cfg = replace(CFG, dataset="digits", n_train=120, n_test=60, width=2, epochs=1, seeds=(0, 1), k_max=4,
                  svm_cs=(0.1, 1.0))
    ds, _ = s01.load_data(cfg)
    extra = (replace(cfg, width=3, seeds=(0,)),)                # a ladder network, probed on k <= k_max only
    for c in (cfg, *extra):
        for s in c.seeds:
            s01.runs.train_network(c, ds, s)
    loop = s01.runs.probe_seeds(cfg, ds, n_jobs=1, extra=extra)
    par = s01.runs.probe_seeds(cfg, ds, n_jobs=2, extra=extra)
    assert len(par) == 3 and par[2]["pairs"].empty and (par[2]["probes"]["k"] <= cfg.k_max).all()
    for a, b in zip(loop, par, strict=True):
        assert a["net"] == b["net"]
        for key in ("probes", "svm", "collapse", "pairs"):
            pd.testing.assert_frame_equal(a[key], b[key])
