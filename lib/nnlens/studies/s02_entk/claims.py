"""Study 02's claims: one ledger row per claim of arXiv 2305.14585 (02.1-02.5) and beyond it (LDS, 02.6-02.8).

``claims(results, cfg)`` takes the notebook's results (faithfulness summary, paired τ, projection
error, poisoning pairs, LDS pairs); each threshold is named below with its reason.
"""
from __future__ import annotations

import pandas as pd

from ...report import Row
from .config import Study02
from .runs import CI_LEVEL, JUDGED_RECIPES, NTK_KERNELS, label


# ------------------------------------------------------------------ thresholds (fixed before any run)
# 02.1: |TAD| <= 2 percentage points counts as "network-level accuracy": the paper's own gaps
# (MNIST 0-vs-1 kGLM 99.67 % vs NN 99.64 %; CIFAR-10 0.929 vs about 0.93) are far below it, and on
# 300 test points one prediction is 0.33 points, so 0.02 is six test points.
TAD_MAX = 0.02
# 02.2 / 02.3: the paper's orderings are strict: the 95 % bootstrap CI (over test points) of the
# mean over seeds of the paired difference τ(trNTK) − τ(other) must lie above this.
TAU_MARGIN = 0.0
# 02.4: a random projection's error falls like K^(-1/2) (Johnson-Lindenstrauss); a fitted log-log
# slope within ±0.1 of -1/2 over the K grid counts as that rate.
SLOPE_RANGE = (-0.6, -0.4)
# 02.4: proj-trNTK "close to" trNTK: the paper's BERT gap is 0.809 vs 0.800 (0.009); twice that.
PROJ_TAU_GAP = 0.02
# 02.5: "better than Em and CK" on successful attacks: per-seed mean differences of both detection
# AUC and precision@k, trNTK minus each of Em and CK, positive on average with a one-sided paired
# t-test across seeds at this level, under both poisoning recipes (ours and the paper's α = 1e-2).
ALPHA = 0.05
# 02.6-02.8 (beyond the paper, LDS): "beats" = the 95 % bootstrap CI (over test points) of the paired
# LDS difference lies above LDS_MARGIN; "tracks" = |LDS(proj-trNTK) − LDS(trNTK)| <= LDS_TRACK_GAP, the
# same tolerance as 02.4's τ gap (a Spearman correlation on the same scale as τ).
LDS_MARGIN = 0.0
LDS_TRACK_GAP = 0.02
# ------------------------------------------------------------------ claims
def _fmt_pair(row) -> str:
    return f"{row['diff']:+.3f} [{row['lo']:+.3f}, {row['hi']:+.3f}]"


def claims(results: dict, cfg: Study02) -> list[Row]:
    """One row per paper claim (02.1-02.5).

    results: {"main": name of the 10-class setting, "faith": per-seed rows of
    ``faithfulness_runs``, "paired": ``paired_tau_table``, "proj_error": ``projection_error_table``,
    "poison_pairs": ``poisoning_pairs``, optionally "lds_paired": ``lds_runs``'s "paired"}. Recipes judged: ``JUDGED_RECIPES`` for 02.1-02.4,
    ``cfg.poison_recipes`` for 02.5.
    """
    main, faith, paired = results["main"], results["faith"], results["paired"]
    ci = f"{CI_LEVEL:.0%} bootstrap CI over test points"

    # 02.1: TAD of the NTK-kernel kGLMs; a setting where network and every kGLM are exactly right
    # on every test point cannot tell (ceiling), and is reported as such instead of counted.
    f = faith[faith["kernel"].str.split("@").str[0].isin(NTK_KERNELS) & faith["recipe"].isin(JUDGED_RECIPES)]
    parts, judged = [], []
    for s, g in f.groupby("setting", sort=False):
        ceiling = bool((g["acc_net"] == 1).all() and (g["acc_sur"] == 1).all())
        worst = float(g.groupby(["kernel", "recipe"])["tad"].mean().abs().max())
        parts.append(f"{s} {worst:.3f}" + (" (ceiling: network and kGLMs 1.000 on every test point, "
                                           "not informative)" if ceiling else ""))
        if not ceiling:
            judged.append(worst)
    rows = [Row(
        "02.1", "kGLMs on NTK kernels reach network-level test accuracy (|TAD| small)",
        "max |mean TAD| over trNTK, pNTK, proj-trNTK, proj-pNTK kGLMs and recipes " + ", ".join(JUDGED_RECIPES)
        + ": " + "; ".join(parts),
        f"TAD_MAX: <= {TAD_MAX} in every setting below the ceiling", bool(judged) and max(judged) <= TAD_MAX)]

    # 02.2 / 02.3: paired differences on the 10-class setting, CI lower bound above TAU_MARGIN
    def pairs(a, bs, setting=main):
        p = paired[(paired["setting"] == setting) & (paired["a"] == a) & paired["b"].isin(bs)
                   & paired["recipe"].isin(JUDGED_RECIPES)]
        return p, bool(len(p) == len(bs) * len(JUDGED_RECIPES) and (p["lo"] > TAU_MARGIN).all())

    others = ("trntk0", "pntk", "em", "ck", "gradcos")
    p2, ok2 = pairs("trntk", others)
    rows.append(Row(
        "02.2", "trNTK gives the highest τ among the kernels; Em and CK are lower",
        f"{main}, τ(trNTK) − τ(other), mean of per-seed paired differences [{ci}]: "
        + "; ".join(f"{r}: " + ", ".join(f"{label(row['b'])} {_fmt_pair(row)}" for _, row in g.iterrows())
                    for r, g in p2.groupby("recipe", sort=False)),
        f"TAU_MARGIN: CI lower bound > {TAU_MARGIN:g} against every other kernel, under recipes "
        + " and ".join(JUDGED_RECIPES), ok2))
    p3, ok3 = pairs("trntk", ("trntk0",))
    binary = paired[(paired["setting"] != main) & (paired["a"] == "trntk") & (paired["b"] == "trntk0")
                    & paired["recipe"].isin(JUDGED_RECIPES)]
    rows.append(Row(
        "02.3", "Normalization matters: trNTK τ above trNTK⁰ τ",
        f"τ(trNTK) − τ(trNTK⁰) [{ci}]: {main} " + ", ".join(f"{r['recipe']} {_fmt_pair(r)}" for _, r in p3.iterrows())
        + "; binary (reported, not judged): " + ", ".join(f"{r['setting']} {r['recipe']} {_fmt_pair(r)}"
                                                          for _, r in binary.iterrows()),
        f"TAU_MARGIN: CI lower bound > {TAU_MARGIN:g} on {main} under recipes " + " and ".join(JUDGED_RECIPES), ok3))

    # 02.4: projection error rate and the τ gap of proj-trNTK
    slopes = results["proj_error"].groupby("kernel")["slope"].first()
    gap = paired[(paired["setting"] == main) & paired["a"].str.startswith("proj_trntk") & (paired["b"] == "trntk")
                 & paired["recipe"].isin(JUDGED_RECIPES)]
    lo, hi = SLOPE_RANGE
    rows.append(Row(
        "02.4", "Projections track their exact kernels: error ~ K^(-1/2), proj-trNTK τ close to trNTK τ",
        f"error slope proj-trNTK {slopes['trntk']:.2f}, proj-pNTK {slopes['pntk']:.2f}; τ({label(gap['a'].iloc[0])}) − "
        f"τ(trNTK) [{ci}]: " + ", ".join(f"{r['recipe']} {_fmt_pair(r)}" for _, r in gap.iterrows()),
        f"SLOPE_RANGE: both slopes in [{lo:g}, {hi:g}]; PROJ_TAU_GAP: |mean τ gap| <= {PROJ_TAU_GAP} under "
        + " and ".join(JUDGED_RECIPES),
        bool(all(lo <= v <= hi for v in slopes.values) and len(gap) == len(JUDGED_RECIPES)
             and (gap["diff"].abs() <= PROJ_TAU_GAP).all())))

    # 02.5: successful attacks only; AUC and precision@k must agree, paired test across seeds
    pp = results["poison_pairs"]
    ok5 = bool(len(pp) and (pp["diff"] > 0).all() and (pp["p_value"] < ALPHA).all())
    rows.append(Row(
        "02.5", "NTK attributions find poisoned training data better than Em and CK",
        "on triggered test images the network assigns to the target class, trNTK − baseline (mean over seeds, "
        "one-sided paired t-test p): " + "; ".join(
            f"{r['recipe']} {'AUC' if r['metric'] == 'auc' else f'P@{cfg.topk}'} vs {label(r['baseline'])} "
            f"{r['diff']:+.3f} (p {r['p_value']:.3f})" for _, r in pp.iterrows()),
        f"ALPHA: every difference > 0 with p < {ALPHA}, for AUC and precision@{cfg.topk}, against Em and CK, "
        f"under recipes " + " and ".join(cfg.poison_recipes), ok5))
    if "lds_paired" in results:
        rows += lds_claims(results["lds_paired"])
    return rows


def lds_claims(paired: pd.DataFrame) -> list[Row]:
    """Rows 02.6-02.8 (beyond the paper): trNTK against Em, CK and TRAK on LDS; proj-trNTK against trNTK."""
    p = paired.set_index("b")
    ci = f"{CI_LEVEL:.0%} bootstrap CI over test points"
    fmt = lambda b: f"LDS(trNTK) − LDS({label(b)}) {_fmt_pair(p.loc[b])}"  # noqa: E731
    proj = paired[paired["a"].str.startswith("proj_trntk")].iloc[0]
    return [
        Row("02.6", "Beyond the paper (LDS): trNTK attributions predict retraining better than Em and CK",
                    f"{fmt('em')}; {fmt('ck')} [{ci}]",
                    f"LDS_MARGIN: both CI lower bounds > {LDS_MARGIN:g}",
                    bool(p.loc["em", "lo"] > LDS_MARGIN and p.loc["ck", "lo"] > LDS_MARGIN)),
        Row("02.7", "Beyond the paper (LDS): trNTK attributions predict retraining better than TRAK",
                    f"{fmt('trak')} [{ci}]", f"LDS_MARGIN: CI lower bound > {LDS_MARGIN:g}",
                    bool(p.loc["trak", "lo"] > LDS_MARGIN)),
        Row("02.8", "Beyond the paper (LDS): proj-trNTK attributions track trNTK's",
                    f"LDS({label(proj['a'])}) − LDS(trNTK) {_fmt_pair(proj)} [{ci}]",
                    f"LDS_TRACK_GAP: |difference| <= {LDS_TRACK_GAP}", bool(abs(proj["diff"]) <= LDS_TRACK_GAP)),
    ]
