"""Tests of nnlens.spectra (and the snapshot loop of nnlens.dynamics): random-matrix
baselines, tail exponents, spikes, kernel distance, and the closed-form NTK against autodiff."""
import math

import numpy as np
import pytest
import torch
from scipy import integrate

from nnlens import dynamics, models, profiles, spectra


@pytest.mark.parametrize("ratio,sigma2", [(0.25, 1.0), (0.5, 2.0), (1.0, 1.0)])
def test_mp_density_integrates_to_one(ratio, sigma2):
    lo, hi = spectra.mp_edges(ratio, sigma2)
    mass, _ = integrate.quad(lambda x: spectra.mp_density(np.array([x]), ratio, sigma2)[0], lo, hi, limit=200)
    assert mass == pytest.approx(1.0, abs=1e-3)
    assert spectra.mp_density(np.array([lo - 0.1, hi + 0.1]), ratio, sigma2).tolist() == [0.0, 0.0]


def test_mp_fits_gaussian_esd():
    rng = np.random.default_rng(0)
    W = rng.normal(0, math.sqrt(2.0), size=(600, 300))       # (h, d), sigma2 = 2
    eigs, ratio = spectra.weight_esd(W)
    assert ratio == 0.5 and eigs.shape == (300,)
    assert spectra.ks_to_mp(eigs, ratio, 2.0) < 0.05
    assert eigs[-1] == pytest.approx(spectra.mp_edges(ratio, 2.0)[1], rel=0.05)
    assert spectra.ks_to_mp(eigs, ratio, 1.0) > 0.3            # the wrong variance is rejected
    # wide matrices use W Wᵀ / d with the same ratio
    eigs_t, ratio_t = spectra.weight_esd(W.T)
    assert ratio_t == 0.5 and np.allclose(eigs_t, eigs)


def test_mp_rejects_bad_ratio():
    with pytest.raises(ValueError, match="ratio"):
        spectra.mp_edges(2.0)


@pytest.mark.parametrize("alpha", [2.5, 3.5])
def test_powerlaw_recovers_pareto_exponent(alpha):
    rng = np.random.default_rng(1)
    x = (rng.pareto(alpha - 1, size=800) + 1.0) * 0.5        # density ∝ x^-alpha for x >= 0.5
    fit = spectra.powerlaw_fit(x)
    assert fit.alpha == pytest.approx(alpha, abs=0.2)
    assert fit.xmin >= 0.5 and fit.n_tail > 100


def test_planted_spike_is_found_with_its_direction():
    rng = np.random.default_rng(2)
    h, d = 600, 300
    W = rng.normal(size=(h, d))
    u = rng.normal(size=h); u /= np.linalg.norm(u)
    beta = rng.normal(size=d); beta /= np.linalg.norm(beta)
    theta = 3 * (h * d) ** 0.25                               # BBP threshold of the singular value: (hd)^(1/4)
    eigs, ratio = spectra.weight_esd(W + theta * np.outer(u, beta))
    edge = spectra.mp_edges(ratio)[1]
    out = spectra.outliers(eigs, edge, margin=0.05)
    assert len(out) == 1 and out[0] == eigs[-1]
    assert spectra.top_alignment(W + theta * np.outer(u, beta), beta) > 0.9
    assert spectra.top_alignment(W, beta) < 0.3               # no spike: chance level ~ 1/√d
    assert spectra.outliers(spectra.weight_esd(W)[0], edge, margin=0.05).size == 0


def test_kernel_distance_zero_and_scale_invariant():
    rng = np.random.default_rng(3)
    A = rng.normal(size=(20, 5))
    K0, K1 = A @ A.T, (A + rng.normal(size=A.shape)) @ (A + rng.normal(size=A.shape)).T
    assert spectra.kernel_distance(K0, K0) == pytest.approx(0.0, abs=1e-12)
    assert spectra.kernel_distance(K0, 7.0 * K0) == pytest.approx(0.0, abs=1e-12)
    d = spectra.kernel_distance(K0, K1)
    assert 0 < d <= 2 and spectra.kernel_distance(3 * K0, 0.1 * K1) == pytest.approx(d)
    with pytest.raises(ValueError, match="shape"):
        spectra.kernel_distance(K0, K0[:5, :5])


def test_norms_and_bulk_ks():
    W0 = np.eye(3)
    n = spectra.norms(2 * W0, W0)
    assert n["dW_op"] == pytest.approx(1.0) and n["dW_fro"] == pytest.approx(math.sqrt(3))
    assert spectra.bulk_ks([1, 2, 3], [1, 2, 3, 100], edge=10) == 0.0


@pytest.mark.parametrize("train_a", [True, False])
def test_twolayer_ntk_matches_autodiff(train_a):
    torch.manual_seed(0)
    d, h, n = 7, 11, 5
    model = models.TwoLayer(d, h, "tanh", train_a=train_a).double()
    x = torch.randn(n, d, dtype=torch.float64)
    params = {k: v for k, v in model.named_parameters() if v.requires_grad}
    from torch.func import functional_call, jacrev

    J = jacrev(lambda p: functional_call(model, p, (x,)))(params)          # {name: (n, *shape)}
    J = torch.cat([v.reshape(n, -1) for v in J.values()], 1)               # (n, P)
    K = spectra.twolayer_ntk(model.W.detach(), model.a.detach(), x, "tanh", train_a)
    assert np.allclose(K, (J @ J.T).detach().numpy(), rtol=1e-10, atol=1e-12)
    F = model.features(x)
    assert np.allclose(spectra.twolayer_ck(model.W.detach(), x), (F @ F.T / h).detach().numpy())


def test_mlp_kernels_match_autodiff():
    torch.manual_seed(0)
    model = models.MLP(6, 3, width=8, depth=2)
    x = torch.randn(4, 6)
    params = dict(model.named_parameters())
    ck, ntk = dynamics.mlp_kernels(model, params, x)
    rows = []
    for xi in x.double():
        model.double().zero_grad()
        (model(xi[None]).sum() / math.sqrt(3)).backward()
        rows.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    model.float()
    J = torch.stack(rows)
    assert np.allclose(ntk, (J @ J.T).numpy(), rtol=1e-8)
    assert ck.shape == (4, 4) and np.allclose(ck, ck.T)


def test_train_snapshots_and_smoke_regimes():
    cfg = profiles.load("03", "smoke", n=60, d=30, h=45, epochs=6, snapshots=3)
    df, runs, td = dynamics.run_twolayer(cfg)
    assert set(df["regime"]) == set(dynamics.REGIMES)
    assert sorted(df["epoch"].unique()) == [0, 2, 4, 6]
    first = df[df.epoch == 0]
    assert np.allclose(first["dW_op"], 0) and np.allclose(first["ntk_distance"], 0, atol=1e-12)
    assert (df.groupby("regime")["train_loss"].last() < df.groupby("regime")["train_loss"].first()).all()
