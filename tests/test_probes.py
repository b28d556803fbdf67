"""PCA probes on synthetic Gaussian class clusters."""
import numpy as np
import pandas as pd
import pytest

from nnlens import probes


def clusters(n, d, c, signal_dims=5, spread=1.0, seed=0):
    """Classes separated in a few directions, plus isotropic noise in all d."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % c
    centres = np.zeros((c, d))
    centres[:, :signal_dims] = 4 * rng.standard_normal((c, signal_dims))
    x = centres[y] + spread * rng.standard_normal((n, d))
    return x.astype(np.float32), y


def test_k_grid():
    assert probes.k_grid(256, 1000) == [1, 2, 4, 8, 16, 32, 64, 100, 128, 256]
    assert probes.k_grid(256, 50) == [1, 2, 4, 8, 16, 32, 50]
    assert probes.k_grid(32, 1000) == [1, 2, 4, 8, 16, 32]
    assert probes.k_grid(1, 10) == [1]
    with pytest.raises(ValueError):
        probes.k_grid(0, 10)


def test_probes_reach_high_accuracy_and_variance_is_monotone():
    x, y = clusters(500, 40, 4)
    xtr, ytr, xte, yte = x[:300], y[:300], x[300:], y[300:]
    df = probes.pca_probes(xtr, ytr, xte, yte, k_max=64, knn_k=5, seed=0)
    assert set(df["probe"]) == {"knn", "ncc", "svm"}
    grid = sorted(df.loc[df["k"] < 40, "k"].unique())
    assert grid == [1, 2, 4, 8, 16, 32]
    for p, part in df.groupby("probe"):
        ev = part.sort_values("k")["explained_variance"].to_numpy()
        assert np.all(np.diff(ev) >= -1e-6) and ev[-1] == pytest.approx(1.0, abs=1e-6)
        top = part[part["k"] == part["k"].max()]["accuracy"].item()
        assert top > 0.9, (p, top)
    assert df[(df["k"] == 8)]["accuracy"].min() > 0.9              # the signal lives in the top PCs
    assert df[df["k"] == 40]["explained_variance"].eq(1.0).all()   # the top k = rank = D: all PCs
    small = probes.pca_probes(xtr, ytr, xte, yte, k_max=8, knn_k=5)
    assert sorted(small["k"].unique()) == [1, 2, 4, 8, 40]            # "all PCs" rows at k = D


def test_grid_is_capped_by_rank():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((30, 100)).astype(np.float32), np.arange(30) % 3
    df = probes.pca_probes(x[:20], y[:20], x[20:], y[20:], k_max=256, knn_k=3, include_all=False)
    assert sorted(df["k"].unique()) == [1, 2, 4, 8, 16, 19]
    assert df["explained_variance"].max() == pytest.approx(1.0, abs=1e-5)


def test_all_pcs_agreement_and_onset_over_layers():
    rng = np.random.default_rng(0)
    y = np.arange(400) % 4
    centres = 3 * rng.standard_normal((4, 10))
    noisy = centres[y] + 3.0 * rng.standard_normal((400, 10))      # surrogates disagree more here
    tight = centres[y] + 0.05 * rng.standard_normal((400, 10))     # collapsed: all agree at 1.0
    tr, te = slice(0, 300), slice(300, 400)
    df = pd.concat([probes.pca_probes(x[tr], y[tr], x[te], y[te], k_max=16, knn_k=5).assign(layer=name, depth=d)
                    for d, (name, x) in enumerate({"a": noisy, "b": tight}.items())], ignore_index=True)
    wide = probes.all_pcs(df)
    assert list(wide.index) == ["a", "b"] and wide.loc["b"].min() == 1.0
    assert probes.agreement(df).loc["b"] == 0.0
    assert probes.collapse_onset(df, tol=0.0) == "b"
    assert probes.collapse_onset(df, tol=1.0) == "a"


def test_unknown_probe_fails():
    x, y = np.random.default_rng(0).standard_normal((20, 4)), np.arange(20) % 2
    with pytest.raises(ValueError, match="valid probes"):
        probes.pca_probes(x, y, x, y, probes=("tree",))
