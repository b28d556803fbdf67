"""The shared numerical helpers, each against the obvious computation."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nnlens import models, utils


def test_to_numpy_rel_error_and_slope():
    a = torch.tensor([[3.0, 4.0]])
    assert utils.to_numpy(a).dtype == np.float64 and utils.to_numpy(a, None).dtype == np.float32
    assert utils.rel_error(a * 1.1, a) == pytest.approx(0.1)
    k = np.array([16, 64, 256, 1024])
    assert utils.loglog_slope(k, 3 * k ** -0.5) == pytest.approx(-0.5)
    with pytest.raises(ValueError, match="same shape"):
        utils.rel_error(np.ones(2), np.ones(3))
    with pytest.raises(ValueError, match="length >= 2"):
        utils.loglog_slope([1], [1])


def test_forward_batches_and_restores_training_flag():
    torch.manual_seed(0)
    m = models.MLP(5, 3, width=8, depth=1).train()
    x = torch.randn(10, 5)
    out = utils.forward(m, x, batch_size=3)
    assert m.training and torch.allclose(out, m.eval()(x), atol=1e-6)


def test_per_example_grads_match_one_backward_per_example():
    torch.manual_seed(0)
    m = models.MLP(4, 3, width=6, depth=1).double()
    x, y = torch.randn(5, 4, dtype=torch.float64), torch.tensor([0, 2, 1, 1, 0])
    g = utils.per_example_grads(m, x, lambda out, t: F.cross_entropy(out[None], t[None]), y, batch_size=2)
    for i in range(5):
        m.zero_grad()
        F.cross_entropy(m(x[i:i + 1]), y[i:i + 1]).backward()
        ref = torch.cat([p.grad.flatten() for p in m.parameters()])
        assert torch.allclose(g[i], ref, rtol=1e-12, atol=1e-12)
    gs = utils.per_example_grads(m, x, lambda out: out.sum())
    assert gs.shape == (5, sum(p.numel() for p in m.parameters()))


def test_seeded_restores_the_callers_stream():
    torch.manual_seed(7)
    expected = torch.rand(2)
    torch.manual_seed(7)
    with utils.seeded(0):
        a = torch.rand(2)
    with utils.seeded(0):
        assert torch.equal(torch.rand(2), a)
    assert torch.equal(torch.rand(2), expected)


def test_one_thread_limits_torch_and_blas_and_restores_them():
    from threadpoolctl import threadpool_info

    from nnlens.utils import one_thread

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with one_thread():
            assert torch.get_num_threads() == 1
            assert all(p["num_threads"] == 1 for p in threadpool_info())
        assert torch.get_num_threads() == 2

        @one_thread()
        def inside():
            return torch.get_num_threads()

        assert inside() == 1 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
