"""The out-of-core kGLM (surrogates_stream.StreamedSGDKGLM) against scikit-learn's in-memory fit."""
import numpy as np
import pytest
import torch
from sklearn.linear_model import SGDClassifier

from nnlens import data, models, ntk, surrogates
from nnlens.surrogates_stream import StreamedSGDKGLM, row_batches


def _cosine_kernel(n_train=400, n_test=400):
    """Digits with a cosine kernel of the pixels: K (N_train + N_test, N_train + N_test), train rows first."""
    ds = data.digits(n_train, n_test, seed=0)
    x = torch.cat([ds.x_train, ds.x_test]).flatten(1).double()
    x = x / x.norm(dim=1, keepdim=True)
    return (x @ x.T).numpy(), ds.y_train.numpy(), ds.y_test.numpy()


def test_one_ordered_epoch_is_sklearns_fit_on_the_whole_block():
    """Where the two are comparable -- one pass, rows in order -- the streamed fit IS the in-memory fit."""
    K, y, _ = _cosine_kernel()
    n = len(y)
    ref = SGDClassifier(loss="log_loss", penalty="l2", alpha=1e-4, class_weight="balanced", max_iter=1, tol=None,
                        shuffle=False, random_state=0)
    ref.fit(K[:n, :n], y)
    m = StreamedSGDKGLM(alpha=1e-4, epochs=1, batch_rows=32, shuffle=False).fit(K, y, rows=slice(0, n),
                                                                               cols=slice(0, n))
    # not bit for bit: each partial_fit call ends by folding SGD's weight scale into w, which rounds differently
    # from one uninterrupted pass, and SGD carries that rounding forward (measured 2e-8 of the largest weight)
    tight = lambda a, b: np.abs(a - b).max() <= 1e-6 * np.abs(b).max()                # noqa: E731
    assert tight(m.model_.coef_, ref.coef_) and tight(m.model_.intercept_, ref.intercept_)
    assert tight(m.logits(K, rows=slice(n, None), cols=slice(0, n)), ref.decision_function(K[n:, :n]))


def _objective(model, K, y, alpha=1e-4) -> float:
    """The one-vs-rest L2-regularized logistic loss both fits minimize (unweighted; balanced classes here)."""
    W, b = model.model_.coef_, model.model_.intercept_
    return sum(np.mean(np.logaddexp(0, -np.where(y == c, 1, -1) * (K @ W[c] + b[c]))) + alpha / 2 * W[c] @ W[c]
               for c in range(len(W)))


def test_as_many_shuffled_epochs_fit_at_least_as_well():
    """Shuffled epochs are another SGD path to the same optimum: with the epochs the in-memory fit took (it stops
    on its tolerance) the streamed fit reaches a training objective at least as low, and the same test accuracy."""
    K, y, y_test = _cosine_kernel()
    n = len(y)
    full = surrogates.SGDKGLM(alpha=1e-4).fit(K[:n, :n], y)
    streamed = StreamedSGDKGLM(alpha=1e-4, epochs=full.model_.n_iter_, batch_rows=64).fit(
        K, y, rows=slice(0, n), cols=slice(0, n))
    assert _objective(streamed, K[:n, :n], y) <= _objective(full, K[:n, :n], y)
    acc_full = float((full.predict(K[n:, :n]) == y_test).mean())
    acc_stream = float((streamed.predict(K[n:, :n]) == y_test).mean())
    assert acc_full > 0.7 and abs(acc_stream - acc_full) <= 0.05, (acc_full, acc_stream)   # 2.5 s.e. at 400 points


def test_streams_a_kernel_store(tmp_path):
    """Rows come straight from ntk.kernel_to_disk's zarr array, train block and test block by slices."""
    torch.manual_seed(0)
    model, x = models.MLP(12, 3, width=8, depth=2), torch.randn(40, 12)
    y = np.arange(30) % 3
    store = ntk.kernel_to_disk(model, x, kind="trntk", normalize=True, dtype=torch.float64, block=8,
                               out=tmp_path / "k")
    K = store[:]
    seen = []
    a = StreamedSGDKGLM(epochs=2, batch_rows=8).fit(store, y, rows=slice(0, 30), cols=slice(0, 30),
                                                    on_epoch=lambda e, m: seen.append((e, m.W.copy())))
    assert [e for e, _ in seen] == [1, 2] and np.array_equal(seen[-1][1], a.W)
    b = StreamedSGDKGLM(epochs=2, batch_rows=8).fit(K[:30, :30], y)
    assert np.array_equal(a.W, b.W)
    assert np.array_equal(a.logits(store, rows=slice(30, None), cols=slice(0, 30)), b.logits(K[30:, :30]))
    starts = [s for s, blk in row_batches(store, slice(30, 40), slice(0, 30), 4)]
    assert starts == [0, 4, 8]
    with pytest.raises(ValueError, match="train block is 30 x 30 but there are 29 labels"):
        StreamedSGDKGLM().fit(store, y[:29], rows=slice(0, 30), cols=slice(0, 30))
