"""Study 03: spectral dynamics of linear-width two-layer networks (arXiv 2211.06506).

Wang, Engel, Sarwate, Dumitriu & Chiang (2022), "Spectral evolution and invariance in
linear-width neural networks". Model, units and step sizes: ``s03_runs`` (f(x) = aᵀσ(Wx/√d)/√h,
only W trained, lr in multiples of the edge of stability n / λmax(NTK0)).

The notebook calls, in order: ``null_alphas(cfg)``, ``tune_adam(cfg, null)``, ``run_regimes(cfg, adam_lr, null)``,
``run_ladder(cfg, regimes)``, ``run_mlp(cfg)``, ``claims(results, cfg)``; figures in ``s03_plots``.

Regimes (same init and data per seed): ``gd_small`` and ``sgd_small`` (0.05 x edge), ``gd_large``
(1.5 x edge for every epoch: the catapult regime, labelled so), ``one_step`` (one full-batch step
of size kappa (hd)^¼ / ‖∇W L(W0)‖op: the spike regime of Ba et al. 2022), ``adam`` (lr chosen by
validation error).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from .. import models, reports, spectra, utils
from . import s03_runs as R

# Thresholds, fixed before any run (issue 10).
KS_MAX = 0.1             # 03.1: two-sample KS of a final bulk against the initial one; two draws of the same
                         # law at d = 50..400 differ by KS ~ 0.05-0.2, so 0.1 is "on the same law"
SLOPE_BOUNDED = 0.25     # 03.1: |log-log slope over k| of ‖ΔW‖op/√h and ‖ΔW‖F/√h: Θ(1) has slope 0; ±0.25
                         # leaves room for finite-size corrections over an 8x ladder (a Θ(√k) growth is 0.5)
SLOPE_VANISH = -0.35     # 03.1: slope of ‖ΔW‖F/‖W0‖F: Θ(1)/Θ(k) in these units is k^-1/2 at √h-scaled ΔW
PROJ_MIN = 0.5           # 03.2: ‖P_out β‖ >= 0.5: more than a quarter of β's energy on the outlier subspace
CHANCE_FACTOR = 10       # 03.2: and >= 10 x chance √(k/d) (a random k-dimensional subspace)
HT_MIN_TAIL = 20         # 03.3: a heavy tail has >= 20 eigenvalues at or above xmin (fewer is a spike, not a tail)
HT_NULL_Q = 0.01         # 03.3: α below the 1st percentile of α over Gaussian matrices of the same shape
HT_P = 0.1               # 03.3: the power law beats the exponential at p < 0.1 (Clauset et al. 2009's level)
LABELS = ("invariant", "spike", "heavy-tailed")    # 03.4: ESD types, ordered as the paper orders kernel movement
REGIMES = ("gd_small", "sgd_small", "gd_large", "one_step", "adam")
ADAM_TUNE_SEED = 1000    # Adam's lr is chosen on this seed's data and init, disjoint from the measured seeds


def seeds(cfg) -> list[int]:
    return [cfg.seed + i for i in range(cfg.seeds)]


def sizes(cfg) -> dict[int, tuple[int, int, int]]:
    """{k: (n, d, h)}: the width ladder, (n, d, h) x k / max(ladder)."""
    top = max(cfg.ladder)
    if any(v % top for v in (cfg.n, cfg.d, cfg.h)):
        raise ValueError(f"n, d, h ({cfg.n}, {cfg.d}, {cfg.h}) must be multiples of max(ladder) = {top}")
    return {k: (cfg.n * k // top, cfg.d * k // top, cfg.h * k // top) for k in sorted(cfg.ladder)}


def _init(d: int, h: int, cfg, seed: int):
    with utils.seeded(seed):
        return models.build(R.spec(d, h, cfg.activation, cfg.readout))


def spike_lr(model, x, y, kappa: float) -> tuple[float, float]:
    """(η, ceiling): η = kappa (hd)^¼ / ‖∇W L(W0)‖op, so that ‖ΔW‖op = kappa (hd)^¼ after one step
    (invariant to the loss's scale), and the ceiling cos(Xᵀ(y - f0)/n, β)'s direction Xᵀ(y - f0)/n (d,)."""
    model.zero_grad()
    out = model(x)
    torch.nn.functional.mse_loss(out, y).backward()
    G = model.W.grad.double()                                          # (h, d)
    h, d = G.shape
    r = (x.double().T @ (y - out.detach()).double() / len(x))          # (d,)
    return float(kappa * (h * d) ** 0.25 / torch.linalg.matrix_norm(G, 2)), r


def _regimes(cfg, d, h, edge, adam_lr, batch, spike_eta):
    E = cfg.epochs
    out = [R.Regime("gd_small", "sgd", cfg.lr_small * edge, 0, E), R.Regime("sgd_small", "sgd", cfg.lr_small * edge, batch, E)]
    if spike_eta is not None:
        out += [R.Regime("gd_large", "sgd", cfg.lr_large * edge, 0, E), R.Regime("one_step", "sgd", spike_eta, 0, 1)]
    if adam_lr is not None:
        out.append(R.Regime("adam", "adam", adam_lr, batch, E))
    return out


def measure(run: R.Run, tdata: dict, cfg, null: dict | None = None, full: bool = True) -> tuple[dict, pd.DataFrame, dict]:
    """(final row, per-snapshot frame, final eigenvalues) of one run.

    Per snapshot: λ1, outliers, ‖P_out β‖, ‖ΔW‖, CK / NTK distance from init. At the end also the
    kernels' bulks against their initial ESDs, the heavy-tail tests (when ``null`` is given) and,
    with ``full``, the refit test error. Eigenvalues: {"W0", "W", "ck0", "ck", "ntk0", "ntk"}.
    """
    x, a = tdata["x"], run.a
    ck0, ntk0 = R.kernels(run.W[0], a, x, cfg.activation)
    snaps = []
    for epoch, W in zip(run.snap_epochs, run.W):
        ck, ntk = (ck0, ntk0) if epoch == 0 else R.kernels(W, a, x, cfg.activation)
        snaps.append({"regime": run.regime.name, "seed": run.seed, "epoch": epoch,
                      **R.weight_row(W, run.W[0], tdata["beta"]),
                      "ck_distance": spectra.kernel_distance(ck0, ck), "ntk_distance": spectra.kernel_distance(ntk0, ntk)})
    dyn = pd.DataFrame(snaps)
    curves = run.curves.dropna(subset=["train_loss"])
    row = {**snaps[-1], "lr": run.regime.lr, "diverged": run.diverged,
           "train_loss": float(curves["train_loss"].iloc[-1]), "test_loss": float(curves["test_loss"].iloc[-1])}
    row.pop("epoch")
    eig = {"W0": spectra.weight_esd(run.W[0])[0], "W": spectra.weight_esd(run.W[-1])[0]}
    for name, K0, K1 in (("ck", ck0, ck), ("ntk", ntk0, ntk)):
        eig[f"{name}0"], eig[name] = spectra.kernel_eigs(K0), spectra.kernel_eigs(K1)
        kb = R.kernel_bulk(eig[f"{name}0"], eig[name])
        row[f"{name}_ks"], row[f"{name}_above"], row[f"{name}_top"] = kb["ks"], kb["n_above"], float(eig[name][-1])
    if null is not None:
        for name, floor in (("W", row["mp_edge"]), ("ck", null["ck_edge"]), ("ntk", null["ntk_edge"])):
            ht = R.heavy_tail(eig[name], floor, null[name], HT_MIN_TAIL, HT_NULL_Q, HT_P)
            row.update({f"{name}_{k}": v for k, v in ht.items()})
    if full:
        row["refit_error"] = R.refit_error(run.W[-1], tdata, cfg.activation)
    return row, dyn, eig


@utils.one_thread()
def null_alphas(cfg, tdata: dict | None = None, seed: int = 0) -> dict:
    """The heavy-tail nulls at the top size: α of W's ESD over ``null_draws`` Gaussian (h, d) matrices,
    and of the CK / NTK built from them (fresh Gaussian a) on the training inputs; the kernels' λ+ is
    the median over those draws of λmax (no closed-form edge for these kernels)."""
    n, d, h = cfg.n, cfg.d, cfg.h
    tdata = tdata or R.teacher(n, d, cfg, cfg.seed)
    g = torch.Generator().manual_seed(10_000 + seed)
    kern = {"ck": [], "ntk": []}
    tops = {"ck": [], "ntk": []}
    for _ in range(cfg.null_draws):
        W = torch.randn(h, d, generator=g, dtype=torch.float64)
        a = torch.randn(h, generator=g, dtype=torch.float64)
        for name, K in zip(("ck", "ntk"), R.kernels(W, a, tdata["x"], cfg.activation)):
            e = spectra.kernel_eigs(K)
            kern[name].append(spectra.tail_fit(e, min_tail=HT_MIN_TAIL).alpha)
            tops[name].append(e[-1])
    return {"W": spectra.gaussian_null_alphas((h, d), cfg.null_draws, seed), "ck": np.array(kern["ck"]),
            "ntk": np.array(kern["ntk"]), "ck_edge": float(np.median(tops["ck"])),
            "ntk_edge": float(np.median(tops["ntk"]))}


# ------------------------------------------------------------------ drivers
@utils.one_thread()
def tune_adam(cfg, null: dict | None = None) -> tuple[float, pd.DataFrame]:
    """Adam's lr: the grid value with the lowest validation error (refit readout) on ``ADAM_TUNE_SEED``.

    With ``null`` (``null_alphas``) the table also gives each lr's heavy-tail tests and kernel
    distances: whether heavier tails come with larger steps, and at what validation error.
    """
    n, d, h = cfg.n, cfg.d, cfg.h
    tdata = R.teacher(n, d, cfg, ADAM_TUNE_SEED)
    rows = []
    for lr in cfg.adam_lrs:
        run = R.train_run(tdata, d, h, R.Regime("adam", "adam", lr, cfg.sgd_batch, cfg.epochs), ADAM_TUNE_SEED,
                          cfg.activation, snapshots=1, eval_every=cfg.epochs, readout=cfg.readout)
        err = R.refit_error(run.W[-1], tdata, cfg.activation, split="val") if not run.diverged else math.inf
        row = {"lr": lr, "val_error": err, "diverged": run.diverged}
        if null is not None and not run.diverged:
            m = measure(run, tdata, cfg, null, full=False)[0]
            row.update({k: m[k] for k in ("n_outliers", "W_alpha", "W_null_q", "W_n_tail", "W_llr", "W_p", "W_heavy",
                                          "ck_heavy", "ntk_heavy", "ck_distance", "ntk_distance")})
        rows.append(row)
    table = pd.DataFrame(rows)
    return float(table.loc[table["val_error"].idxmin(), "lr"]), table


@utils.one_thread()
def run_regimes(cfg, adam_lr: float, null: dict | None = None) -> dict:
    """Every regime at the top size (n, d, h) for every seed.

    Returns {"final": one row per (regime, seed), "dynamics": one row per snapshot,
    "curves": per-epoch losses and λ1 (and NTK λmax early on), "null": the heavy-tail nulls,
    "esd": {(regime, seed): {"W0", "W", "ck0", "ck", "ntk0", "ntk"} eigenvalues} for the figures}.
    """
    n, d, h = cfg.n, cfg.d, cfg.h
    finals, dyn, curves, esd = [], [], [], {}
    for s in seeds(cfg):
        tdata = R.teacher(n, d, cfg, s)
        null = null or null_alphas(cfg, tdata, cfg.seed)
        m0 = _init(d, h, cfg, s)
        edge = R.ntk_edge(m0.W.detach(), m0.a.detach(), tdata["x"], cfg.activation)
        eta, r = spike_lr(m0, tdata["x"], tdata["y"], cfg.spike_kappa)
        beta = tdata["beta"].double()
        ceiling = float(abs(r @ beta) / r.norm())
        for reg in _regimes(cfg, d, h, edge, adam_lr, cfg.sgd_batch, eta):
            catapult = reg.name == "gd_large"
            run = R.train_run(tdata, d, h, reg, s, cfg.activation, cfg.snapshots if reg.epochs > 1 else 1,
                              cfg.fine_ntk_epochs if catapult else 0, 1 if catapult else max(1, reg.epochs // 20),
                              cfg.readout)
            row, frame, eig = measure(run, tdata, cfg, null)
            finals.append({**row, "edge": edge, "ceiling": ceiling, "k": max(cfg.ladder)})
            dyn.append(frame)
            curves.append(run.curves.assign(regime=reg.name, seed=s, lr=reg.lr, edge=edge, n=n))
            if s == cfg.seed:
                esd[reg.name] = eig
    final = pd.DataFrame(finals)
    final["label"] = label(final)
    return {"final": final, "dynamics": pd.concat(dyn, ignore_index=True), "esd": esd, "null": null,
            "curves": pd.concat(curves, ignore_index=True), "adam_lr": adam_lr}


def label(final: pd.DataFrame) -> pd.Series:
    """Each run's final weight ESD: heavy-tailed (passes the tail test), else spike (>= 1 outlier), else invariant."""
    return pd.Series(np.where(final["W_heavy"], "heavy-tailed", np.where(final["n_outliers"] >= 1, "spike", "invariant")),
                     index=final.index)


@utils.one_thread()
def run_ladder(cfg, regimes: dict) -> pd.DataFrame:
    """GD and SGD small at every rung k < max(ladder) and every seed; the top rung's rows come from
    ``regimes`` (the same runs). SGD's batch scales with k, so every rung takes n / batch steps per epoch."""
    top = max(cfg.ladder)
    rows = []
    for k, (n, d, h) in sizes(cfg).items():
        if k == top:
            continue
        for s in seeds(cfg):
            tdata = R.teacher(n, d, cfg, s)
            m0 = _init(d, h, cfg, s)
            edge = R.ntk_edge(m0.W.detach(), m0.a.detach(), tdata["x"], cfg.activation)
            for reg in _regimes(cfg, d, h, edge, None, max(1, cfg.sgd_batch * k // top), None):
                run = R.train_run(tdata, d, h, reg, s, cfg.activation, snapshots=1, eval_every=reg.epochs,
                                  readout=cfg.readout)
                rows.append({**measure(run, tdata, cfg, None, full=False)[0], "edge": edge, "k": k})
    f = regimes["final"]
    df = pd.concat([pd.DataFrame(rows), f[f["regime"].isin(["gd_small", "sgd_small"])]], ignore_index=True)
    sz = sizes(cfg)
    for i, c in enumerate("ndh"):
        df[c] = df["k"].map(lambda k: sz[k][i])
    return df.sort_values(["regime", "k", "seed"]).reset_index(drop=True)


def ladder_slopes(ladder: pd.DataFrame) -> pd.DataFrame:
    """Per regime, log-log slopes over k of the seed-mean ‖ΔW‖op/√h, ‖ΔW‖F/√h and ‖ΔW‖F/‖W0‖F."""
    rows = []
    for reg, part in ladder.groupby("regime"):
        m = part.groupby("k")[["dW_op_sqrt_h", "dW_fro_sqrt_h", "dW_fro_rel"]].mean()
        rows.append({"regime": reg, **{f"slope_{c}": utils.loglog_slope(m.index.values, m[c].values) for c in m}})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ claims
def _ms(v) -> str:
    v = np.asarray(v, float)
    return f"{v.mean():.3g} ± {v.std(ddof=1) if len(v) > 1 else 0:.2g}"


def claims(results: dict, cfg) -> list[reports.Row]:
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
    rows.append(reports.Row(
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
        rows.append(reports.Row(
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
    rows.append(reports.Row(
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
    rows.append(reports.Row(
        "03.4", "kernel movement from init is ordered invariant < spike <= heavy-tailed, for CK and NTK",
        "median CK / NTK distance by label (runs): " + "; ".join(
            f"{lab} ({counts[lab]}): " + (f"{med.loc[lab, 'ck_distance']:.3g} / {med.loc[lab, 'ntk_distance']:.3g}"
                                          if present[lab] else "none") for lab in LABELS),
        "all three labels present and median invariant < spike <= heavy-tailed for CK and NTK", ok))
    return rows
