"""Study 03's runs and measurements: one regime of the two-layer model trained through
``train.fit`` with weight snapshots, and the spectral measurements of a snapshot.

Model: ``models.TwoLayer``, f(x) = aᵀσ(Wx/√d)/√h, W (h, d) and a (h,) N(0, 1); only W
is trained (a stays at init, as in Ba et al. 2022). Loss: ``F.mse_loss`` = (1/n)‖f - y‖².

Units. W's ESD is eig(WᵀW / h) against MP(d/h, σ² = 1): in these units ‖W0/√h‖op = 1 + √(d/h).
Step sizes are multiples of the edge of stability n / λmax(NTK0) of full-batch GD; the NTK of
this parametrization has λmax = Θ(1), so the edge is Θ(n) here, which is a step Θ(1) in the
paper's units (W with N(0, 1/d) entries, loss (1/2n)‖f - y‖²: η_paper = 2 η / d). A "small
constant learning rate" is a fixed multiple of the edge at every size, for a fixed number of steps.

One *epoch* is one pass over the training set: one step for full-batch GD, n / batch steps for
mini-batch SGD and Adam.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ... import data as data_mod
from ... import models, spectra, train, utils

EDGE_MARGIN = 0.05      # kernels (no closed-form edge) and the MLP's first layer: an eigenvalue above 1.05 x the
                        # initial top one / the MP edge is outside the bulk; W's outliers use a simulated edge


@dataclass(frozen=True)
class Regime:
    name: str
    optimizer: str        # "sgd" (plain, no momentum) or "adam"
    lr: float
    batch: int = 0        # 0 = full batch
    epochs: int = 1


@dataclass
class Run:
    """One trained regime: W snapshots (float64 numpy), the fixed readout, per-epoch curves."""
    regime: Regime
    seed: int
    snap_epochs: list = field(default_factory=list)
    W: list = field(default_factory=list)             # (h, d) per snapshot
    a: np.ndarray | None = None                       # (h,)
    curves: pd.DataFrame | None = None                # epoch, train_loss, test_loss, lambda1 (, ntk_top)
    diverged: bool = False


READOUTS = ("standard", "mean_field")   # a ~ N(0, 1) (the paper's), or N(0, 1/h) (f0 ~ 0; Ba et al.'s option)


def spec(d: int, h: int, activation: str, readout: str = "standard") -> dict:
    if readout not in READOUTS:
        raise ValueError(f"unknown readout {readout!r}; valid: {', '.join(READOUTS)}")
    out = {"name": "twolayer", "d": d, "h": h, "activation": activation, "train_a": False}
    return out if readout == "standard" else {**out, "readout_std": 1 / math.sqrt(h)}


def teacher(n: int, d: int, cfg, seed: int) -> dict:
    """Training data and three fresh draws from the same teacher: validation, refit, test (n each).

    The refit split trains the ridge readout of ``refit_error``; validation chooses Adam's lr.
    """
    td = data_mod.teacher(n, d, cfg.noise, n_test=3 * n, seed=seed, link=cfg.link)
    xs, ys = td.x_test.split(n), td.y_test.split(n)
    return {"x": td.x_train, "y": td.y_train, "x_val": xs[0], "y_val": ys[0], "x_refit": xs[1],
            "y_refit": ys[1], "x_test": xs[2], "y_test": ys[2], "beta": td.beta}


def _top_sv2(M: torch.Tensor, v: torch.Tensor, iters: int = 20) -> tuple[float, torch.Tensor]:
    """(σmax(M)², its right singular vector) by warm-started power iteration on MᵀM.

    Hand-written because it runs after every epoch: from the previous epoch's vector it
    converges in a few iterations (~1 ms) where a full SVD of W costs ~15 ms; tested against SVD.
    """
    for _ in range(iters):
        v = M.T @ (M @ v)
        v = v / v.norm()
    return float((M @ v).norm() ** 2), v


def ntk_edge(W, a, x, activation: str) -> float:
    """The edge of stability n / λmax(NTK0) of full-batch GD on ``F.mse_loss``.

    F.mse_loss = (1/n)‖f - y‖² has Gauss-Newton Hessian 2 J Jᵀ / n with top eigenvalue 2 λmax(K) / n;
    GD on a quadratic is stable for lr < 2 / λmax(H) = n / λmax(K).
    """
    K = spectra.twolayer_ntk(W, a, x, activation, train_a=False)
    return float(len(x) / spectra.kernel_eigs(K)[-1])


def train_run(tdata: dict, d: int, h: int, regime: Regime, seed: int, activation: str,
              snapshots: int = 1, fine_ntk_epochs: int = 0, eval_every: int = 1, readout: str = "standard") -> Run:
    """Train ``regime`` from the init of ``seed`` through ``train.fit``; snapshot W at ``snapshots`` + 1
    evenly spaced epochs; record train/test MSE and λ1 = σmax(W)²/h after every epoch (and the
    NTK's top eigenvalue over the first ``fine_ntk_epochs`` epochs: the catapult's signature);
    the MSEs every ``eval_every`` epochs (``train.fit``'s evaluation costs as much as a GD step)."""
    ds = data_mod.TeacherData(tdata["x"], tdata["y"], tdata["x_test"], tdata["y_test"], tdata["beta"])
    cfg = train.TrainConfig(optimizer=regime.optimizer, lr=regime.lr, epochs=regime.epochs,
                            batch_size=regime.batch, seed=seed, schedule="constant", loss="mse")
    keep = set(snapshot_epochs(regime.epochs, snapshots))
    run, rows = Run(regime, seed), []
    v = torch.ones(d) / math.sqrt(d)
    u = torch.ones(len(tdata["x"]), dtype=torch.float64) / math.sqrt(len(tdata["x"]))

    def on_epoch(epoch, model):
        nonlocal v, u
        with torch.no_grad():
            W = model.W.detach()
            lam1, v = _top_sv2(W, v, 30 if epoch == 0 else 8)
            row = {"epoch": epoch, "lambda1": lam1 / h}
            if epoch < fine_ntk_epochs:
                K = torch.as_tensor(spectra.twolayer_ntk(W, model.a.detach(), tdata["x"], activation, False))
                for _ in range(30 if epoch == 0 else 8):        # warm-started power iteration (as above)
                    u = K @ u
                    u = u / u.norm()
                row["ntk_top"] = float(u @ K @ u)
            rows.append(row)
            if epoch in keep:
                run.snap_epochs.append(epoch)
                run.W.append(W.double().numpy().copy())
            if run.a is None:
                run.a = model.a.detach().double().numpy().copy()

    res = train.fit(spec(d, h, activation, readout), ds, cfg, cache=False, progress=False, on_epoch=on_epoch,
                    eval_every=eval_every)
    with torch.no_grad(), utils.seeded(seed):
        m0 = models.build(spec(d, h, activation, readout))                 # the same init, for the epoch-0 losses
        l0 = [float(F.mse_loss(m0(x), y)) for x, y in ((ds.x_train, ds.y_train), (ds.x_test, ds.y_test))]
    hist = pd.concat([pd.DataFrame([{"epoch": 0, "train_loss": l0[0], "test_loss": l0[1]}]),
                      res.history[["epoch", "train_loss", "test_loss"]]], ignore_index=True)
    run.curves = pd.DataFrame(rows).merge(hist, on="epoch", how="left")
    run.diverged = res.diverged
    return run


def snapshot_epochs(epochs: int, snapshots: int) -> list[int]:
    """``snapshots`` + 1 evenly spaced epochs from 0 to ``epochs`` inclusive (unique)."""
    return sorted(set(int(round(e)) for e in np.linspace(0, epochs, snapshots + 1)))


# ------------------------------------------------------------------ measurements
def weight_row(W, W0, beta, edge: float | None = None) -> dict:
    """Spectrum of eig(WᵀW/h), outliers above ``edge``, alignment with β, ‖ΔW‖ (one snapshot's row).

    ``edge`` (default: ``spectra.gaussian_top_quantile`` of W's shape, the 99% quantile of the top
    eigenvalue of a Gaussian matrix of that shape) separates outliers from the bulk; ``n_created``
    counts the outliers training added to those of the initial spectrum, ``p_align`` is the p-value of
    ‖P_out β‖ against a random subspace of the same dimension. One eigendecomposition of WᵀW/h (d <= h)
    gives the ESD, the outliers, their eigenvectors and the top one.
    """
    W, W0 = torch.as_tensor(W, dtype=torch.float64), torch.as_tensor(W0, dtype=torch.float64)
    h, d = W.shape
    if d > h:
        raise ValueError(f"weight_row needs d <= h, got W of shape {(h, d)}")
    edge = spectra.gaussian_top_quantile((h, d)) if edge is None else edge
    evals, evecs = torch.linalg.eigh(W.T @ W / h)                     # ascending
    eigs = evals.clamp_min(0).numpy()
    eigs0 = torch.linalg.eigvalsh(W0.T @ W0 / h).clamp_min(0).numpy()
    b = torch.as_tensor(beta, dtype=torch.float64)
    b = b / b.norm()
    out = evals > edge
    n_out, n_out0 = int(out.sum()), int(np.sum(eigs0 > edge))
    p_out = float((evecs[:, out].T @ b).norm())
    dW = W - W0
    dvals, dvecs = torch.linalg.eigh(dW.T @ dW)                        # (d, d): ΔW's right singular vectors
    dW_op = math.sqrt(max(float(dvals[-1]), 0.0))
    dW_fro = float(dW.norm())
    W0_op, W0_fro = math.sqrt(float(eigs0[-1]) * h), float(W0.norm())
    return {"lambda1": float(eigs[-1]), "mp_edge": spectra.mp_edges(d / h)[1], "edge": edge, "n_outliers": n_out,
            "n_outliers0": n_out0, "n_created": max(0, n_out - n_out0), "p_out_beta": p_out,
            "p_align": spectra.subspace_alignment_p(p_out, n_out, d), "bulk_ks": spectra.bulk_ks(eigs0, eigs, edge),
            "alignment": float(abs(evecs[:, -1] @ b)),
            "dW_alignment": float(abs(dvecs[:, -1] @ b)) if dW_op > 0 else 0.0, "dW_op": dW_op, "dW_fro": dW_fro,
            "W0_op": W0_op, "W0_fro": W0_fro, "dW_op_sqrt_h": dW_op / math.sqrt(h),
            "dW_fro_sqrt_h": dW_fro / math.sqrt(h), "dW_fro_rel": dW_fro / W0_fro}


def ks_nulls(W0, a, x, dW_fro: float, activation: str, edge: float, draws: int, kernel_draws: int,
             seed: int) -> dict:
    """The coupled nulls of the bulk KS of W, CK and NTK: the largest KS over random perturbations E of W0
    with ‖E‖_F = ‖ΔW‖_F (``spectra.coupled_ks_null``; ``draws`` for W, ``kernel_draws`` for the
    kernels; 0 skips one, NaN). The cuts match the measured ones: W's outlier ``edge``, 1.05 λmax of
    the initial kernel."""
    W0 = torch.as_tensor(W0, dtype=torch.float64)
    row = {"bulk_ks_null": float(spectra.coupled_ks_null(W0, dW_fro, draws, seed, edge=edge).max()) if draws > 0
           else math.nan}
    for i, name in enumerate(("ck", "ntk")):
        if kernel_draws <= 0:
            row[f"{name}_ks_null"] = math.nan
            continue

        def esd(W, i=i):
            return spectra.kernel_eigs(kernels(W, a, x, activation)[i])

        cut = float(esd(W0)[-1]) * (1 + EDGE_MARGIN)
        row[f"{name}_ks_null"] = float(spectra.coupled_ks_null(W0, dW_fro, kernel_draws, seed, esd, cut).max())
    return row


def kernels(W, a, x, activation: str) -> tuple[np.ndarray, np.ndarray]:
    """(CK, NTK) of the two-layer model on x (N, d), each (N, N), closed form (``spectra``)."""
    return spectra.twolayer_ck(W, x, activation), spectra.twolayer_ntk(W, a, x, activation, train_a=False)


def kernel_bulk(e0: np.ndarray, e1: np.ndarray) -> dict:
    """Bulk KS of a kernel's final ESD against its initial one (both cut at 1.05 λmax(K0): a kernel
    of a Gaussian W has no closed-form edge, so its initial top eigenvalue is its λ+), and the
    number of final eigenvalues above that cut."""
    edge = float(e0[-1])
    return {"ks": spectra.bulk_ks(e0, e1, edge * (1 + EDGE_MARGIN)),
            "n_above": int(np.sum(e1 > edge * (1 + EDGE_MARGIN)))}


def refit_error(W, tdata: dict, activation: str, split: str = "test") -> float:
    """Test MSE of a ridge readout refitted on fresh teacher data (the refit split) on W's features.

    The frozen random readout keeps f0's variance in every prediction, so the network's own test
    error says little about its features; RidgeCV picks the penalty by leave-one-out on the refit split.
    """
    from sklearn.linear_model import RidgeCV

    act = models.ACTIVATIONS[activation][0]
    W = torch.as_tensor(W, dtype=torch.float64)

    def feats(x):
        return act(x.double() @ W.T / math.sqrt(W.shape[1])).numpy()   # (N, h)

    model = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(feats(tdata["x_refit"]), tdata["y_refit"].double().numpy())
    pred = model.predict(feats(tdata[f"x_{split}"]))
    return float(np.mean((pred - tdata[f"y_{split}"].double().numpy()) ** 2))


def heavy_tail(eigs, floor: float, null_alphas: np.ndarray, min_tail: int, null_q: float, p_max: float) -> dict:
    """The heavy-tail test of one spectrum: a power-law tail above ``floor`` (>= ``min_tail`` points),
    α below the ``null_q`` quantile of the Gaussian null, and the likelihood ratio favouring the
    power law over an exponential (llr > 0 at p < ``p_max``)."""
    fit = spectra.tail_fit(eigs, xmin_floor=floor, min_tail=min_tail)
    q = float(np.quantile(null_alphas, null_q))
    ok = bool(np.isfinite(fit.alpha) and fit.alpha < q and fit.llr > 0 and fit.p < p_max)
    return {"alpha": fit.alpha, "xmin": fit.xmin, "n_tail": fit.n_tail, "llr": fit.llr, "p": fit.p,
            "null_q": q, "heavy": ok}
