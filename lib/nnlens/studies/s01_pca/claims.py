"""Study 01's claims: one ledger row per claim of arXiv 2309.15328, each threshold with the noise it rests on.

``claims(results, cfg)`` takes what ``runs.run`` returns (nets, probes, pairs, svm, collapse, onsets) and
calls one function per row. Values are mean ± sd over the network seeds (sd with ddof 1).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as st

from ...report import Row, Threshold
from . import ladder
from .config import Study01
from .runs import K_DETERMINE, NEAR_NETWORK

# ------------------------------------------------------------------ thresholds (fixed before any run)
RAW_GAP = Threshold(
    "RAW_GAP_MIN", "network − raw-pixel kNN, least over seeds", ">=", 0.25,
    "STUDIES.md's requirement on the default data; the gap's seed sd is ~0.02 (three seeds), far below it")
TRAIN_ACC = Threshold(
    "TRAIN_ACC_MIN", "training accuracy, least over seeds", ">=", 0.99,
    "the paper's protocol trains to (near) zero training error; 0.99 = at most 10 of 1000 images wrong")
V_STAR = Threshold(
    "V_STAR_MAX", "least over layers of mean v*", "<=", 0.25,
    "the paper's ~20% with 5 points for '~'; v*'s seed sd per layer is printed beside it (the noise)")
# 01.2: one-sided equivalence, acc(all features) - acc(100 PCs) <= margin, on the upper 95% bound of a paired
# interval over test points and seeds. The paired SE of that difference on 1000 test images is 0.009-0.012
# (measured, issue 22; printed per run); the smallest margin this design can meet with 80% power when the PCs
# lose nothing is (z_.95 + z_.80) x 0.012 = 0.030. A margin inside that would fail on noise alone.
DETERMINE = Threshold(
    "DETERMINE_MARGIN", "max over wide layers, kNN and NCC, of the upper 95% bound of acc(all) − acc(100 PCs)",
    "<=", 0.03, "(z_.95 + z_.80) x the largest paired SE on 1000 test images (0.012): the design's MDE")
V_STAR_MAX = V_STAR.value
WIDE_DIM = 200                      # 01.2 judges layers wider than this (a layer of <= 100 dims passes trivially)
Z95 = st.norm.ppf(0.95)
# 01.4: "NC1 decreases with depth": the mean over seeds of Spearman rho(depth, NC1) below the 5% quantile of
# its null (the layer order shuffled; simulated at the run's number of layers), and NC1(last) < NC1(stem).
N_NULL = 20000
ONSET_MAX_BLOCKS = 1                # 01.5: two onset estimates agree when at most one tap apart


def _pm(values) -> str:
    v = np.asarray(values, dtype=float)
    return f"{v.mean():.3f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.3f}"


def _t_interval(v, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, lo, hi) of a t interval over the values (seeds); half-width is the design's MDE."""
    v = np.asarray(v, dtype=float)
    half = st.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else np.inf
    return float(v.mean()), float(v.mean() - half), float(v.mean() + half)


# ------------------------------------------------------------------ one function per row
def row_data(results: dict, cfg: Study01) -> Row:
    """01.0 (control): the data makes the layer-wise story visible, and training reaches ~zero error."""
    nets = results["nets"]
    gap = nets["test_acc"] - nets["raw_knn"]
    value = (f"gap {_pm(gap)} (network {_pm(nets['test_acc'])}, raw kNN {nets['raw_knn'].iloc[0]:.3f}); "
             f"train acc min {nets['train_acc'].min():.3f}; {len(nets)} seeds")
    ok = RAW_GAP.check(gap.min()) and TRAIN_ACC.check(nets["train_acc"].min())
    return Row("01.0", "default data: the network beats kNN on raw pixels by >= 25 points, at ~zero training error",
               value, f"{RAW_GAP.text()} and {TRAIN_ACC.text()}", ok, kind="control",
               reasons=(f"RAW_GAP_MIN: {RAW_GAP.reason}.", f"TRAIN_ACC_MIN: {TRAIN_ACC.reason}."))


def row_vstar(results: dict, cfg: Study01) -> Row:
    """01.1: v* <= 0.25 in some layer, judged at the widest rung of the width ladder (v* is decided by the width:
    issue 22), with the slope of v* against log2(width) as the trend toward the paper's 64."""
    lad = ladder.table(results, cfg)
    r = ladder.rungs(lad, cfg)
    top = r.iloc[-1]
    tr = ladder.trend(lad, cfg)
    widths = "/".join(str(int(w)) for w in r["width"])
    stmt = (f"in some layer, ~20% of the variance suffices for high-accuracy classification (v*; ResNet-18 "
            f"widths {widths}, judged at {int(top['width'])}; the paper's is {ladder.PAPER_WIDTH})")
    rungs = "; ".join(
        f"width {int(x.width)} ({x.seeds} seed{'s' if x.seeds > 1 else ''}): " + (
            f"{x.v_star:.3f} at {x.layer}, k*={x.k_star:.3g} ({100 * x.pcs_share:.1f}% of its PCs), network "
            f"{x.test_acc:.3f}" if isinstance(x.layer, str) else f"no layer within reach at k <= {cfg.k_max}")
        for x in r.itertuples())
    trend = (f"; slope {tr['slope']:+.3f} per doubling of width over {tr['n_rungs']} rungs (extrapolated to "
             f"{ladder.PAPER_WIDTH}: {tr['at_paper_width']:.3f}, not judged)" if tr["n_rungs"] >= 2 else "")
    t = Threshold(V_STAR.name, f"least over layers of mean v* at the widest rung (width {int(top['width'])})",
                  V_STAR.op, V_STAR.value, f"{V_STAR.reason}; judged at the widest rung because v* moves with "
                  "the width and that rung is the nearest to the paper's network (the slope says which way)")
    if not isinstance(top["layer"], str):
        return Row("01.1", stmt, f"no layer where a probe reaches network − {NEAR_NETWORK} with k <= {cfg.k_max} "
                   f"in every seed at width {int(top['width'])}; {rungs}{trend}", t, False)
    return Row.judge("01.1", stmt, top["v_star"], t, detail=f"{rungs}{trend}")


def equivalence(pairs: pd.DataFrame) -> pd.DataFrame:
    """Per wide layer and probe: mean over seeds of acc(all) − acc(100 PCs), its SE and upper 95% bound.

    SE² = (between-seed variance)/S + mean within-seed paired SE² (the test points are shared by the
    seeds, so their noise does not average out over seeds)."""
    wide = pairs[pairs["dim"] > WIDE_DIM]
    rows = []
    for (depth, layer, probe), g in wide.groupby(["depth", "layer", "probe"], sort=True):
        between = g["diff"].var(ddof=1) / len(g) if len(g) > 1 else 0.0
        se = float(np.sqrt(between + np.mean(g["se"] ** 2)))
        rows.append({"layer": layer, "depth": depth, "probe": probe, "diff": g["diff"].mean(), "se": se,
                     "upper": g["diff"].mean() + Z95 * se, "paired_se_max": g["se"].max()})
    return pd.DataFrame(rows, columns=["layer", "depth", "probe", "diff", "se", "upper", "paired_se_max"])


def row_determine(results: dict, cfg: Study01) -> Row:
    """01.2: the first ~100 PCs determine kNN and NCC accuracy (one-sided equivalence on a paired interval)."""
    eq = equivalence(results["pairs"])
    stmt = f"in every layer, the first ~{K_DETERMINE} PCs determine kNN and NCC accuracy"
    if not len(eq):
        return Row("01.2", stmt, f"no layer with > {WIDE_DIM} dims and >= {K_DETERMINE} PCs", DETERMINE,
                   "untestable", note=f"no layer wider than {WIDE_DIM} dimensions with {K_DETERMINE} PCs")
    worst = eq.loc[eq["upper"].idxmax()]
    detail = (f"{worst['probe']} at {worst['layer']}: acc(all) − acc(100) = {worst['diff']:+.3f} ± "
              f"{worst['se']:.3f}; {eq['layer'].nunique()} layers; paired SE per seed "
              f"{results['pairs']['se'].min():.3f}–{results['pairs']['se'].max():.3f}")
    return Row.judge("01.2", stmt, worst["upper"], DETERMINE, detail=detail)


def best_per_layer(probe_df: pd.DataFrame) -> pd.DataFrame:
    """Per seed and layer, each probe's best test accuracy over its whole k grid (all features included)."""
    return probe_df.pivot_table(index=["seed", "depth", "layer"], columns="probe", values="accuracy",
                                aggfunc="max")[["knn", "ncc", "svm"]].reset_index()


def row_linear_best(results: dict, cfg: Study01) -> Row:
    """01.3: the linear SVM is the best surrogate, each probe at its best k (t interval over seeds)."""
    best = best_per_layer(results["probes"])
    best["edge"] = best["svm"] - best[["knn", "ncc"]].max(axis=1)
    per_seed = best.groupby("seed")["edge"].mean()
    mean, lo, hi = _t_interval(per_seed)
    wins = best.groupby(["depth", "layer"])["edge"].apply(lambda e: int((e > 0).sum())).reset_index()
    n = best["seed"].nunique()
    always = ", ".join(wins.loc[wins["edge"] == n, "layer"]) or "none"
    verdict = "holds" if lo > 0 else "does not hold" if hi < 0 else "inconclusive"
    t = Threshold("SVM_EDGE", "low end of the 95% t interval over seeds of mean over layers of svm − max(kNN, NCC)",
                  ">", 0.0, "the network seeds' spread (init and batch order) of the per-seed mean edge; does not "
                  "hold when the whole interval is below 0, inconclusive when it straddles 0")
    conv = results.get("svm")
    unconv = 0 if conv is None else int((~conv["converged"].astype(bool)).sum())
    value = (f"mean edge {mean:+.3f}, 95% CI [{lo:+.3f}, {hi:+.3f}] over {n} seeds (per seed "
             + ", ".join(f"{e:+.3f}" for e in per_seed) + f"); SVM best in every seed at: {always}; "
             f"unconverged SVM layers {unconv}")
    note = "" if verdict != "inconclusive" else (
        f"the interval straddles 0: this design detects an edge of {(hi - lo) / 2:.3f} or more" if n > 1
        else "one seed: no interval over seeds")
    return Row("01.3", "the linear SVM is the best of the three surrogates (each at its best k, C by CV on train)",
               value, t, verdict, note=note)


def nc1_null_quantile(n_layers: int, q: float = 0.05, seed: int = 0) -> float:
    """The q quantile of Spearman rho between depth and a shuffled layer order (``N_NULL`` draws).

    One shuffle for all seeds: the seeds train one architecture, so their profiles are not independent and
    averaging independent shuffles would make the null too narrow."""
    rng = np.random.default_rng(seed)
    ranks = np.argsort(rng.random((N_NULL, n_layers)), axis=1).astype(float)
    d = np.arange(n_layers, dtype=float)
    rho = 1 - 6 * ((ranks - d) ** 2).sum(1) / (n_layers * (n_layers ** 2 - 1))
    return float(np.quantile(rho, q))


def row_collapse(results: dict, cfg: Study01) -> Row:
    """01.4: NC1 decreases with depth (rho below its shuffled-order null, and the last layer below the stem)."""
    nc = results["collapse"]
    rho, drop = [], []
    for _, part in nc.groupby("seed", sort=True):
        part = part.sort_values("depth")
        rho.append(float(st.spearmanr(part["depth"], part["nc1"]).statistic))
        drop.append(bool(part["nc1"].iloc[-1] < part["nc1"].iloc[0]))
    q = nc1_null_quantile(nc["depth"].nunique())
    t = Threshold("NC1_RHO_NULL", "mean Spearman rho(depth, NC1)", "<=", round(q, 3),
                  f"5% quantile of its null: the layer order shuffled, one shuffle for all seeds ({N_NULL} draws "
                  f"at {nc['depth'].nunique()} layers)")
    first, last = nc[nc["depth"] == 0]["nc1"], nc[nc["depth"] == nc["depth"].max()]["nc1"]
    value = (f"rho {_pm(rho)}; NC1 stem {first.mean():.3g} -> last {last.mean():.3g}; last < stem in "
             f"{sum(drop)} of {len(drop)} seeds")
    return Row("01.4", "intermediate neural collapse: NC1 decreases with depth", value,
               f"{t.text()} and NC1(last) < NC1(stem) in every seed", t.check(np.mean(rho)) and all(drop),
               reasons=(f"NC1_RHO_NULL: {t.reason}.",))


def _onset_scores(on: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """Per network: whether the two onsets agree (within ONSET_MAX_BLOCKS; both absent counts as agreeing: neither
    sees collapse) and whether NC1's onset is more than ONSET_MAX_BLOCKS taps from the last block (``moved``:
    the last-block guess misses it there)."""
    guess, idx = len(order) - 2, {name: i for i, name in enumerate(order)}
    has = [isinstance(x, str) for x in on["nc1"]]
    agree = [(d is not None and not pd.isna(d) and d <= ONSET_MAX_BLOCKS) or (not isinstance(p, str) and not h)
             for d, p, h in zip(on["distance"], on["probes"], has, strict=True)]
    moved = [h and abs(idx[n] - guess) > ONSET_MAX_BLOCKS for n, h in zip(on["nc1"], has, strict=True)]
    return on.assign(agree=agree, moved=moved)


def row_onset(results: dict, cfg: Study01) -> Row:
    """01.5: the surrogates' onset agrees with NC1's in every network (the seeds and the extra networks), and
    beats the last-block guess: it must agree where NC1's onset is away from the last block. If NC1's onset is
    at the last block in every network, the guess cannot be told apart (inconclusive)."""
    nc = results["collapse"]
    order = list(nc[nc["seed"] == nc["seed"].iloc[0]].sort_values("depth")["layer"])
    sc = _onset_scores(ladder.network_onsets(results, cfg), order)
    mv = sc[sc["moved"]]
    value = ("; ".join(f"{r.network}: surrogates {r.probes}, NC1 {r.nc1}" for r in sc.itertuples())
             + f"; agree in {int(sc['agree'].sum())} of {len(sc)} networks; NC1's onset more than "
             f"{ONSET_MAX_BLOCKS} tap from the last block ({order[-2]}) in {len(mv)}, where they agree in "
             f"{int(mv['agree'].sum())}")
    t = Threshold("ONSET_MAX_BLOCKS", "distance between the two onsets, every network", "<=", ONSET_MAX_BLOCKS,
                  "one tap of slack for the two tolerances; the null is the last-block guess scored the same way, "
                  "which misses only networks whose NC1 onset is further than that from the last block")
    note, verdict = "", bool(sc["agree"].all())
    if verdict and not any(isinstance(x, str) for x in sc["nc1"]):
        verdict = "untestable"
        note = (f"NC1 does not fall to {cfg.nc1_onset} by the last layer in any of the {len(sc)} networks: no "
                "collapse onset to estimate")
    elif verdict and not len(mv):
        verdict = "inconclusive"
        note = (f"NC1's onset is within one tap of the last block in all {len(sc)} networks (widths "
                f"{sorted(set(int(w) for w in sc['width']))}), so the last-block guess agrees as often: this design "
                "cannot tell the surrogates from a fixed guess (needs a network where collapse starts earlier)")
    return Row("01.5", "surrogate agreement estimates the layer where collapse begins", value, t, verdict,
               note=note)


ROWS = (row_data, row_vstar, row_determine, row_linear_best, row_collapse, row_onset)


def claims(results: dict, cfg: Study01) -> list[Row]:
    """One row per claim (``ROWS``), from ``runs.run``'s results."""
    return [row(results, cfg) for row in ROWS]
