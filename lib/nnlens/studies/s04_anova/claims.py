"""Study 04's claims: one ledger row per claim of arXiv 2307.11684 in each arm, thresholds named with reasons.

``claims(results, cfg)`` takes what ``runs.analyze`` returns; 04.1-04.3 are the step-matched
(primary) arm, 04.4-04.6 the same claims in the fixed-epoch arm.
"""
from __future__ import annotations

from ...report import Row
from .config import Study04
from .runs import ALPHA, ARM_LABELS, FULL_BATCH_MAJORITY, _check

# ------------------------------------------------------------------ thresholds (fixed before any run)
MIN_LOWER_PAIRS = 1          # 04.3 "at specific batch sizes": at least one significantly lower pair, and more
                             # lower than higher ones (a one-sided count passes on noise in either direction)


# --------------------------------------------------------------------------- claims
def _pairs(rows) -> str:
    return ", ".join(f"{r.second} vs {r.first} @{r.batch} (x{r.ratio:.2g})" for r in rows.itertuples()) or "none"


def _arm_claims(r: dict, arm: str, ids: tuple[str, str, str]) -> list[Row]:
    tag = "" if arm == "steps" else f" [{ARM_LABELS[arm]}]"
    classical, hc3, art = r["anova"], r["anova_hc3"], r["art"]
    term = "C(batch)"
    p_hc3 = float(hc3.loc[term, "PR(>F)"])
    worst, full = r["worst"], r["full_batch"]
    n_full = int((worst["worst_batch"] == full).sum())
    at_full = ", ".join(worst.loc[worst["worst_batch"] == full, "optimizer"]) or "none"
    vr = r["variance_ratios"]
    low, high = vr[vr["lower"]], vr[vr["higher"]]
    return [
        Row(ids[0], "Batch size has a significant effect on peak accuracy" + tag,
                    f"HC3 F = {hc3.loc[term, 'F']:.1f}, p = {p_hc3:.2e}; classical p = "
                    f"{classical.loc[term, 'PR(>F)']:.2e}; aligned-rank p = {art.loc[term, 'PR(>F)']:.2e}; "
                    f"partial eta^2 = {classical.loc[term, 'partial_eta_sq']:.3f}",
                    f"HC3 (heteroscedasticity-robust) Type II p < ALPHA = {ALPHA}", p_hc3 < ALPHA),
        Row(ids[1], "Full batch is largely the worst (lowest mean peak accuracy per optimizer)" + tag,
                    f"{n_full} of {len(worst)} optimizers worst at full batch ({full}): {at_full}; "
                    f"bootstrap share of resamples with a majority: {r['p_majority']:.2f}",
                    f"more than FULL_BATCH_MAJORITY = {FULL_BATCH_MAJORITY} of the optimizers",
                    n_full > FULL_BATCH_MAJORITY * len(worst)),
        Row(ids[2], "Second-order optimizers have significantly lower variance at specific batch sizes" + tag,
                    f"of {len(vr)} (second, first)-order pairs x batch sizes: {len(low)} significantly lower "
                    f"({_pairs(low)}), {len(high)} significantly higher ({_pairs(high)}); min Holm p = "
                    f"{vr['p_holm'].min():.2g}",
                    f"lower >= MIN_LOWER_PAIRS = {MIN_LOWER_PAIRS} and lower > higher (Brown-Forsythe, Holm p < "
                    f"{ALPHA})", len(low) >= MIN_LOWER_PAIRS and len(low) > len(high)),
    ]


def claims(results: dict, cfg: Study04) -> list[Row]:
    """The paper's three claims in the primary (step-matched) arm, 04.1-04.3, and again in the
    fixed-epoch arm, 04.4-04.6, from ``analyze``'s results."""
    _check(cfg)
    return (_arm_claims(results["steps"], "steps", ("04.1", "04.2", "04.3"))
            + _arm_claims(results["epochs"], "epochs", ("04.4", "04.5", "04.6")))
