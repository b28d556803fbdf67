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
    # faithfulness ranks through margins: the float64-saturated point (row 3) is counted, not dropped
    sur_logits = np.array([[0.0, 20.0], [0.0, 10.0], [0.0, 2.0], [0.0, 3.0]])
    row = surrogates.faithfulness(logits, sur_logits, y.numpy())
    assert row["n_saturated"] == 1
    from scipy.stats import kendalltau
    assert row["tau"] == pytest.approx(kendalltau([25.0, 20.0, 1.0, 60.0], [20.0, 10.0, 2.0, 3.0]).statistic)


def test_true_class_margin_orders_like_the_probability_without_saturating():
    rng = np.random.default_rng(0)
    z, y = rng.normal(size=(50, 4)) * 3, rng.integers(0, 4, 50)
    m = surrogates.true_class_margin(z, y)
    p = surrogates.true_class_prob(z, y)
    np.testing.assert_allclose(1 / (1 + np.exp(-m)), p, rtol=1e-12)               # p_y = σ(margin)
    big = surrogates.true_class_margin(np.array([[0.0, 50.0], [0.0, 60.0]]), np.array([1, 1]))
    np.testing.assert_allclose(big, [50.0, 60.0])                                    # both p == 1.0, still ordered


def test_class1_tau_is_the_papers_binary_quantity():
    from scipy.stats import kendalltau
    rng = np.random.default_rng(1)
    net, sur = rng.normal(size=(30, 2)), rng.normal(size=(30, 2))
    p1 = 1 / (1 + np.exp(-(net[:, 1] - net[:, 0])))
    assert surrogates.class1_tau(net, sur) == pytest.approx(kendalltau(p1, sur[:, 1] - sur[:, 0]).statistic)


def test_kendall_tau_weighted_equals_scipy_on_resampled_data():
    from scipy.stats import kendalltau
    rng = np.random.default_rng(2)
    a = rng.normal(size=25)
    b = a + rng.normal(size=25)
    b[:4] = b[0]                                                                     # ties in b
    w = surrogates.bootstrap_weights(25, 6, seed=3)
    got = surrogates.kendall_tau_weighted(a, b, w)
    for j in range(6):
        idx = np.repeat(np.arange(25), w[j].astype(int))
        assert got[j] == pytest.approx(kendalltau(a[idx], b[idx]).statistic, abs=1e-12)
    assert surrogates.kendall_tau_weighted(a, b, np.ones(25))[0] == pytest.approx(kendalltau(a, b).statistic)


def test_select_c_and_recipes():
    x, y = _blobs(150, seed=3)
    K = x @ x.T
    C, table = surrogates.select_c(K, y, Cs=(0.01, 1.0), folds=3)
    assert C in (0.01, 1.0) and list(table["C"]) == [0.01, 1.0]
    assert table.loc[table["C"] == C, "val_log_loss"].item() == table["val_log_loss"].min()
    cv = surrogates.fit_recipe("cv", K, y, Cs=(0.01, 1.0))
    assert isinstance(cv, surrogates.KGLM) and cv.C == C
    sgd = surrogates.fit_recipe("sgd_1e-4", K, y)
    assert isinstance(sgd, surrogates.SGDKGLM) and sgd.alpha == 1e-4 and sgd.W.shape == (3, 150)
    np.testing.assert_allclose(sgd.logits(K), sgd.model_.decision_function(K), atol=1e-8)
    assert (sgd.predict(K) == y).mean() > 0.9
    Ktr, Kte = surrogates.paper_scale(3 * K, 3 * K[:5])
    assert Ktr.std() == pytest.approx(1.0) and np.allclose(Kte, K[:5] / K.std())
    with pytest.raises(ValueError, match="recipe"):
        surrogates.fit_recipe("lbfgs", K, y)


def test_faithfulness_tad():
    y = np.array([0, 1, 1, 0])
    net_logits = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.5, 0.0]])   # acc 0.75
    sur = np.log([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.7, 0.3]])            # surrogate logits, acc 1.0
    row = surrogates.faithfulness(net_logits, sur, y)
    assert row["acc_net"] == 0.75 and row["acc_sur"] == 1.0
    assert row["tad"] == pytest.approx(0.25)
    assert -1 <= row["tau"] <= 1 and row["n_saturated"] == 0
