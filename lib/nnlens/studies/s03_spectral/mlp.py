"""Study 03 on real data: the same regimes for an MLP on ``cfg.mlp_dataset`` with one-hot MSE.

Reported beside the two-layer study (no ledger rows: there is no teacher direction, and the
paper's theory is for the two-layer model). Training through ``train.fit`` (``on_epoch``
snapshots of the first-layer weight), kernels from ``nnlens.ntk``:

- CK: Gram F Fᵀ / width of the last hidden layer's ReLU features.
- NTK: ``ntk.kernel(kind="pntk")`` = <Σ_c g_c(x), Σ_c g_c(x')>. The pNTK paper (Mohamadi et al.
  2022) differentiates Σ_c f_c / √C, i.e. has a factor 1/C that ``ntk`` drops: ours is C x theirs.
  Kernel distances are scale-free; the edge of stability below carries the C explicitly.
"""
from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ... import data as data_mod
from ... import models, ntk, spectra, train, utils
from . import twolayer as R
from .config import Study03

MLP_ADAM_LR = 1e-3          # PyTorch's default (this comparison is reported, not tested)
# GD small takes one step an epoch and ends far above the other regimes' training loss; the
# comparison also runs it on until its loss matches theirs, at most this many times the budget
# (a step costs ~1 ms here; past the cap it is reported as not reaching the loss).
MATCH_EPOCHS_MAX = 50


def kernels(model, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(CK, pNTK) of an ``models.MLP`` on x (N, D), each (N, N), float64 (pNTK scale: module docstring)."""
    m = copy.deepcopy(model).double()
    with torch.no_grad():
        z = x.double().flatten(1)
        for layer in m.hidden:
            z = F.relu(layer(z))                                       # (N, width)
        ck = (z @ z.T / z.shape[1]).numpy()
    K = ntk.kernel(m, x.double(), kind="pntk", device="cpu", progress=False).numpy()
    return ck, K


def lr_edge(model, x: torch.Tensor, n_classes: int, n_sub: int) -> float:
    """Approximate edge of stability of full-batch GD on one-hot MSE: N C / λmax(pNTK_paper)
    = N C² / λmax(pNTK_ours), λmax on all N points estimated from ``n_sub`` of them as
    λmax(K_sub) N / n_sub (the top mode of these kernels is a mean mode growing linearly in N)."""
    _, K = kernels(model, x[:n_sub])
    lam = spectra.kernel_eigs(K)[-1] * len(x) / min(n_sub, len(x))
    return float(len(x) * n_classes ** 2 / lam)


def _snapshots(spec: dict, flat: data_mod.Dataset, reg: R.Regime, epochs: int, cfg: Study03,
               xk: torch.Tensor) -> tuple[list, bool]:
    """Train ``reg`` for ``epochs`` (seed ``cfg.seed``); at ``cfg.snapshots`` + 1 epochs keep (epoch, first-layer
    W, CK, pNTK on ``xk``, train MSE, test error). Returns (snapshots, diverged)."""
    keep = set(R.snapshot_epochs(epochs, cfg.snapshots))
    tcfg = train.TrainConfig(optimizer=reg.optimizer, lr=reg.lr, epochs=epochs, batch_size=reg.batch,
                             seed=cfg.seed, schedule="constant", loss="mse")
    found = []

    def on_epoch(epoch, model):
        if epoch in keep:
            W = model.hidden[0].weight.detach().double().numpy().copy()
            ck, K = kernels(model, xk)
            tr = train.evaluate(model, flat.x_train, flat.y_train, "mse")[0]
            te = 1 - train.evaluate(model, flat.x_test, flat.y_test, "mse")[1]
            found.append((epoch, W, ck, K, tr, te))

    every = cfg.mlp_epochs if reg.name == "gd_small_matched" else 1   # its history is not used: evaluate rarely
    res = train.fit(spec, flat, tcfg, cache=False, progress=False, on_epoch=on_epoch, eval_every=every)
    return found, res.diverged


def _rows(reg: R.Regime, found: list, diverged: bool, edge: float, hi: float) -> list[dict]:
    """One row per snapshot: losses, W's spectrum against MP (edge ``hi``), norms, kernel distances from init."""
    W0, ck0, K0 = found[0][1:4]
    e0 = spectra.weight_esd(W0)[0]
    rows = []
    for epoch, W, ck, K, tr, te in found:
        eigs = spectra.weight_esd(W)[0]
        rows.append({"regime": reg.name, "epoch": epoch, "lr": reg.lr, "lr_edge": edge,
                     "train_loss": tr, "test_error": te, "lambda1": float(eigs[-1]),
                     "mp_edge": hi, "n_outliers": len(spectra.outliers(eigs, hi, R.EDGE_MARGIN)),
                     "bulk_ks": spectra.bulk_ks(e0, eigs, hi * (1 + R.EDGE_MARGIN)),
                     "alpha": spectra.powerlaw_fit(eigs).alpha, **spectra.norms(W, W0),
                     "ck_distance": spectra.kernel_distance(ck0, ck),
                     "ntk_distance": spectra.kernel_distance(K0, K), "diverged": diverged})
    return rows


def run_mlp(cfg: Study03) -> tuple[pd.DataFrame, dict]:
    """GD small / large, SGD small and Adam for an MLP (seed ``cfg.seed``), and GD small run on to the
    others' loss; one row per snapshot, and {"snapshots": {regime: [first-layer weight snapshots]}, "sigma2":
    the init's entry variance, "gram": the Gram whose eigenvalues ``spectra.weight_esd`` takes} for the figure."""
    ds = data_mod.load(cfg.mlp_dataset, cfg.mlp_n_train, cfg.mlp_n_test, seed=cfg.seed)
    x, x_test = ds.x_train.flatten(1), ds.x_test.flatten(1)
    flat = data_mod.Dataset(ds.name, x, ds.y_train, x_test, ds.y_test, ds.n_classes)
    spec = models.spec_for("mlp", flat, width=cfg.mlp_width, depth=cfg.mlp_depth)
    with utils.one_thread():
        with torch.random.fork_rng():
            torch.manual_seed(cfg.seed)
            init = models.build(spec)
        edge = lr_edge(init, x, ds.n_classes, cfg.mlp_n_kernel)
        sigma2 = 1.0 / (3 * x.shape[1])     # kaiming_uniform(a=√5): U(±1/√fan_in), variance 1/(3 fan_in)
        hi = spectra.mp_edges(min(x.shape[1], cfg.mlp_width) / max(x.shape[1], cfg.mlp_width), sigma2)[1]
        small = R.Regime("gd_small", "sgd", cfg.lr_small * edge, 0)
        regimes = [small, R.Regime("gd_large", "sgd", cfg.lr_large * edge, 0),
                   R.Regime("sgd_small", "sgd", cfg.lr_small * edge, cfg.sgd_batch),
                   R.Regime("adam", "adam", MLP_ADAM_LR, cfg.sgd_batch)]
        rows, snaps = [], {}
        for reg in regimes + [None]:
            epochs = cfg.mlp_epochs
            if reg is None:   # GD small on to the others' final training loss (the same trajectory continued)
                target = max(r["train_loss"] for r in rows
                             if r["epoch"] == cfg.mlp_epochs and r["regime"] != "gd_small")
                epochs = matched_epochs(spec, flat, small, cfg, target)
                reg = R.Regime("gd_small_matched", "sgd", small.lr, 0)
            found, diverged = _snapshots(spec, flat, reg, epochs, cfg, x[:cfg.mlp_n_kernel])
            snaps[reg.name] = [f[1] for f in found]
            rows += _rows(reg, found, diverged, edge, hi)
    gram = "WᵀW / h" if x.shape[1] <= cfg.mlp_width else "W Wᵀ / d"   # spectra.weight_esd's Gram of W (h, d)
    return pd.DataFrame(rows), {"snapshots": snaps, "sigma2": sigma2, "gram": gram}


class _Reached(Exception):
    """Raised from ``on_epoch`` to end the search pass of ``matched_epochs`` early."""


def matched_epochs(spec: dict, flat: data_mod.Dataset, regime: R.Regime, cfg: Study03, target: float) -> int:
    """Epochs after which ``regime`` (full batch) first has training loss <= ``target``, at most
    ``MATCH_EPOCHS_MAX`` x ``cfg.mlp_epochs`` (a search pass without snapshots that stops there;
    training is seeded, so the snapshot pass that follows retraces it)."""
    cap = MATCH_EPOCHS_MAX * cfg.mlp_epochs

    def on_epoch(epoch, model):
        if train.evaluate(model, flat.x_train, flat.y_train, "mse")[0] <= target:
            raise _Reached(epoch)

    tcfg = train.TrainConfig(optimizer=regime.optimizer, lr=regime.lr, epochs=cap, batch_size=regime.batch,
                             seed=cfg.seed, schedule="constant", loss="mse")
    try:
        train.fit(spec, flat, tcfg, cache=False, progress=False, on_epoch=on_epoch, eval_every=cap)
    except _Reached as hit:
        return int(hit.args[0])
    return cap


def esd(runs: dict) -> dict:
    """{regime: [{"W0", "W"}]}: first-layer weight ESDs at init and at the end, one seed (for ``figures.plot_esd``)."""
    return {k: [{"W0": spectra.weight_esd(v[0])[0], "W": spectra.weight_esd(v[-1])[0]}]
            for k, v in runs["snapshots"].items()}
