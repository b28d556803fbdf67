"""Training with weight snapshots, and the spectral measurements of study 03.

Wang, Engel, Sarwate, Dumitriu & Chiang (2022), "Spectral evolution and
invariance in linear-width neural networks", arXiv 2211.06506.

``train(model, x, y, regime, epochs, ...)`` runs one optimizer regime as plain
tensor code (no DataLoader: full-batch GD is one matrix product per step) and
keeps CPU copies of the parameters at ``snapshots`` evenly spaced epochs.
``measure_twolayer`` / ``measure_mlp`` turn the snapshots into one row per
snapshot: top eigenvalue of the first-layer weight against the MP edge of its
initialization, outliers, alignment with the teacher, ‖W_t - W_0‖, tail
exponent α, CK / NTK distance from initialization, and test error.

One *epoch* is one pass over the training set: one step for full-batch GD,
n / batch steps for mini-batch SGD and Adam.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.func import functional_call

from . import spectra
from .train import TrainConfig, effective_batch, loss_fn, make_optimizer

REGIMES = ("gd_small", "gd_large", "sgd_small", "adam")


@dataclass(frozen=True)
class Regime:
    name: str
    optimizer: str        # "sgd" (plain, no momentum) or "adam"
    lr: float
    batch: int = 0        # 0 = full batch


def regimes(lr_small: float, lr_large: float, adam_lr: float, batch: int) -> list[Regime]:
    """The four regimes of the paper: GD small / large step, mini-batch SGD small step, Adam."""
    return [Regime("gd_small", "sgd", lr_small), Regime("gd_large", "sgd", lr_large),
            Regime("sgd_small", "sgd", lr_small, batch), Regime("adam", "adam", adam_lr, batch)]


@dataclass
class Run:
    regime: Regime
    epochs: list = field(default_factory=list)       # snapshot epochs
    params: list = field(default_factory=list)       # {name: tensor (CPU copy)} per snapshot
    train_loss: list = field(default_factory=list)
    diverged: bool = False


def snapshot_epochs(epochs: int, snapshots: int) -> list[int]:
    """``snapshots`` + 1 evenly spaced epochs from 0 to ``epochs`` inclusive (unique)."""
    return sorted(set(int(round(e)) for e in np.linspace(0, epochs, snapshots + 1)))


def train(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, regime: Regime, epochs: int,
          snapshots: int, loss_fn=F.mse_loss, seed: int = 0) -> Run:
    """Train ``model`` in place on (x, y) with ``regime``; snapshot the parameters."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = make_optimizer(params, TrainConfig(optimizer=regime.optimizer, lr=regime.lr))
    n = len(x)
    bs = effective_batch(n, regime.batch)
    g = torch.Generator().manual_seed(seed)
    keep = set(snapshot_epochs(epochs, snapshots))
    run = Run(regime)

    def snap(epoch):
        with torch.no_grad():
            run.epochs.append(epoch)
            run.params.append({k: v.detach().clone() for k, v in model.named_parameters()})
            run.train_loss.append(float(loss_fn(model(x), y)))

    snap(0)
    for epoch in range(1, epochs + 1):
        perm = torch.randperm(n, generator=g) if bs < n else None
        for i in range(0, n, bs):
            xb, yb = (x, y) if perm is None else (x[perm[i:i + bs]], y[perm[i:i + bs]])
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
        if not math.isfinite(float(loss.detach())):
            run.diverged = True
            break
        if epoch in keep:
            snap(epoch)
    return run


# ------------------------------------------------------------------ measurements
def _init_stats(W0: np.ndarray) -> tuple[np.ndarray, dict]:
    """The initial weight's ESD and norms, computed once per run."""
    return spectra.weight_esd(W0)[0], spectra.norms(W0, W0)


def _weight_row(W: np.ndarray, W0: np.ndarray, init: tuple, sigma2: float, mp_margin: float) -> dict:
    eigs0, w0 = init
    eigs, ratio = spectra.weight_esd(W)
    _, hi = spectra.mp_edges(ratio, sigma2)
    out = spectra.outliers(eigs, hi, mp_margin)
    fit = spectra.powerlaw_fit(eigs)
    return {"lambda1": float(eigs[-1]), "mp_edge": hi, "n_outliers": len(out),
            "bulk_ks": spectra.bulk_ks(eigs0, eigs, hi * (1 + mp_margin)),
            "alpha": fit.alpha, "alpha_xmin": fit.xmin,
            **spectra.norms(W, W0, {"W0_op": w0["W0_op"], "W0_fro": w0["W0_fro"]})}


def measure_twolayer(run: Run, data, activation: str = "tanh", train_a: bool = True,
                     mp_margin: float = 0.05, n_kernel: int = 0) -> pd.DataFrame:
    """One row per snapshot of a ``models.TwoLayer`` run on ``data.teacher`` data.

    Weight ESD: eig(WᵀW / h) against MP(ratio = d / h, sigma2 = 1) (the N(0, 1) init);
    kernels on the first ``n_kernel`` training points (0 = all).
    """
    xk = data.x_train if n_kernel <= 0 else data.x_train[:n_kernel]
    beta = data.beta.numpy()
    W0, a0 = run.params[0]["W"].numpy(), run.params[0]["a"].numpy()
    ck0 = spectra.twolayer_ck(W0, xk, activation)
    ntk0 = spectra.twolayer_ntk(W0, a0, xk, activation, train_a)
    init = _init_stats(W0)
    x_test = torch.as_tensor(data.x_test, dtype=torch.float64)
    act = spectra._ACTS[activation][0]
    rows = []
    for epoch, p, tl in zip(run.epochs, run.params, run.train_loss):
        W, a = p["W"].numpy(), p["a"].numpy()
        with torch.no_grad():
            Z = x_test @ torch.as_tensor(W, dtype=torch.float64).T
            pred = act(Z / math.sqrt(W.shape[1])) @ torch.as_tensor(a, dtype=torch.float64) / math.sqrt(W.shape[0])
            test_err = float(((pred - data.y_test.double()) ** 2).mean())
        rows.append({"regime": run.regime.name, "epoch": epoch, "train_loss": tl, "test_error": test_err,
                     **_weight_row(W, W0, init, 1.0, mp_margin),
                     "alignment": spectra.top_alignment(W, beta),
                     "ck_distance": spectra.kernel_distance(ck0, spectra.twolayer_ck(W, xk, activation)),
                     "ntk_distance": spectra.kernel_distance(ntk0, spectra.twolayer_ntk(W, a, xk, activation, train_a))})
    return pd.DataFrame(rows)


def mlp_kernels(model: torch.nn.Module, params: dict, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(CK, NTK) of an ``models.MLP`` with ``params`` on x (N, ...): each (N, N), float64.

    CK: Gram of the last hidden layer's features. NTK: the pNTK (Mohamadi et al.
    2023), the eNTK of the summed logits / √C, from per-example gradients
    (torch.func); exact and cheap at this size.
    """
    from torch.func import grad, vmap

    params = {k: v.detach().double() for k, v in params.items()}
    xd = x.double()

    def hidden(p, xb):
        z = xb.flatten(1)
        for i in range(len(model.hidden)):
            z = F.relu(z @ p[f"hidden.{i}.weight"].T + p[f"hidden.{i}.bias"])
        return z                                                     # (N, width)

    feats = hidden(params, xd)
    ck = (feats @ feats.T / feats.shape[1]).numpy()

    def f_sum(p, xi):
        out = functional_call(model, p, (xi[None],))                 # (1, C)
        return out.sum() / math.sqrt(out.shape[1])

    g = vmap(grad(f_sum), in_dims=(None, 0))(params, xd)             # {name: (N, *shape)}
    J = torch.cat([v.reshape(len(xd), -1) for v in g.values()], 1)   # (N, P)
    return ck, (J @ J.T).numpy()


def measure_mlp(run: Run, model: torch.nn.Module, ds, sigma2: float, mp_margin: float = 0.05,
                n_kernel: int = 200) -> pd.DataFrame:
    """One row per snapshot of an ``models.MLP`` run on a classification dataset.

    Weight ESD of the first layer W (width, in_dim) against MP(ratio, sigma2) with
    sigma2 the entry variance of PyTorch's default init, 1 / (3 in_dim). No teacher
    direction exists here, so no alignment. Test error = 1 - accuracy.
    """
    xk = ds.x_train[:n_kernel]
    W0 = run.params[0]["hidden.0.weight"].numpy()
    ck0, ntk0 = mlp_kernels(model, run.params[0], xk)
    init = _init_stats(W0)
    rows = []
    for epoch, p, tl in zip(run.epochs, run.params, run.train_loss):
        W = p["hidden.0.weight"].numpy()
        ck, ntk = mlp_kernels(model, p, xk)
        with torch.no_grad():
            out = functional_call(model, p, (ds.x_test,))
        test_err = float((out.argmax(1) != ds.y_test).float().mean())
        rows.append({"regime": run.regime.name, "epoch": epoch, "train_loss": tl, "test_error": test_err,
                     **_weight_row(W, W0, init, sigma2, mp_margin),
                     "ck_distance": spectra.kernel_distance(ck0, ck),
                     "ntk_distance": spectra.kernel_distance(ntk0, ntk)})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ step sizes
def twolayer_lr_edge(model, x: torch.Tensor, activation: str = "tanh") -> float:
    """The edge of stability n / λmax(NTK0) of full-batch GD on F.mse_loss for ``models.TwoLayer``.

    F.mse_loss = (1/n)‖f - y‖², whose Gauss-Newton Hessian has top eigenvalue
    2 λmax(K) / n; GD on a quadratic is stable for lr < 2 / λmax(H) = n / λmax(K).
    """
    K = spectra.twolayer_ntk(model.W.detach(), model.a.detach(), x, activation, model.a.requires_grad)
    return float(len(x) / spectra.kernel_eigs(K)[-1])


def mlp_lr_edge(model, x: torch.Tensor, n_classes: int, n_sub: int = 300) -> float:
    """Approximate edge of stability N C / λmax(pNTK_N) of full-batch GD on one-hot MSE for an MLP.

    λmax of the pNTK on all N points is estimated from a subset of ``n_sub`` as
    λmax(K_sub) N / n_sub (the top mode of these kernels is a low-rank mean mode
    whose eigenvalue grows linearly in N); approximate, used only to set the scale.
    """
    params = dict(model.named_parameters())
    _, ntk = mlp_kernels(model, params, x[:n_sub])
    lam = spectra.kernel_eigs(ntk)[-1] * len(x) / min(n_sub, len(x))
    return float(len(x) * n_classes / lam)


# ------------------------------------------------------------------ the study's runs
def run_twolayer(cfg) -> tuple[pd.DataFrame, dict, object]:
    """All four regimes on teacher data at ``cfg`` (``profiles.Study03``).

    Returns (history: one row per regime and snapshot, final: {regime: Run}, data).
    Step sizes: lr = multiplier × the edge of stability of the initial network.
    """
    from . import data as data_mod, models

    td = data_mod.teacher(cfg.n, cfg.d, cfg.noise, seed=cfg.seed, link=cfg.link)
    torch.manual_seed(cfg.seed)
    probe = models.TwoLayer(cfg.d, cfg.h, cfg.activation, train_a=False)
    init = probe.state_dict()
    edge = twolayer_lr_edge(probe, td.x_train, cfg.activation)
    frames, runs = [], {}
    for reg in regimes(cfg.lr_small * edge, cfg.lr_large * edge, cfg.adam_lr, cfg.sgd_batch):
        model = models.TwoLayer(cfg.d, cfg.h, cfg.activation, train_a=False)
        model.load_state_dict(init)                                  # same W0, a for every regime
        run = train(model, td.x_train, td.y_train, reg, cfg.epochs, cfg.snapshots, seed=cfg.seed)
        runs[reg.name] = run
        df = measure_twolayer(run, td, cfg.activation, train_a=False, mp_margin=cfg.mp_margin)
        frames.append(df.assign(lr=reg.lr, lr_edge=edge, diverged=run.diverged))
    return pd.concat(frames, ignore_index=True), runs, td


def run_mlp(cfg) -> tuple[pd.DataFrame, dict, object]:
    """The same four regimes for an MLP on ``cfg.mlp_dataset`` with one-hot MSE loss."""
    from . import data as data_mod, models

    ds = data_mod.load(cfg.mlp_dataset, cfg.mlp_n_train, 0, seed=cfg.seed)
    x, x_test = ds.x_train.flatten(1), ds.x_test.flatten(1)
    torch.manual_seed(cfg.seed)
    init_model = models.MLP(x.shape[1], ds.n_classes, cfg.mlp_width, cfg.mlp_depth)
    init = init_model.state_dict()
    edge = mlp_lr_edge(init_model, x, ds.n_classes, cfg.mlp_n_kernel)
    sigma2 = 1.0 / (3 * x.shape[1])          # kaiming_uniform(a=√5): U(±1/√fan_in), variance 1/(3 fan_in)
    flat = data_mod.Dataset(ds.name, x, ds.y_train, x_test, ds.y_test, ds.n_classes)
    frames, runs = [], {}
    for reg in regimes(cfg.lr_small * edge, cfg.lr_large * edge, cfg.adam_lr, cfg.sgd_batch):
        model = models.MLP(x.shape[1], ds.n_classes, cfg.mlp_width, cfg.mlp_depth)
        model.load_state_dict(init)
        run = train(model, x, ds.y_train, reg, cfg.mlp_epochs, cfg.snapshots, loss_fn=loss_fn("mse"), seed=cfg.seed)
        runs[reg.name] = run
        df = measure_mlp(run, model, flat, sigma2, cfg.mp_margin, cfg.mlp_n_kernel)
        frames.append(df.assign(lr=reg.lr, lr_edge=edge, diverged=run.diverged))
    return pd.concat(frames, ignore_index=True), runs, flat


# ------------------------------------------------------------------ claims (thresholds fixed in advance)
KS_MAX = 0.1              # claim 1: KS distance between initial and final bulk ESD
DW_RATIO_MAX = 0.2        # claim 1: ‖ΔW‖_op / ‖W0‖_op ("Θ(1)" next to Θ(√n))
ALIGN_MIN = 0.5           # claim 2: |<v1, β>| (chance level 1/√d)
RHO_MAX = -0.8            # claim 4: Spearman(kernel distance, test error) across the four regimes


def final(df: pd.DataFrame) -> pd.DataFrame:
    """The last snapshot of each regime, indexed by regime, in ``REGIMES`` order."""
    return df.sort_values("epoch").groupby("regime").last().reindex(list(REGIMES))


def claim_values(df: pd.DataFrame, d: int | None = None) -> dict:
    """Measured values and verdicts of claims 1-4 from a history frame (two-layer or MLP)."""
    from scipy.stats import spearmanr

    f = final(df)
    small = f.loc[["gd_small", "sgd_small"]]
    ratio = small["dW_op"] / small["W0_op"]
    c1 = bool((small["bulk_ks"] <= KS_MAX).all() and (ratio <= DW_RATIO_MAX).all())
    big = f.loc["gd_large"]
    c2 = bool(big["n_outliers"] >= 1 and ("alignment" in f and big["alignment"] >= ALIGN_MIN))
    c3 = bool(f.loc["adam", "alpha"] < f.loc["gd_small", "alpha"]
              and f.loc["adam", "test_error"] < f.loc["gd_small", "test_error"])
    rho_ntk = round(float(spearmanr(f["ntk_distance"], f["test_error"]).statistic), 9)  # -0.8 is exact for n=4
    rho_ck = float(spearmanr(f["ck_distance"], f["test_error"]).statistic)
    return {
        "1": dict(value=f"KS {small['bulk_ks'].max():.3f}, ‖ΔW‖op/‖W0‖op {ratio.max():.3f} (worst of GD/SGD small)",
                  threshold=f"KS <= {KS_MAX} and ratio <= {DW_RATIO_MAX}", holds=c1),
        "2": dict(value=(f"{int(big['n_outliers'])} outliers, λ1 {big['lambda1']:.3f} vs edge {big['mp_edge']:.3f}"
                         + (f", |<v1,β>| {big['alignment']:.3f} (chance {1 / math.sqrt(d):.3f})" if d else "")),
                  threshold=f">= 1 outlier above (1+margin) x MP edge and |<v1,β>| >= {ALIGN_MIN}", holds=c2),
        "3": dict(value=(f"α Adam {f.loc['adam', 'alpha']:.2f} vs GD small {f.loc['gd_small', 'alpha']:.2f}; "
                         f"test error {f.loc['adam', 'test_error']:.4f} vs {f.loc['gd_small', 'test_error']:.4f}"),
                  threshold="α(Adam) < α(GD small) and test error(Adam) < test error(GD small)", holds=c3),
        "4": dict(value=f"Spearman(NTK distance, test error) {rho_ntk:.2f} (CK: {rho_ck:.2f})",
                  threshold=f"ρ <= {RHO_MAX} (more kernel movement, lower error)", holds=bool(rho_ntk <= RHO_MAX)),
    }


# ------------------------------------------------------------------ figures
def plot_esd(runs: dict, sigma2: float, key: str, title: str, mp_margin: float = 0.05):
    """ESD histograms at init and at the end per regime, with the MP density of the init.

    Titles count outliers as the claims do: eigenvalues above (1 + mp_margin) x the MP edge.
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(runs), figsize=(3.2 * len(runs), 2.8), sharey=True)
    for ax, (name, run) in zip(np.atleast_1d(axes), runs.items()):
        e0, ratio = spectra.weight_esd(run.params[0][key].numpy())
        e1, _ = spectra.weight_esd(run.params[-1][key].numpy())
        lo, hi = spectra.mp_edges(ratio, sigma2)
        bins = np.linspace(0, max(hi, np.quantile(e1, 0.99)) * 1.1, 50)
        ax.hist(e0, bins, density=True, alpha=0.5, label="init")
        ax.hist(np.clip(e1, None, bins[-1]), bins, density=True, alpha=0.5, label="end")
        t = np.linspace(lo, hi, 400)
        ax.plot(t, spectra.mp_density(t, ratio, sigma2), "k-", lw=1, label="MP")
        ax.axvline(hi, color="k", ls=":", lw=1)
        n_out = len(spectra.outliers(e1, hi, mp_margin))
        ax.set(title=f"{name} (λ1={e1[-1]:.3g}, {n_out} outliers)", xlabel="eigenvalue")
    np.atleast_1d(axes)[0].legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_curves(df: pd.DataFrame, columns: list[str], title: str, logy: tuple = ()):
    """One panel per column, one line per regime, against epoch."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, axes = plt.subplots(1, len(columns), figsize=(3.2 * len(columns), 2.8))
    for ax, col in zip(np.atleast_1d(axes), columns):
        sns.lineplot(data=df, x="epoch", y=col, hue="regime", marker="o", ax=ax, legend=ax is axes[0])
        if col in logy:
            ax.set_yscale("symlog", linthresh=1e-3)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
