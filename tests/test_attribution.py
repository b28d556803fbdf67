"""Baseline kernels, kGLM attribution, poisoning helpers and detection metrics."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nnlens import attribution, data, models, surrogates


def _mlp(seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    return models.MLP(6, 3, width=8, depth=2).to(dtype).eval()


def _cos(a, b):
    a = a / a.norm(dim=1, keepdim=True)
    b = b / b.norm(dim=1, keepdim=True)
    return (a @ b.T).numpy()


def _layers(m, x):
    h0 = m.hidden[0](x)
    h1 = m.hidden[1](F.relu(h0))
    return h0, h1, m.head(F.relu(h1))


def test_em_matches_direct():
    m, x1, x2 = _mlp(), torch.randn(5, 6, dtype=torch.float64), torch.randn(4, 6, dtype=torch.float64)
    with torch.no_grad():
        a1, a2 = torch.cat(_layers(m, x1), 1), torch.cat(_layers(m, x2), 1)   # concatenation = sum of grams
    np.testing.assert_allclose(attribution.em(m, x1, x2), _cos(a1, a2), atol=1e-5)
    K = attribution.em(m, x1)
    np.testing.assert_allclose(np.diag(K), 1.0, atol=1e-6)


def test_ck_matches_direct():
    m, x1, x2 = _mlp(), torch.randn(5, 6, dtype=torch.float64), torch.randn(4, 6, dtype=torch.float64)
    with torch.no_grad():
        f1, f2 = F.relu(_layers(m, x1)[1]), F.relu(_layers(m, x2)[1])
    np.testing.assert_allclose(attribution.ck(m, x1, x2), _cos(f1, f2), atol=1e-5)


def test_gradcos_matches_autograd_loop_float64():
    m = _mlp(1)
    x1, y1 = torch.randn(5, 6, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1])
    x2, y2 = torch.randn(3, 6, dtype=torch.float64), torch.tensor([2, 2, 0])

    def loop(x, y):
        rows = []
        for xi, yi in zip(x, y):
            g = torch.autograd.grad(F.cross_entropy(m(xi[None]), yi[None]), list(m.parameters()))
            rows.append(torch.cat([t.flatten() for t in g]))
        return torch.stack(rows)                                              # (N, P)

    G1 = attribution.loss_grads(m, x1, y1, batch_size=2)
    torch.testing.assert_close(G1, loop(x1, y1), atol=1e-10, rtol=1e-8)
    np.testing.assert_allclose(attribution.gradcos(m, x1, y1, x2, y2), _cos(loop(x1, y1), loop(x2, y2)),
                               atol=1e-10)


def test_planted_identical_training_point_ranks_first():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4))
    y = rng.integers(0, 3, 60)
    rbf = lambda a, b: np.exp(-5.0 * ((a[:, None] - b[None]) ** 2).sum(-1))  # noqa: E731
    kglm = surrogates.KGLM(C=10.0).fit(rbf(x, x), y)
    planted = [3, 17, 42]
    K_test = rbf(x[planted], x)                                               # (3, 60)
    pred = kglm.predict(K_test)
    scores = attribution.contributions(K_test, kglm.W, pred)
    assert scores.shape == (3, 60)
    np.testing.assert_allclose(scores, K_test * kglm.W[pred], atol=0)
    support, oppose = attribution.top_examples(scores, k=2)
    assert list(support[:, 0]) == planted
    assert all(scores[j, oppose[j, 0]] <= scores[j].min() for j in range(3))


def test_precision_at_k_and_auc():
    is_poison = np.array([1, 0, 0, 1, 0, 0], bool)
    scores = np.array([[5.0, 1, 0, 4, 2, 3],       # poisoned points on top: perfect
                       [0.0, 1, 2, 0.5, 3, 4]])    # poisoned points at the bottom
    np.testing.assert_allclose(attribution.precision_at_k(scores, is_poison, k=2), [1.0, 0.0])
    np.testing.assert_allclose(attribution.detection_auc(scores, is_poison), [1.0, 0.0])
    assert attribution.attack_success([0, 0, 1, 0], [1, 2, 2, 0], target=0) == pytest.approx(2 / 3)


def test_detection_auc_matches_sklearn_with_ties():
    from sklearn.metrics import roc_auc_score
    rng = np.random.default_rng(0)
    is_poison = rng.random(40) < 0.2
    scores = rng.integers(0, 6, size=(5, 40)).astype(float)          # many ties
    ref = [roc_auc_score(is_poison, s) for s in scores]
    np.testing.assert_allclose(attribution.detection_auc(scores, is_poison), ref, atol=1e-12)


def test_poison_fraction_labels_and_seed():
    ds = data.load("digits", 300, 100, seed=0)
    pds, idx = data.poison(ds, 0.1, target=2, trigger_size=3, seed=5)
    assert len(idx) == 30 and len(np.unique(idx)) == 30
    assert (ds.y_train[idx] != 2).all() and (pds.y_train[idx] == 2).all()
    clean = np.setdiff1d(np.arange(300), idx)
    assert torch.equal(pds.x_train[clean], ds.x_train[clean])
    assert torch.equal(pds.y_train[clean], ds.y_train[clean])
    hi, lo = float(ds.x_train.max()), float(ds.x_train.min())
    patch = pds.x_train[idx][:, 0, -3:, -3:]
    assert (patch[:, 0, 0] == hi).all() and (patch[:, 0, 1] == lo).all()
    _, idx2 = data.poison(ds, 0.1, target=2, trigger_size=3, seed=5)
    _, idx3 = data.poison(ds, 0.1, target=2, trigger_size=3, seed=6)
    assert np.array_equal(idx, idx2) and not np.array_equal(idx, idx3)
    assert torch.equal(pds.x_test, ds.x_test)
    with pytest.raises(ValueError, match="fraction"):
        data.poison(ds, 1.5)


def test_add_trigger_is_a_copy():
    x = torch.zeros(2, 1, 8, 8)
    t = data.add_trigger(x, size=2, value=1.0)
    assert x.abs().sum() == 0 and t[0, 0, -2:, -2:].tolist() == [[1.0, 0.0], [0.0, 1.0]]
    with pytest.raises(ValueError, match="images"):
        data.add_trigger(torch.zeros(3, 4))


def test_kernel_suite_blocks_match_engine():
    from nnlens import ntk

    m = _mlp(2, torch.float32)
    xtr, xte = torch.randn(12, 6), torch.randn(5, 6)
    ytr = torch.randint(0, 3, (12,))
    suite = attribution.kernel_suite(m, xtr, ytr, xte, proj_dims=(8,))
    assert set(suite) == {"trntk", "trntk0", "pntk", "proj_trntk@8", "proj_pntk@8", "em", "ck", "gradcos"}
    for K_tr, K_te in suite.values():
        assert K_tr.shape == (12, 12) and K_te.shape == (5, 12)
    np.testing.assert_allclose(np.diag(suite["trntk"][0]), 1.0, atol=1e-5)
    ref = ntk.kernel(m, xte, xtr, kind="trntk", normalize=True).double().numpy()
    np.testing.assert_allclose(suite["trntk"][1], ref, atol=1e-5)
    raw = ntk.kernel(m, xtr, kind="trntk").double().numpy()
    np.testing.assert_allclose(suite["trntk0"][0], raw / np.diag(raw).mean(), rtol=1e-4, atol=1e-6)
    # the projection is seeded and data-independent: its block on a subset equals a fresh computation
    sub = ntk.kernel(m, xtr[:6], kind="trntk", normalize=True, proj_dim=8).double().numpy()
    np.testing.assert_allclose(suite["proj_trntk@8"][0][:6, :6], sub, atol=1e-5)


def test_poisoning_study_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("NNLENS_CACHE", str(tmp_path))
    from nnlens import train
    from nnlens.studies import s02_entk

    ds = data.load("digits", 150, 60, seed=0)
    spec = models.spec_for("mlp", ds, width=32)
    out = s02_entk.poisoning_study(spec, ds, train.TrainConfig(epochs=15, lr=0.05, batch_size=32), fraction=0.1,
                                      target=0, trigger_size=3, n_attack=10, topk=5, proj_dim=16,
                                      kinds=("trntk", "em"))
    assert out["n_poison"] == 15 and 0 <= out["clean_acc"] <= 1 and 0 <= out["attack_success"] <= 1
    assert 0 < out["n_scored"] <= 10                                  # only successful attacks are scored
    assert [r["kernel"] for r in out["rows"]] == ["trntk", "em"]
    assert out["per_image"][("trntk", "cv")]["auc"].shape == (out["n_scored"],)
    assert all(0 <= r["precision_at_k"] <= 1 and 0 <= r["auc"] <= 1 for r in out["rows"])


def test_margin_contributions_are_the_first_order_effect_of_removing_a_point():
    rng = np.random.default_rng(0)
    K = rng.uniform(0, 1e-3, size=(4, 30))                        # small kernel values: first order is exact enough
    W, b, y = rng.normal(size=(3, 30)), rng.normal(size=3), np.array([0, 2, 1, 2])

    def margin(Kx):
        z = Kx @ W.T + b
        zy = z[np.arange(4), y]
        z[np.arange(4), y] = -np.inf
        return zy - np.log(np.exp(z).sum(1))

    s = attribution.margin_contributions(K, W, b, y)
    for i in (0, 7, 29):
        K_drop = K.copy()
        K_drop[:, i] = 0.0                                        # the kGLM without training point i's term
        np.testing.assert_allclose(margin(K) - margin(K_drop), s[:, i], rtol=0, atol=1e-6)   # second order: ~(1e-3)²
