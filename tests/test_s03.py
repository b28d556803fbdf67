"""Study 03 (spectral dynamics): claims on hand-built results (each holding and failing), the
closed-form pieces (one-step spike size, edge of stability, outlier projection, power iteration,
the MLP's pNTK scale) and a tiny end-to-end run through ``train.fit``."""
import math

import numpy as np
import pandas as pd
import pytest
import torch

from nnlens import models, report, spectra
from nnlens.studies import profiles
from nnlens.studies import s03_spectral as S
from nnlens.studies.s03_spectral import mlp as s03_mlp
from nnlens.studies.s03_spectral import twolayer as R

CFG = profiles.load("03", "default")


# --------------------------------------------------------------------------- hand-built results
def _ladder(ks=(1, 2, 4, 8), op_slope=0.0, rel_slope=-0.5, ks_over=0.0, created=0):
    """A ladder whose bulk KS sits ``ks_over`` above its coupled null + 1/N (0: at the bound)."""
    rows = []
    for reg in ("gd_small", "sgd_small"):
        for k in ks:
            n, d = 100 * k, 50 * k
            for s in range(3):
                null = 0.04 / k
                rows.append({"regime": reg, "k": k, "seed": s, "n": n, "d": d,
                             "bulk_ks": null + 1 / d + ks_over, "bulk_ks_null": null,
                             "ck_ks": null, "ck_ks_null": null, "ntk_ks": null, "ntk_ks_null": null,
                             "n_outliers": created + (s == 2), "n_outliers0": int(s == 2), "n_created": created,
                             "dW_op_sqrt_h": 0.8 * k ** op_slope * (1 + 0.01 * s),
                             "dW_fro_sqrt_h": 0.9 * (1 + 0.01 * s),
                             "dW_fro_rel": 0.1 * k ** rel_slope * (1 + 0.01 * s)})
    return pd.DataFrame(rows)


def _final(p_out=0.65, spike_outliers=1, heavy=True, adam_err=0.05, gd_err=0.08, order=(0.001, 0.05, 0.1, 0.2),
           d=400):
    """Hand-built final rows: labels as the regimes would get them, p-values from the Beta null."""
    rows = []
    dist = dict(zip(S.LABELS, order, strict=True))
    for s in range(3):
        for reg in S.REGIMES:
            lab = {"gd_small": "invariant", "sgd_small": "invariant", "gd_large": "bulk moved", "one_step": "spike",
                   "adam": "heavy-tailed" if heavy else "invariant"}[reg]
            k = spike_outliers if reg in ("one_step", "gd_large") else 0
            p = p_out if k else 0.0
            r = {"regime": reg, "seed": s, "n_outliers": k, "n_created": k, "p_out_beta": p,
                 "p_align": spectra.subspace_alignment_p(p, k, d), "alignment": 0.6, "dW_alignment": 0.65,
                 "cos_xty_beta": 0.8, "dW_fro_rel": 0.14, "bulk_ks": 0.01, "bulk_ks_null": 0.01,
                 "refit_error": adam_err if reg == "adam" else gd_err, "label": lab,
                 "ck_distance": dist[lab], "ntk_distance": dist[lab] / 2}
            for m in ("W", "ck", "ntk"):
                r.update({f"{m}_heavy": heavy and reg == "adam", f"{m}_alpha": 2.5, f"{m}_null_q": 4.0,
                          f"{m}_n_tail": 40})
            rows.append(r)
    return pd.DataFrame(rows)


def _rows(ladder=None, final=None, adam_lr=0.001):
    res = {"regimes": {"final": _final() if final is None else final, "adam_lr": adam_lr},
           "ladder": _ladder() if ladder is None else ladder}
    rows = S.claims(res, CFG)
    assert [r.id for r in rows] == ["03.1", "03.2", "03.5", "03.3", "03.4"]
    assert all(isinstance(r, report.Row) for r in rows)
    return {r.id: r for r in rows}


def _verdicts(**kw):
    return {k: r.verdict for k, r in _rows(**kw).items()}


def test_claims_all_hold_on_a_faithful_result():
    rows = _rows()
    assert all(r.holds for r in rows.values()), {k: (r.verdict, r.value) for k, r in rows.items()}
    assert rows["03.5"].kind == "control" and rows["03.2"].kind == "paper claim"
    assert "interior" in rows["03.3"].value
    assert all(r.reason for r in rows.values() if r.id != "03.4")


@pytest.mark.parametrize("ladder", [_ladder(op_slope=0.5), _ladder(rel_slope=-0.2), _ladder(ks_over=0.01),
                                    _ladder(created=1)])
def test_bulk_invariance_fails(ladder):
    assert _verdicts(ladder=ladder)["03.1"] == "does not hold"


def test_an_init_above_the_edge_is_not_an_outlier_of_training():
    """Seed 2 of the hand-built ladder starts with one eigenvalue above the edge and keeps it: not created."""
    lad = _ladder()
    assert lad["n_outliers"].max() == 1 and _verdicts(ladder=lad)["03.1"] == "holds"


def test_spike_test_against_the_random_subspace_null():
    d = 400
    # null case: ‖P_out β‖ at the typical value of a random k-dimensional subspace (√(k/d)) fails at every k
    for k in (1, 4, 15):
        assert _verdicts(final=_final(p_out=np.sqrt(k / d), spike_outliers=k))["03.2"] == "does not hold"
    assert _verdicts(final=_final(spike_outliers=0))["03.2"] == "does not hold"           # no outlier: p = 1
    # effect case: 15 outliers at ‖P_out β‖ = 0.45 pass (the old 10 x √(k/d) bar, 1.94, could not be met)
    assert _verdicts(final=_final(p_out=0.45, spike_outliers=15))["03.2"] == "holds"
    assert _verdicts(final=_final(p_out=0.45, spike_outliers=15))["03.5"] == "holds"
    assert _verdicts(final=_final(p_out=0.2, spike_outliers=15))["03.5"] == "does not hold"


def test_subspace_alignment_p_is_the_beta_tail():
    rng = np.random.default_rng(0)
    d, k = 60, 3
    beta = np.eye(d)[0]
    sims = [np.linalg.norm(np.linalg.qr(rng.normal(size=(d, k)))[0].T @ beta) for _ in range(4000)]
    for t in (0.2, 0.35, 0.5):
        assert spectra.subspace_alignment_p(t, k, d) == pytest.approx(np.mean(np.array(sims) >= t), abs=0.02)
    assert spectra.subspace_alignment_p(0.9, 0, d) == 1.0


def test_adam_claim_needs_heavy_tails_and_lower_error():
    assert _verdicts(final=_final(heavy=False))["03.3"] == "does not hold"
    assert _verdicts(final=_final(adam_err=0.09))["03.3"] == "does not hold"
    assert "at the grid's edge" in _rows(adam_lr=1e-4)["03.3"].value


def test_ordering_claim_untestable_without_heavy_tails_and_both_ways_with_them():
    r = _rows(final=_final(heavy=False))["03.4"]
    assert r.verdict == "untestable" and "no run is heavy-tailed" in r.note and "holds" in r.note
    r = _rows(final=_final(heavy=False, order=(0.1, 0.05, 0.1, 0.2)))["03.4"]
    assert r.verdict == "untestable" and "does not hold" in r.note
    assert _verdicts(final=_final(order=(0.1, 0.05, 0.1, 0.2)))["03.4"] == "does not hold"
    assert _verdicts(final=_final(order=(0.001, 0.05, 0.1, 0.01)))["03.4"] == "does not hold"


def test_label_of_a_run():
    f = pd.DataFrame({"W_heavy": [True, False, False, False, False], "n_created": [0, 3, 0, 3, 57],
                      "bulk_ks": [0.1, 0.01, 0.01, 0.05, 0.01], "bulk_ks_null": [0.02] * 5})
    assert S.label(f).tolist() == ["heavy-tailed", "spike", "invariant", "bulk moved", "bulk moved"]


def test_ladder_slopes_recover_power_laws():
    sl = S.ladder_slopes(_ladder(op_slope=0.3, rel_slope=-0.5)).set_index("regime")
    assert sl.loc["gd_small", "slope_dW_op_sqrt_h"] == pytest.approx(0.3, abs=1e-9)
    assert sl.loc["gd_small", "slope_dW_fro_rel"] == pytest.approx(-0.5, abs=1e-9)
    assert sl.loc["gd_small", "slope_dW_fro_sqrt_h"] == pytest.approx(0.0, abs=1e-9)


def test_ladder_sizes_and_bad_sizes():
    assert S.sizes(CFG) == {1: (100, 50, 75), 2: (200, 100, 150), 4: (400, 200, 300), 8: (800, 400, 600)}
    with pytest.raises(ValueError, match="multiples"):
        S.sizes(profiles.load("03", "default", n=801))


def test_gaussian_edge_matches_dense_draws_and_the_issue():
    """The bidiagonal model's quantiles equal dense Gaussian draws'; the 99% edges over the default ladder."""
    g = torch.Generator().manual_seed(1)
    tops = torch.linalg.eigvalsh(torch.einsum("bhd,bhe->bde", *(2 * [torch.randn(3000, 30, 20, generator=g,
                                                                                dtype=torch.float64)])) / 30)[:, -1]
    for q in (0.5, 0.9, 0.99):
        assert spectra.gaussian_top_quantile((30, 20), q, 3000, 0) == pytest.approx(float(tops.quantile(q)), rel=0.03)
    edges = [spectra.gaussian_top_quantile((h, d)) for _, d, h in S.sizes(CFG).values()]
    assert edges == pytest.approx([3.54, 3.45, 3.41, 3.35], abs=0.04)


def test_coupled_null_grows_with_the_perturbation():
    W0 = torch.randn(150, 100, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    small, big = (spectra.coupled_ks_null(W0, f, 5, 0) for f in (1.0, 60.0))
    assert small.max() <= 0.03 < big.min()


# --------------------------------------------------------------------------- closed forms
def test_one_step_moves_W_by_exactly_kappa_hd_quarter():
    d, h, n = 20, 30, 40
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = models.TwoLayer(d, h, "tanh", train_a=False)
        x, y = torch.randn(n, d), torch.randn(n)
    W0 = model.W.detach().clone()
    eta, _ = S.spike_lr(model, x, y, 3.0)
    with torch.no_grad():
        model.W -= eta * model.W.grad
    moved = float(torch.linalg.matrix_norm((model.W.detach() - W0).double(), 2))
    assert moved == pytest.approx(3.0 * (h * d) ** 0.25, rel=1e-5)


def test_ntk_edge_is_the_gd_stability_limit_of_the_linearized_model():
    """n / λmax(K): GD on the linearized model's MSE contracts below it and diverges above it."""
    rng = np.random.default_rng(0)
    J = rng.normal(size=(30, 50))                                   # (n, P) Jacobian of a linear model
    K = J @ J.T
    n = len(J)
    edge = n / np.linalg.eigvalsh(K)[-1]
    for mult, grows in ((0.95, False), (1.05, True)):
        r = rng.normal(size=n)                                      # residual f - y evolves r <- (I - 2 lr K / n) r
        for _ in range(400):
            r = r - 2 * mult * edge * K @ r / n
        assert (np.linalg.norm(r) > 1e3) == grows


def test_outlier_projection_on_a_planted_spike():
    rng = np.random.default_rng(2)
    h, d = 600, 300
    W = rng.normal(size=(h, d))
    u = rng.normal(size=h)
    u /= np.linalg.norm(u)
    beta = rng.normal(size=d)
    beta /= np.linalg.norm(beta)
    row = R.weight_row(W + 3 * (h * d) ** 0.25 * np.outer(u, beta), W, beta)
    assert row["n_outliers"] == row["n_created"] == 1 and row["p_out_beta"] > 0.9 and row["p_align"] < 1e-6
    null = R.weight_row(W, W, beta)
    assert null["n_created"] == 0 and null["p_out_beta"] == 0.0 and null["p_align"] == 1.0
    assert row["alignment"] == pytest.approx(spectra.top_alignment(W + 3 * (h * d) ** 0.25 * np.outer(u, beta), beta))
    assert row["dW_op"] == pytest.approx(3 * (h * d) ** 0.25) and row["W0_op"] == pytest.approx(np.linalg.norm(W, 2))
    assert row["dW_alignment"] == pytest.approx(1.0)                 # ΔW = θ u βᵀ: its top right singular vector is β


def test_power_iteration_matches_svd():
    M = torch.randn(60, 40, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    lam, _ = R._top_sv2(M, torch.ones(40, dtype=torch.float64), iters=500)
    assert lam == pytest.approx(float(torch.linalg.matrix_norm(M, 2)) ** 2, rel=1e-6)


def test_mlp_pntk_is_C_times_the_papers():
    """s03_mlp's pNTK (nnlens.ntk) = <Σ_c g_c, Σ_c g_c>: C times the pNTK of Σ_c f_c / √C (autodiff)."""
    torch.manual_seed(0)
    model = models.MLP(6, 3, width=8, depth=2)
    x = torch.randn(4, 6)
    ck, K = s03_mlp.kernels(model, x)
    m = model.double()
    rows = []
    for xi in x.double():
        m.zero_grad()
        (m(xi[None]).sum() / math.sqrt(3)).backward()
        rows.append(torch.cat([p.grad.flatten() for p in m.parameters()]))
    J = torch.stack(rows)
    assert np.allclose(K, 3 * (J @ J.T).numpy(), rtol=1e-8)
    assert ck.shape == (4, 4) and np.allclose(ck, ck.T)


# --------------------------------------------------------------------------- end to end, tiny
@pytest.mark.parametrize("activation", ["tanh", "gelu"])
def test_train_run_snapshots_through_train_fit(activation):
    cfg = profiles.load("03", "smoke", n=40, d=10, h=20, activation=activation)
    td = R.teacher(cfg.n, cfg.d, cfg, 0)
    run = R.train_run(td, cfg.d, cfg.h, R.Regime("gd_small", "sgd", 1.0, 0, 6), 0, activation, snapshots=3,
                      fine_ntk_epochs=2)
    assert run.snap_epochs == [0, 2, 4, 6] and len(run.W) == 4
    assert list(run.curves["epoch"]) == list(range(7)) and run.curves["ntk_top"].notna().sum() == 2
    assert run.curves["train_loss"].iloc[-1] < run.curves["train_loss"].iloc[0]
    with torch.random.fork_rng():
        torch.manual_seed(0)
        W0 = models.TwoLayer(cfg.d, cfg.h, activation, train_a=False).W.detach().double().numpy()
    assert np.array_equal(run.W[0], W0)                              # the seed's init, the same for every regime
    row, dyn, eig = S.measure(run, td, cfg, None)
    assert row["ntk_distance"] > 0 and np.isfinite(row["refit_error"])
    assert dyn["epoch"].tolist() == [0, 2, 4, 6] and dyn["ntk_distance"].iloc[0] == pytest.approx(0, abs=1e-12)
    assert eig["W"].shape == (cfg.d,) and eig["ntk"].shape == (cfg.n,)


def test_mean_field_readout_is_an_option_with_small_f0():
    cfg = profiles.load("03", "smoke", n=40, d=10, h=400, readout="mean_field")
    m = S.init(cfg.d, cfg.h, cfg, 0)
    assert float(m.a.detach().std()) == pytest.approx(1 / math.sqrt(cfg.h), rel=0.15)
    td = R.teacher(cfg.n, cfg.d, cfg, 0)
    run = R.train_run(td, cfg.d, cfg.h, R.Regime("one_step", "sgd", 1.0, 0, 1), 0, "tanh", readout="mean_field")
    assert run.a.std() == pytest.approx(1 / math.sqrt(cfg.h), rel=0.15)
    assert abs(run.curves["train_loss"].iloc[0] - float((td["y"] ** 2).mean())) < 0.05     # f0 ~ 0
    with pytest.raises(ValueError, match="mean_field"):
        R.spec(3, 4, "tanh", "xavier")


def test_matched_epochs_is_the_first_epoch_at_the_target_loss_or_the_cap():
    """The search pass stops at the first epoch whose training loss is <= target (checked against a
    full run that records every epoch's loss), and says the cap when the target is out of reach."""
    import dataclasses

    from nnlens import data as data_mod
    from nnlens import models, train
    from nnlens.studies import profiles

    cfg = dataclasses.replace(profiles.load("03", "smoke"), mlp_epochs=2, mlp_n_train=120, mlp_width=16)
    ds = data_mod.load(cfg.mlp_dataset, cfg.mlp_n_train, 0, seed=cfg.seed)
    flat = data_mod.Dataset(ds.name, ds.x_train.flatten(1), ds.y_train, ds.x_test.flatten(1), ds.y_test, ds.n_classes)
    spec = models.spec_for("mlp", flat, width=cfg.mlp_width, depth=1)
    reg = R.Regime("gd_small", "sgd", 0.5, 0)
    cap = s03_mlp.MATCH_EPOCHS_MAX * cfg.mlp_epochs
    losses = {}
    tcfg = train.TrainConfig(optimizer="sgd", lr=0.5, epochs=cap, batch_size=0, seed=cfg.seed, schedule="constant",
                             loss="mse")
    train.fit(spec, flat, tcfg, cache=False, progress=False,
              on_epoch=lambda e, m: losses.__setitem__(e, train.evaluate(m, flat.x_train, flat.y_train, "mse")[0]))
    target = losses[30]
    first = min(e for e, v in losses.items() if v <= target)
    assert 0 < first <= 30
    assert s03_mlp.matched_epochs(spec, flat, reg, cfg, target) == first
    assert s03_mlp.matched_epochs(spec, flat, reg, cfg, -1.0) == cap


def test_kappa_sweep_scales_one_step_linearly_in_kappa():
    cfg = profiles.load("03", "smoke", n=60, d=20, h=30, seeds=1, kappa_sweep=(1.0, 3.0))
    sw = S.kappa_sweep(cfg)
    assert sw["kappa"].tolist() == S.kappas(cfg) == [1.0, 3.0, round((20 * 30) ** 0.25, 2)]
    rel = sw.set_index("kappa")["dW_fro_rel"]
    assert rel[3.0] == pytest.approx(3 * rel[1.0], rel=1e-6)
    assert (sw["n_created"] <= sw["n_outliers"]).all() and sw["p_align"].between(0, 1).all()


def test_mlp_runs_on_mnist_at_default_and_on_built_in_digits_at_smoke():
    """The default's real-data MLP reads MNIST subsets (W of mlp_width x 784); smoke needs no data files."""
    smoke = profiles.load("03", "smoke")
    assert (CFG.mlp_dataset, CFG.mlp_n_train, CFG.mlp_n_test) == ("mnist", 1024, 2000)
    assert smoke.mlp_dataset == "digits" and smoke.mlp_n_test == 0


def test_esd_figure_names_the_gram_weight_esd_takes():
    """weight_esd takes WᵀW / h for d <= h and W Wᵀ / d for d > h (MNIST's first layer: 256 x 784)."""
    from nnlens import spectra

    rng = np.random.default_rng(0)
    wide, tall = rng.normal(size=(4, 9)), rng.normal(size=(9, 4))
    assert np.allclose(spectra.weight_esd(wide)[0], np.linalg.eigvalsh(wide @ wide.T / 9))
    assert np.allclose(spectra.weight_esd(tall)[0], np.linalg.eigvalsh(tall.T @ tall / 9))
