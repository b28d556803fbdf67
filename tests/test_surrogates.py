"""Kernel surrogates: kGLM, kernel SVM, faithfulness metrics."""
import numpy as np
import pytest
import torch

from nnlens import surrogates


def _blobs(n=200, d=5, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centers = 4 * np.eye(3, d)
    return centers[y] + rng.normal(size=(n, d)), y


def test_kglm_linear_kernel_separable():
    x, y = _blobs(300)
    xtr, ytr, xte, yte = x[:200], y[:200], x[200:], y[200:]
    kglm = surrogates.KGLM(C=1.0).fit(xtr @ xtr.T, ytr)
    assert kglm.W.shape == (3, 200) and kglm.b.shape == (3,)
    K_te = xte @ xtr.T                                               # (N_test, N_train)
    assert (kglm.predict(K_te) == yte).mean() > 0.95
    p = kglm.predict_proba(K_te)
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-12)
    np.testing.assert_allclose(p, kglm.model_.predict_proba(K_te), atol=1e-8)


def test_kglm_binary_coefficients_match_sklearn():
    x, y = _blobs(200)
    y = (y > 0).astype(int)
    kglm = surrogates.KGLM().fit(x @ x.T, y)
    assert kglm.W.shape == (2, 200)
    np.testing.assert_allclose(kglm.predict_proba(x @ x.T), kglm.model_.predict_proba(x @ x.T), atol=1e-8)


def test_kernel_svm_precomputed():
    x, y = _blobs(300, seed=1)
    pred = surrogates.kernel_svm(x[:200] @ x[:200].T, y[:200], x[200:] @ x[:200].T)
    assert (pred == y[200:]).mean() > 0.95


def test_normalize_is_cosine():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(6, 4)), rng.normal(size=(3, 4))
    K = surrogates.normalize(a @ b.T, (a * a).sum(1), (b * b).sum(1))
    cos = (a / np.linalg.norm(a, axis=1, keepdims=True)) @ (b / np.linalg.norm(b, axis=1, keepdims=True)).T
    np.testing.assert_allclose(K, cos, atol=1e-12)
    with pytest.raises(ValueError, match="does not match"):
        surrogates.normalize(a @ b.T, np.ones(6), np.ones(4))


def test_kendall_tau_drops_saturated():
    p_net = np.array([0.1, 0.2, 1.0, 0.4, 0.5, 0.0, 0.7])
    p_sur = np.array([0.15, 0.25, 0.9, 0.35, 1.0, 0.3, 0.8])
    tau, dropped = surrogates.kendall_tau(p_net, p_sur)
    assert dropped == 3                                              # 1.0 and 0.0 in net, 1.0 in surrogate
    # remaining pairs: (0.1,.15) (0.2,.25) (0.4,.35) (0.7,.8): all concordant
    assert tau == pytest.approx(1.0)
    tau_all, d0 = surrogates.kendall_tau(p_net, p_sur, drop_saturated=False)
    assert d0 == 0 and tau_all < 1.0


def test_true_class_prob_saturates_in_float32():
    logits = torch.tensor([[0.0, 200.0], [0.0, 1.0]])
    p = surrogates.true_class_prob(logits, torch.tensor([1, 1]), dtype=torch.float32)
    assert p[0] == 1.0 and 0 < p[1] < 1


def test_true_class_prob_float64_from_float32_logits():
    # margins of 25 and 20 saturate a float32 softmax but not a float64 one (which saturates above ~37)
    logits = torch.tensor([[0.0, 25.0], [0.0, 20.0], [0.0, 1.0], [0.0, 60.0]], dtype=torch.float32)
    y = torch.tensor([1, 1, 1, 1])
    p32 = surrogates.true_class_prob(logits, y, dtype=torch.float32)
    p64 = surrogates.true_class_prob(logits, y)                      # default: float64
    assert p32[0] == 1.0 and p32[1] == 1.0
    assert 0 < p64[0] < 1 and 0 < p64[1] < 1
    np.testing.assert_allclose(p64[:3], [1 / (1 + np.exp(-25.0)), 1 / (1 + np.exp(-20.0)), 1 / (1 + np.exp(-1.0))],
                               rtol=1e-12)
    assert p64[3] == 1.0                                             # still exactly saturated in float64
    # faithfulness drops only the float64-saturated point (row 3), for network and surrogate alike
    sur_logits = np.array([[0.0, 20.0], [0.0, 10.0], [0.0, 2.0], [0.0, 3.0]])
    row = surrogates.faithfulness(logits, sur_logits, y.numpy())
    assert row["n_dropped"] == 1 and row["tau"] == pytest.approx(1.0)


def test_faithfulness_tad():
    y = np.array([0, 1, 1, 0])
    net_logits = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.5, 0.0]])   # acc 0.75
    sur = np.log([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.7, 0.3]])            # surrogate logits, acc 1.0
    row = surrogates.faithfulness(net_logits, sur, y)
    assert row["acc_net"] == 0.75 and row["acc_sur"] == 1.0
    assert row["tad"] == pytest.approx(0.25)
    assert -1 <= row["tau"] <= 1 and row["n_dropped"] == 0
