"""Neural-collapse metrics against slow, obviously right float64 references."""
import numpy as np
import pytest
import torch

from nnlens import collapse


def nc1_reference(h, y):
    """Papyan et al. 2020 literally: D x D covariances and np.linalg.pinv."""
    h = np.asarray(h, dtype=np.float64)
    classes = np.unique(y)
    mu_g = h.mean(0)
    means = np.stack([h[y == c].mean(0) for c in classes])
    m = means - mu_g
    sigma_b = m.T @ m / len(classes)                                  # (D, D)
    dev = h - means[np.searchsorted(classes, y)]
    sigma_w = dev.T @ dev / len(h)                                    # (D, D)
    return np.trace(sigma_w @ np.linalg.pinv(sigma_b, rcond=1e-10, hermitian=True)) / len(classes)


def blobs(n, d, c, spread, seed=0, balanced=True):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % c if balanced else rng.integers(0, c, n)
    centres = 3 * rng.standard_normal((c, d))
    return centres[y] + spread * rng.standard_normal((n, d)), y


def simplex_etf(c, d, seed=0):
    """(C, D) rows forming a simplex equiangular tight frame, randomly rotated into R^D."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((d, c)))                  # (D, C) orthonormal
    return (np.eye(c) - 1.0 / c) @ q.T * np.sqrt(c / (c - 1))        # (C, D), unit-norm rows


@pytest.mark.parametrize("n,d,c,balanced", [(60, 200, 4, True), (300, 20, 5, True), (157, 40, 6, False)])
def test_nc1_matches_dense_reference(n, d, c, balanced):
    h, y = blobs(n, d, c, spread=1.0, balanced=balanced)
    ref = nc1_reference(h, y)
    assert collapse.nc1(h, y) == pytest.approx(ref, rel=1e-8)
    assert collapse.nc1(torch.from_numpy(h), torch.from_numpy(y)) == pytest.approx(ref, rel=1e-8)


def test_nc1_vanishes_for_collapsed_data_and_is_scale_invariant():
    h, y = blobs(200, 30, 5, spread=1.0)
    base = collapse.nc1(h, y)
    assert collapse.nc1(7.5 * h + 3.0, y) == pytest.approx(base, rel=1e-10)
    tight, _ = blobs(200, 30, 5, spread=1e-4)
    assert collapse.nc1(tight, y) < 1e-6
    exact = simplex_etf(5, 30)[y]
    assert collapse.nc1(exact, y) < 1e-20
    assert base > collapse.nc1(blobs(200, 30, 5, spread=0.1)[0], y)  # less spread, smaller NC1


def test_nc2_nc3_nc4_on_planted_simplex_etf():
    c, d = 6, 40
    rng = np.random.default_rng(1)
    etf = simplex_etf(c, d)                                           # (C, D)
    y = np.repeat(np.arange(c), 30)
    h = 2.0 * etf[y] + 5.0 + 1e-3 * rng.standard_normal((len(y), d))  # shifted, slightly noisy
    out = collapse.nc2(h, y)
    assert out["equinorm"] < 1e-3 and out["equiangular_std"] < 1e-3 and out["equiangular_etf"] < 1e-3
    assert collapse.nc3(0.3 * etf, h, y) < 1e-3                      # classifier ∝ class means
    assert collapse.nc3(simplex_etf(c, d, seed=5), h, y) > 0.5        # unrelated frame
    means = collapse.class_means(h, y)
    assert collapse.nc4(h, y, means) == 0.0
    wrong = y.copy()
    wrong[:45] = (wrong[:45] + 1) % c
    assert collapse.nc4(h, wrong, means) == pytest.approx(45 / len(y))


def test_nc2_detects_unequal_norms():
    c, d = 4, 10
    etf = simplex_etf(c, d)
    y = np.repeat(np.arange(c), 5)
    h = (etf * np.array([1.0, 1.0, 1.0, 3.0])[:, None])[y]
    assert collapse.nc2(h, y)["equinorm"] > 0.1


def test_layer_table_and_onset():
    h_tr, y_tr = blobs(100, 8, 3, spread=2.0)
    h_tr2, _ = blobs(100, 8, 3, spread=0.2)
    h_te, y_te = blobs(60, 8, 3, spread=0.2, seed=0)
    tab = collapse.layer_table({"a": h_tr, "b": h_tr2}, y_tr, {"a": h_te, "b": h_te}, y_te, pred_train=y_tr)
    assert list(tab["layer"]) == ["a", "b"] and tab["nc1"].iloc[0] > tab["nc1"].iloc[1]
    assert {"nc1", "equinorm", "nc4_test", "nc4_train"} <= set(tab.columns)
    assert collapse.onset([3, 0.5, 2, 0.4, 0.1], 1.0) == 3
    assert collapse.onset([0.3, 0.2], 1.0) == 0
    assert collapse.onset([0.3, 2.0], 1.0) is None


def test_bad_shapes_fail_clearly():
    with pytest.raises(ValueError, match="rows"):
        collapse.nc1(np.zeros((5, 3)), np.zeros(4))
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        collapse.nc1(np.zeros(5), np.zeros(5))
    with pytest.raises(ValueError, match="same shape"):
        collapse.nc3(np.zeros((2, 3)), np.ones((4, 4)), np.array([0, 0, 1, 1]))
