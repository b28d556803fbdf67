"""Study 03's drivers: spectral dynamics of linear-width two-layer networks (arXiv 2211.06506).

Wang, Engel, Sarwate, Dumitriu & Chiang (2022), "Spectral evolution and invariance in
linear-width neural networks". Model, units and step sizes: ``twolayer`` (f(x) = aᵀσ(Wx/√d)/√h,
only W trained, lr in multiples of the edge of stability n / λmax(NTK0)).

The notebook calls, in order: ``null_alphas(cfg)``, ``tune_adam(cfg, null)``, ``run_regimes(cfg, adam_lr, null)``,
``run_ladder(cfg, regimes)``, ``kappa_sweep(cfg)``, ``mlp.run_mlp(cfg)``, ``claims.claims(results, cfg)``;
figures in ``figures``.

Regimes (same init and data per seed): ``gd_small`` and ``sgd_small`` (0.05 x edge), ``gd_large``
(1.5 x edge for every epoch: the catapult regime, labelled so), ``one_step`` (one full-batch step
of size kappa (hd)^¼ / ‖∇W L(W0)‖op: Ba et al. 2022's η = Θ(1) scaling with a large constant; their
η = Θ(√N) step is kappa = (hd)^¼, run in ``kappa_sweep``), ``adam`` (lr chosen by validation error).

Outliers are eigenvalues of WᵀW/h above the 99% quantile of the top eigenvalue of Gaussian matrices
of the same shape (``spectra.gaussian_top_quantile``, ``EDGE_Q``); a bulk moved when its KS against
the initial ESD exceeds the coupled null (``twolayer.ks_nulls``).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from ... import models, spectra, utils
from . import twolayer as R
from .config import Study03

HT_MIN_TAIL = 20         # 03.3: a heavy tail has >= 20 eigenvalues at or above xmin (fewer is a spike, not a tail)
HT_NULL_Q = 0.01         # 03.3: α below the 1st percentile of α over Gaussian matrices of the same shape
HT_P = 0.1               # 03.3: the power law beats the exponential at p < 0.1 (Clauset et al. 2009's level)
EDGE_Q = 0.99            # 03.1/03.2: an outlier lies above the 99% quantile of a same-shape Gaussian's top eigenvalue
# 03.4: ESD types, in the paper's order of kernel movement ("bulk moved" sits between spike and heavy tail: the
# bulk left its law, but no power-law tail is there)
LABELS = ("invariant", "spike", "bulk moved", "heavy-tailed")
REGIMES = ("gd_small", "sgd_small", "gd_large", "one_step", "adam")
ADAM_TUNE_SEED = 1000    # Adam's lr is chosen on this seed's data and init, disjoint from the measured seeds


def seeds(cfg: Study03) -> list[int]:
    """The measured seeds: cfg.seed, cfg.seed + 1, ..."""
    return [cfg.seed + i for i in range(cfg.seeds)]


def sizes(cfg: Study03) -> dict[int, tuple[int, int, int]]:
    """{k: (n, d, h)}: the width ladder, (n, d, h) x k / max(ladder)."""
    top = max(cfg.ladder)
    if any(v % top for v in (cfg.n, cfg.d, cfg.h)):
        raise ValueError(f"n, d, h ({cfg.n}, {cfg.d}, {cfg.h}) must be multiples of max(ladder) = {top}")
    return {k: (cfg.n * k // top, cfg.d * k // top, cfg.h * k // top) for k in sorted(cfg.ladder)}


def outlier_edge(cfg: Study03, h: int, d: int) -> float:
    """The outlier edge of an (h, d) weight: the ``EDGE_Q`` quantile of a same-shape Gaussian's top eigenvalue."""
    return spectra.gaussian_top_quantile((h, d), EDGE_Q, cfg.edge_draws, 0)


def init(d: int, h: int, cfg: Study03, seed: int) -> models.TwoLayer:
    """The seed's initial two-layer model (the same for every regime)."""
    with utils.seeded(seed):
        return models.build(R.spec(d, h, cfg.activation, cfg.readout))


def spike_lr(model, x, y, kappa: float) -> tuple[float, torch.Tensor]:
    """(η, G): η = kappa (hd)^¼ / ‖∇W L(W0)‖op, so that ‖ΔW‖op = kappa (hd)^¼ after one step
    (invariant to the loss's scale), and the gradient G = ∇W L(W0) (h, d), float64."""
    model.zero_grad()
    out = model(x)
    torch.nn.functional.mse_loss(out, y).backward()
    G = model.W.grad.double()                                          # (h, d)
    h, d = G.shape
    return float(kappa * (h * d) ** 0.25 / torch.linalg.matrix_norm(G, 2)), G


def _regimes(cfg: Study03, edge: float, adam_lr: float | None, batch: int, spike_eta: float | None) -> list[R.Regime]:
    E = cfg.epochs
    out = [R.Regime("gd_small", "sgd", cfg.lr_small * edge, 0, E),
           R.Regime("sgd_small", "sgd", cfg.lr_small * edge, batch, E)]
    if spike_eta is not None:
        out += [R.Regime("gd_large", "sgd", cfg.lr_large * edge, 0, E), R.Regime("one_step", "sgd", spike_eta, 0, 1)]
    if adam_lr is not None:
        out.append(R.Regime("adam", "adam", adam_lr, batch, E))
    return out


def measure(run: R.Run, tdata: dict, cfg: Study03, null: dict | None = None, full: bool = True,
            kernel_null_draws: int = 0, w_null: bool = True) -> tuple[dict, pd.DataFrame, dict]:
    """(final row, per-snapshot frame, final eigenvalues) of one run.

    Per snapshot: λ1, outliers above the shape's edge (``outlier_edge``), ‖P_out β‖ and its p-value,
    ‖ΔW‖, CK / NTK distance from init. At the end also the kernels' bulks against their initial ESDs,
    the coupled KS nulls (W's with ``w_null``, the kernels' with ``kernel_null_draws`` > 0), the heavy-tail tests
    (when ``null`` is given) and, with ``full``, the refit test error.
    Eigenvalues: {"W0", "W", "ck0", "ck", "ntk0", "ntk"}.
    """
    x, a = tdata["x"], run.a
    h, d = run.W[0].shape
    cut = outlier_edge(cfg, h, d)
    ck0, ntk0 = R.kernels(run.W[0], a, x, cfg.activation)
    snaps = []
    for epoch, W in zip(run.snap_epochs, run.W, strict=True):
        ck, ntk = (ck0, ntk0) if epoch == 0 else R.kernels(W, a, x, cfg.activation)
        snaps.append({"regime": run.regime.name, "seed": run.seed, "epoch": epoch,
                      **R.weight_row(W, run.W[0], tdata["beta"], cut), "ck_distance": spectra.kernel_distance(ck0, ck),
                      "ntk_distance": spectra.kernel_distance(ntk0, ntk)})
    dyn = pd.DataFrame(snaps)
    curves = run.curves.dropna(subset=["train_loss"])
    row = {**snaps[-1], "lr": run.regime.lr, "diverged": run.diverged,
           "train_loss": float(curves["train_loss"].iloc[-1]), "test_loss": float(curves["test_loss"].iloc[-1])}
    row.pop("epoch")
    row.update(R.ks_nulls(run.W[0], a, x, row["dW_fro"], cfg.activation, cut, cfg.ks_null_draws if w_null else 0,
                          kernel_null_draws, run.seed))
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
def null_alphas(cfg: Study03, tdata: dict | None = None, seed: int = 0) -> dict:
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
        for name, K in zip(("ck", "ntk"), R.kernels(W, a, tdata["x"], cfg.activation), strict=True):
            e = spectra.kernel_eigs(K)
            kern[name].append(spectra.tail_fit(e, min_tail=HT_MIN_TAIL).alpha)
            tops[name].append(e[-1])
    return {"W": spectra.gaussian_null_alphas((h, d), cfg.null_draws, seed), "ck": np.array(kern["ck"]),
            "ntk": np.array(kern["ntk"]), "ck_edge": float(np.median(tops["ck"])),
            "ntk_edge": float(np.median(tops["ntk"]))}


# ------------------------------------------------------------------ drivers
@utils.one_thread()
def tune_adam(cfg: Study03, null: dict | None = None) -> tuple[float, pd.DataFrame]:
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
            m = measure(run, tdata, cfg, null, full=False, w_null=False)[0]
            row.update({k: m[k] for k in ("n_outliers", "W_alpha", "W_null_q", "W_n_tail", "W_llr", "W_p", "W_heavy",
                                          "ck_heavy", "ntk_heavy", "ck_distance", "ntk_distance")})
        rows.append(row)
    table = pd.DataFrame(rows)
    return float(table.loc[table["val_error"].idxmin(), "lr"]), table


def _cos(u: torch.Tensor, v: torch.Tensor) -> float:
    return float(abs(u @ v) / (u.norm() * v.norm()))


@utils.one_thread()
def run_regimes(cfg: Study03, adam_lr: float, null: dict | None = None) -> dict:
    """Every regime at the top size (n, d, h) for every seed.

    Returns {"final": one row per (regime, seed), "dynamics": one row per snapshot,
    "curves": per-epoch losses and λ1 (and NTK λmax early on), "null": the heavy-tail nulls,
    "esd": {regime: [{"W0", "W", "ck0", "ck", "ntk0", "ntk"} eigenvalues per seed]} for the figures}.
    Small-step rows carry the kernels' coupled KS nulls too (03.1 judges them on the ladder's top rung).
    """
    n, d, h = cfg.n, cfg.d, cfg.h
    finals, dyn, curves, esd = [], [], [], {}
    for s in seeds(cfg):
        tdata = R.teacher(n, d, cfg, s)
        null = null or null_alphas(cfg, tdata, cfg.seed)
        m0 = init(d, h, cfg, s)
        edge = R.ntk_edge(m0.W.detach(), m0.a.detach(), tdata["x"], cfg.activation)
        eta, _ = spike_lr(m0, tdata["x"], tdata["y"], cfg.spike_kappa)
        xty = tdata["x"].double().T @ tdata["y"].double() / n                   # (d,) the first step's f0 = 0 part
        for reg in _regimes(cfg, edge, adam_lr, cfg.sgd_batch, eta):
            catapult = reg.name == "gd_large"
            run = R.train_run(tdata, d, h, reg, s, cfg.activation, cfg.snapshots if reg.epochs > 1 else 1,
                              cfg.fine_ntk_epochs if catapult else 0, 1 if catapult else max(1, reg.epochs // 20),
                              cfg.readout)
            kd = cfg.ks_null_kernel_draws if reg.name in ("gd_small", "sgd_small") else 0
            row, frame, eig = measure(run, tdata, cfg, null, kernel_null_draws=kd)
            finals.append({**row, "edge_of_stability": edge, "cos_xty_beta": _cos(xty, tdata["beta"].double()),
                           "k": max(cfg.ladder)})
            dyn.append(frame)
            curves.append(run.curves.assign(regime=reg.name, seed=s, lr=reg.lr, edge=edge, n=n))
            esd.setdefault(reg.name, []).append(eig)
    final = pd.DataFrame(finals)
    final["label"] = label(final)
    return {"final": final, "dynamics": pd.concat(dyn, ignore_index=True), "esd": esd, "null": null,
            "curves": pd.concat(curves, ignore_index=True), "adam_lr": adam_lr}


def label(final: pd.DataFrame) -> pd.Series:
    """Each run's final weight ESD: heavy-tailed (passes the tail test); else bulk moved (the bulk KS above
    its coupled null, or >= HT_MIN_TAIL outliers: that many is a moved edge, not a spike); else spike
    (>= 1 outlier created by training); else invariant."""
    heavy = final["W_heavy"].fillna(False).astype(bool) if "W_heavy" in final else False
    moved = (final["bulk_ks"] > final["bulk_ks_null"]) | (final["n_created"] >= HT_MIN_TAIL)
    return pd.Series(np.where(heavy, "heavy-tailed", np.where(moved, "bulk moved", np.where(
        final["n_created"] >= 1, "spike", "invariant"))), index=final.index)


@utils.one_thread()
def run_ladder(cfg: Study03, regimes: dict) -> pd.DataFrame:
    """GD and SGD small at every rung k < max(ladder) and every seed; the top rung's rows come from
    ``regimes`` (the same runs). SGD's batch scales with k, so every rung takes n / batch steps per epoch."""
    top = max(cfg.ladder)
    rows = []
    for k, (n, d, h) in sizes(cfg).items():
        if k == top:
            continue
        for s in seeds(cfg):
            tdata = R.teacher(n, d, cfg, s)
            m0 = init(d, h, cfg, s)
            edge = R.ntk_edge(m0.W.detach(), m0.a.detach(), tdata["x"], cfg.activation)
            for reg in _regimes(cfg, edge, None, max(1, cfg.sgd_batch * k // top), None):
                run = R.train_run(tdata, d, h, reg, s, cfg.activation, snapshots=1, eval_every=reg.epochs,
                                  readout=cfg.readout)
                row = measure(run, tdata, cfg, None, full=False, kernel_null_draws=cfg.ks_null_kernel_draws)[0]
                rows.append({**row, "edge_of_stability": edge, "k": k})
    f = regimes["final"]
    df = pd.concat([pd.DataFrame(rows), f[f["regime"].isin(["gd_small", "sgd_small"])]], ignore_index=True)
    sz = sizes(cfg)
    for i, c in enumerate("ndh"):
        df[c] = df["k"].map({k: v[i] for k, v in sz.items()})
    return df.sort_values(["regime", "k", "seed"]).reset_index(drop=True)


def ladder_slopes(ladder: pd.DataFrame) -> pd.DataFrame:
    """Per regime, log-log slopes over k of the seed-mean ‖ΔW‖op/√h, ‖ΔW‖F/√h and ‖ΔW‖F/‖W0‖F."""
    rows = []
    for reg, part in ladder.groupby("regime"):
        m = part.groupby("k")[["dW_op_sqrt_h", "dW_fro_sqrt_h", "dW_fro_rel"]].mean()
        rows.append({"regime": reg, **{f"slope_{c}": utils.loglog_slope(m.index.values, m[c].values) for c in m}})
    return pd.DataFrame(rows)


def kappas(cfg: Study03) -> list[float]:
    """The κ sweep: ``cfg.kappa_sweep`` and κ = (hd)^¼ (Ba et al.'s η = Θ(√N) step at this size), ascending."""
    return sorted(set(cfg.kappa_sweep) | {round((cfg.h * cfg.d) ** 0.25, 2)})


@utils.one_thread()
def kappa_sweep(cfg: Study03) -> pd.DataFrame:
    """One full-batch GD step with ‖ΔW‖op = κ (hd)^¼ for every κ in ``kappas`` and every seed, at the
    top size: outliers (all, and created by the step), ‖P_out β‖ and its p-value against a random
    subspace, cos(top eigenvector, β), ‖ΔW‖F/‖W0‖F. One gradient per seed serves every κ (η ∝ κ)."""
    n, d, h = cfg.n, cfg.d, cfg.h
    rows = []
    for s in seeds(cfg):
        tdata = R.teacher(n, d, cfg, s)
        m0 = init(d, h, cfg, s)
        W0 = m0.W.detach().double()
        eta1, G = spike_lr(m0, tdata["x"], tdata["y"], 1.0)
        for kappa in kappas(cfg):
            r = R.weight_row(W0 - kappa * eta1 * G, W0, tdata["beta"], outlier_edge(cfg, h, d))
            rows.append({"kappa": kappa, "seed": s, **{k: r[k] for k in (
                "n_outliers", "n_created", "p_out_beta", "p_align", "alignment", "dW_fro_rel", "lambda1", "edge")}})
    return pd.DataFrame(rows)
