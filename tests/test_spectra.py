"""Tests of nnlens.spectra: random-matrix baselines, tail exponents (against the ``powerlaw``
package), spikes, kernel distance, and the closed-form NTK of every activation against autodiff."""
import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from nnlens import models, spectra


@pytest.mark.parametrize("ratio,sigma2", [(0.25, 1.0), (0.5, 2.0), (1.0, 1.0)])
def test_mp_density_integrates_to_one(ratio, sigma2):
    lo, hi = spectra.mp_edges(ratio, sigma2)
    mass, _ = integrate.quad(lambda x: spectra.mp_density(np.array([x]), ratio, sigma2)[0], lo, hi, limit=200)
    assert mass == pytest.approx(1.0, abs=1e-3)
    assert spectra.mp_density(np.array([lo - 0.1, hi + 0.1]), ratio, sigma2).tolist() == [0.0, 0.0]


def _ks_to_mp(eigs, ratio, sigma2):
    """Kolmogorov-Smirnov distance between an ESD and the MP law (its CDF by the trapezoid rule)."""
    lo, hi = spectra.mp_edges(ratio, sigma2)
    t = np.linspace(lo, hi, 4001)
    cdf = integrate.cumulative_trapezoid(spectra.mp_density(t, ratio, sigma2), t, initial=0.0)
    return stats.kstest(eigs, lambda x: np.interp(x, t, cdf / cdf[-1], left=0.0, right=1.0)).statistic


def test_mp_fits_gaussian_esd():
    rng = np.random.default_rng(0)
    W = rng.normal(0, math.sqrt(2.0), size=(600, 300))       # (h, d), sigma2 = 2
    eigs, ratio = spectra.weight_esd(W)
    assert ratio == 0.5 and eigs.shape == (300,)
    assert _ks_to_mp(eigs, ratio, 2.0) < 0.05
    assert eigs[-1] == pytest.approx(spectra.mp_edges(ratio, 2.0)[1], rel=0.05)
    assert _ks_to_mp(eigs, ratio, 1.0) > 0.3            # the wrong variance is rejected
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
    assert fit.llr > 0 and fit.p < 0.1                          # a power law beats an exponential tail


def test_tail_fit_matches_slow_reference_and_powerlaw_package():
    """The vectorized KS-xmin search against a loop with scipy's kstest (slow, obviously right), and
    α and the likelihood ratio at the chosen xmin against the ``powerlaw`` package. (The package's own
    xmin search uses a one-sided empirical CDF, i/n only, so its KS and chosen xmin differ slightly.)"""
    from scipy import stats

    rng = np.random.default_rng(4)
    x = np.concatenate([rng.uniform(0.1, 1.0, 300), (rng.pareto(2.0, 200) + 1.0)])
    fit = spectra.tail_fit(x, xmin_floor=0.5, min_tail=20)
    xs = np.sort(x)
    best = (np.inf, None, None)
    for xmin in xs[(xs >= 0.5)][:-19]:
        tail = xs[xs >= xmin]
        a = 1 + len(tail) / np.sum(np.log(tail / xmin))
        D = stats.kstest(tail, lambda t, xmin=xmin, a=a: 1 - (t / xmin) ** (1 - a)).statistic
        best = min(best, (D, xmin, a), key=lambda r: r[0])
    assert fit.ks == pytest.approx(best[0], rel=1e-9)
    assert fit.xmin == best[1] and fit.alpha == pytest.approx(best[2], rel=1e-12)
    powerlaw = pytest.importorskip("powerlaw")
    import warnings
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = powerlaw.Fit(x, discrete=False, xmin=fit.xmin, verbose=False,
                           parameter_ranges={"alpha": [1.0, 50.0]})     # its default range clips α at 3
        R, p = ref.distribution_compare("power_law", "exponential")
    assert fit.alpha == pytest.approx(ref.power_law.alpha, rel=1e-3)   # the package optimizes numerically here
    assert fit.llr == pytest.approx(R, rel=1e-2) and fit.p == pytest.approx(p, rel=5e-2, abs=1e-12)


def test_tail_fit_rejects_too_short_tails_and_null_is_seeded():
    rng = np.random.default_rng(5)
    fit = spectra.tail_fit(rng.uniform(1, 2, 50), xmin_floor=1.9, min_tail=20)
    assert math.isnan(fit.alpha) and fit.n_tail < 20
    null = spectra.gaussian_null_alphas((120, 60), draws=5, seed=0)
    assert null.shape == (5,) and np.all(np.isfinite(null) & (null > 1))
    assert np.array_equal(null, spectra.gaussian_null_alphas((120, 60), draws=5, seed=0))   # seeded


def test_planted_spike_is_found_with_its_direction():
    rng = np.random.default_rng(2)
    h, d = 600, 300
    W = rng.normal(size=(h, d))
    u = rng.normal(size=h)
    u /= np.linalg.norm(u)
    beta = rng.normal(size=d)
    beta /= np.linalg.norm(beta)
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


@pytest.mark.parametrize("activation", sorted(spectra.ACTIVATIONS))
@pytest.mark.parametrize("train_a", [True, False])
def test_twolayer_ntk_matches_autodiff(train_a, activation):
    torch.manual_seed(0)
    d, h, n = 7, 11, 5
    model = models.TwoLayer(d, h, activation, train_a=train_a).double()
    x = torch.randn(n, d, dtype=torch.float64)
    params = {k: v for k, v in model.named_parameters() if v.requires_grad}
    from torch.func import functional_call, jacrev

    J = jacrev(lambda p: functional_call(model, p, (x,)))(params)          # {name: (n, *shape)}
    J = torch.cat([v.reshape(n, -1) for v in J.values()], 1)               # (n, P)
    K = spectra.twolayer_ntk(model.W.detach(), model.a.detach(), x, activation, train_a)
    assert np.allclose(K, (J @ J.T).detach().numpy(), rtol=1e-10, atol=1e-12)
    F = model.features(x)
    assert np.allclose(spectra.twolayer_ck(model.W.detach(), x, activation), (F @ F.T / h).detach().numpy())


def test_unknown_activation_lists_valid_ones():
    with pytest.raises(ValueError, match="gelu"):
        models.TwoLayer(3, 4, "swish")
