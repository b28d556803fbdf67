"""Study 03's claims: one ledger row per claim of arXiv 2211.06506, each threshold named with its reason.

``claims(results, cfg)`` takes {"regimes": ``runs.run_regimes``, "ladder": ``runs.run_ladder``}.
"""
from __future__ import annotations

import numpy as np

from ...report import Row
from .config import Study03
from .runs import HT_MIN_TAIL, HT_NULL_Q, HT_P, LABELS, ladder_slopes


# ------------------------------------------------------------------ thresholds (fixed before any run)
KS_MAX = 0.1             # 03.1: two-sample KS of a final bulk against the initial one; two draws of the same
                         # law at d = 50..400 differ by KS ~ 0.05-0.2, so 0.1 is "on the same law"
SLOPE_BOUNDED = 0.25     # 03.1: |log-log slope over k| of ‖ΔW‖op/√h and ‖ΔW‖F/√h: Θ(1) has slope 0; ±0.25
                         # leaves room for finite-size corrections over an 8x ladder (a Θ(√k) growth is 0.5)
SLOPE_VANISH = -0.35     # 03.1: slope of ‖ΔW‖F/‖W0‖F: Θ(1)/Θ(k) in these units is k^-1/2 at √h-scaled ΔW
PROJ_MIN = 0.5           # 03.2: ‖P_out β‖ >= 0.5: more than a quarter of β's energy on the outlier subspace
CHANCE_FACTOR = 10       # 03.2: and >= 10 x chance √(k/d) (a random k-dimensional subspace)


# ------------------------------------------------------------------ claims
def _ms(v) -> str:
    v = np.asarray(v, float)
    return f"{v.mean():.3g} ± {v.std(ddof=1) if len(v) > 1 else 0:.2g}"


def claims(results: dict, cfg: Study03) -> list[Row]:
    """03.1-03.4 (the paper's claims, issue 10's tests) and 03.5 (the catapult run under 03.2's test)
    from {"regimes": ``run_regimes``, "ladder": ``run_ladder``}."""
    f, lad = results["regimes"]["final"], results["ladder"]
    rows = []
    # 03.1 bulk invariance on the ladder
    sl = ladder_slopes(lad).set_index("regime")
    ks = lad[["bulk_ks", "ck_ks", "ntk_ks"]].max()
    n_out = int(lad["n_outliers"].max())
    worst = lad.loc[lad["n_outliers"].idxmax()]
    at_init = (f" (worst: k = {int(worst['k'])}, seed {int(worst['seed'])}, {worst['regime']}: "
               f"{int(worst.get('n_outliers0', -1))} above at init)") if n_out else ""
    ok_ks = bool((ks <= KS_MAX).all() and n_out == 0)
    ok_sl = bool((sl[["slope_dW_op_sqrt_h", "slope_dW_fro_sqrt_h"]].abs() <= SLOPE_BOUNDED).all().all()
                 and (sl["slope_dW_fro_rel"] <= SLOPE_VANISH).all())
    slopes = "; ".join(f"{r}: {v.slope_dW_op_sqrt_h:+.2f}, {v.slope_dW_fro_sqrt_h:+.2f}, {v.slope_dW_fro_rel:+.2f}"
                       for r, v in sl.iterrows())
    rows.append(Row(
        "03.1", "small-step GD and SGD keep the bulks of W, CK and NTK on their initial laws at every width, with "
                "Θ(1) changes of W (‖ΔW‖/√h bounded) and ‖ΔW‖F/‖W0‖F → 0",
        f"k = {sorted(int(k) for k in lad['k'].unique())}, {lad['seed'].nunique()} seeds: max KS W {ks['bulk_ks']:.3f}, CK {ks['ck_ks']:.3f}, "
        f"NTK {ks['ntk_ks']:.3f}; W eigenvalues above 1.05 λ+: {n_out} (max){at_init}; slopes of ‖ΔW‖op/√h, ‖ΔW‖F/√h, "
        f"‖ΔW‖F/‖W0‖F over k: {slopes}",
        f"KS <= KS_MAX = {KS_MAX}, 0 outliers, |slopes| <= SLOPE_BOUNDED = {SLOPE_BOUNDED}, "
        f"slope(‖ΔW‖F/‖W0‖F) <= SLOPE_VANISH = {SLOPE_VANISH}", ok_ks and ok_sl))
    # 03.2 one-step spike, 03.5 the same test on the catapult run
    for cid, reg, what in (("03.2", "one_step", "one large full-batch GD step (Ba et al. regime)"),
                           ("03.5", "gd_large", "GD at 1.5 x the edge for every epoch (catapult regime, not the paper's)")):
        r = f[f["regime"] == reg]
        chance = np.sqrt(np.maximum(r["n_outliers"], 1) / cfg.d)        # a random k-dim subspace of R^d
        ok = bool(len(r) and ((r["n_outliers"] >= 1) & (r["p_out_beta"] >= PROJ_MIN)
                              & (r["p_out_beta"] >= CHANCE_FACTOR * chance)).all())
        rows.append(Row(
            cid, f"{what} makes outlier eigenvalues whose eigenvectors align with the teacher direction β",
            f"{len(r)} seeds: outliers {sorted(r['n_outliers'].astype(int).tolist())}, ‖P_out β‖ {_ms(r['p_out_beta'])} "
            f"(min {r['p_out_beta'].min():.3f}; chance √(k/d) max {chance.max():.3f}); cos(top sv of ΔW, β) "
            f"{_ms(r['dW_alignment'])} vs its ceiling cos(Xᵀ(y−f0)/n, β) {_ms(r['ceiling'])}; "
            f"cos(top eigenvector of WᵀW, β) {_ms(r['alignment'])}",
            f">= 1 outlier above 1.05 λ+, ‖P_out β‖ >= PROJ_MIN = {PROJ_MIN} and >= CHANCE_FACTOR = {CHANCE_FACTOR} "
            "x √(k/d), in every seed", ok))
    # 03.3 Adam: heavy tails of W, CK, NTK and lower test error
    ad, gd = f[f["regime"] == "adam"].set_index("seed"), f[f["regime"] == "gd_small"].set_index("seed")
    heavy = {m: bool(ad[f"{m}_heavy"].all()) for m in ("W", "ck", "ntk")}
    diff = (ad["refit_error"] - gd["refit_error"]).dropna()
    tails = "; ".join(f"{m}: α {_ms(ad[f'{m}_alpha'].fillna(np.inf)) if ad[f'{m}_alpha'].notna().all() else 'no fit'} "
                      f"(null 1% {ad[f'{m}_null_q'].iloc[0]:.2f}), tail {ad[f'{m}_n_tail'].min()}-{ad[f'{m}_n_tail'].max()} pts, "
                      f"heavy in {int(ad[f'{m}_heavy'].sum())}/{len(ad)}" for m in ("W", "ck", "ntk"))
    rows.append(Row(
        "03.3", "Adam makes the weight and kernel spectra heavy-tailed and lowers the test error",
        f"lr {results['regimes']['adam_lr']:g} (by validation); {tails}; refit test MSE Adam {_ms(ad['refit_error'])} vs "
        f"GD small {_ms(gd['refit_error'])} (lower in {int((diff < 0).sum())}/{len(diff)} seeds)",
        f"heavy tail: xmin >= λ+, >= HT_MIN_TAIL = {HT_MIN_TAIL} points, α < null quantile HT_NULL_Q = {HT_NULL_Q}, "
        f"LR > 0 at p < HT_P = {HT_P}; for W, CK and NTK and lower refit error, in every seed",
        bool(all(heavy.values()) and len(diff) and (diff < 0).all())))
    # 03.4 spectral type orders kernel movement
    med = f.groupby("label")[["ck_distance", "ntk_distance"]].median().reindex(list(LABELS))
    present = med.notna().all(axis=1)
    ok = bool(present.all() and all(med.loc["invariant", c] < med.loc["spike", c] <= med.loc["heavy-tailed", c]
                                    for c in med))
    counts = f["label"].value_counts().reindex(list(LABELS), fill_value=0)
    rows.append(Row(
        "03.4", "kernel movement from init is ordered invariant < spike <= heavy-tailed, for CK and NTK",
        "median CK / NTK distance by label (runs): " + "; ".join(
            f"{lab} ({counts[lab]}): " + (f"{med.loc[lab, 'ck_distance']:.3g} / {med.loc[lab, 'ntk_distance']:.3g}"
                                          if present[lab] else "none") for lab in LABELS),
        "all three labels present and median invariant < spike <= heavy-tailed for CK and NTK", ok))
    return rows
