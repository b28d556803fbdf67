"""LDS and TRAK against slow, obviously right references."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr

from nnlens import datamodels, models, surrogates


def test_subsets_are_seeded_halves():
    m = datamodels.subset_masks(40, 6, seed=3)
    assert m.shape == (6, 40) and (m.sum(1) == 20).all()
    assert np.array_equal(m, datamodels.subset_masks(40, 6, seed=3))
    assert not np.array_equal(m, datamodels.subset_masks(40, 6, seed=4))
    assert np.array_equal(m[2], datamodels.subset_mask(40, 2, seed=3))     # one job recomputes its own subset
    with pytest.raises(ValueError, match="fraction"):
        datamodels.subset_mask(10, 0, fraction=1.0)


def test_lds_matches_spearman_loop():
    rng = np.random.default_rng(0)
    scores, masks = rng.normal(size=(7, 30)), datamodels.subset_masks(30, 25, seed=1)
    actual = rng.normal(size=(25, 7))
    actual[:, 0] = actual[:5, 0].round(0).repeat(5)                          # ties are ranked as scipy ranks them
    got = datamodels.lds_per_point(scores, masks, actual)
    pred = masks.astype(float) @ scores.T
    ref = [spearmanr(pred[:, j], actual[:, j]).statistic for j in range(7)]
    np.testing.assert_allclose(got, ref, atol=1e-12)


def test_lds_is_one_for_the_true_linear_datamodel_and_low_for_noise():
    rng = np.random.default_rng(1)
    theta = rng.normal(size=(5, 50))                                          # the true datamodel
    masks = datamodels.subset_masks(50, 60, seed=0)
    actual = masks.astype(float) @ theta.T + 3.0                              # (M, N_test), an offset is ignored
    assert np.allclose(datamodels.lds_per_point(theta, masks, actual), 1.0)
    noise = datamodels.lds_per_point(rng.normal(size=(5, 50)), masks, actual)
    assert abs(noise.mean()) < 0.3
    mean, lo, hi = datamodels.bootstrap_mean_ci(np.r_[np.ones(10), np.zeros(10)], n_boot=500)
    assert mean == 0.5 and lo < 0.5 < hi
    d, dlo, dhi = datamodels.paired_lds(np.ones(8), np.zeros(8))
    assert d == dlo == dhi == 1.0


def _mlp(seed):
    torch.manual_seed(seed)
    return models.MLP(4, 3, width=5, depth=1).double().eval()


def test_trak_matches_per_example_loop_float64():
    xtr, ytr = torch.randn(60, 4, dtype=torch.float64), torch.randint(0, 3, (60,))   # N > P = 43: Φ full rank
    xte, yte = torch.randn(5, 4, dtype=torch.float64), torch.randint(0, 3, (5,))
    ens = [_mlp(0), _mlp(1)]

    def grads(m, x, y):                                                        # (N, P), one autograd call each
        rows = []
        for xi, yi in zip(x, y):
            z = m(xi[None])[0]
            f = z[yi] - torch.logsumexp(torch.cat([z[:yi], z[yi + 1:]]), 0)
            rows.append(torch.cat([g.flatten() for g in torch.autograd.grad(f, list(m.parameters()))]))
        return torch.stack(rows)

    for proj in (6, 20):                       # K < rank(Φ): (ΦᵀΦ) invertible (dead ReLUs make full Φ singular)
        P, Q = 0, 0
        for m in ens:
            G, g = grads(m, xtr, ytr), grads(m, xte, yte)
            if proj is not None:
                R = datamodels.rademacher(G.shape[1], proj, seed=7)
                G, g = G @ R, g @ R
            P = P + (g @ np.linalg.inv(G.T @ G) @ G.T).numpy()
            Q = Q + 1 - F.softmax(m(xtr), 1)[torch.arange(60), ytr].detach().numpy()
        ref = (P / 2) * (Q / 2)[None, :]
        got = datamodels.trak_scores(ens, xtr, ytr, xte, yte, proj_dim=proj, seed=7)
        np.testing.assert_allclose(got, ref, rtol=1e-7, atol=1e-10)


def test_trak_margin_is_the_true_class_margin():
    out = torch.tensor([1.0, 3.0, -2.0], dtype=torch.float64)
    ref = surrogates.true_class_margin(out[None].numpy(), np.array([1]))[0]
    assert float(datamodels._margin(out, torch.tensor(1))) == pytest.approx(ref)
    R = datamodels.rademacher(100, 8, seed=0)
    assert set(np.unique((R * 8 ** 0.5).numpy())) == {-1.0, 1.0}
