"""The NTK engine against autodiff and against a slow, obviously correct reference (float64)."""
import copy

import pytest
import torch
import torch.nn as nn

from nnlens import models, ntk
from nnlens.utils import rel_error as rel

F64 = torch.float64


def _models():
    torch.manual_seed(0)
    return {
        "mlp": (models.MLP(12, 3, width=8, depth=2), torch.randn(7, 12), torch.randn(5, 12)),
        "cnn": (models.SmallCNN(1, 3, width=2, image_size=8), torch.randn(5, 1, 8, 8), torch.randn(3, 1, 8, 8)),
        "resnet": (models.ResNet18(1, 3, width=4), torch.randn(4, 1, 8, 8), torch.randn(3, 1, 8, 8)),
    }


MODELS = _models()


class Tied(nn.Module):
    """One Linear used twice (positions concatenated) and a parameter outside any Linear/Conv."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.scale = nn.Parameter(torch.tensor(1.5))
        self.head = nn.Linear(4, 2, bias=False)

    def forward(self, x):
        return self.head(torch.tanh(self.lin(torch.tanh(self.lin(x)))) * self.scale)


def reference_entk(model, x1, x2):
    """Explicit per-example Jacobians, one torch.autograd.grad per example and class."""
    params = [p for p in model.parameters() if p.requires_grad]
    model.eval()

    def jac(x):
        rows = []
        for xi in x:
            out = model(xi.unsqueeze(0))[0]                                   # (C,)
            rows.append(torch.stack([torch.cat([g.flatten()
                                                for g in torch.autograd.grad(out[c], params, retain_graph=True)])
                                     for c in range(len(out))]))               # (C, P)
        return torch.stack(rows)                                              # (N, C, P)

    return torch.einsum("ncp,mdp->nmcd", jac(x1), jac(x2))                    # (N1, N2, C, C)


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("kind", ntk.KINDS)
def test_methods_agree(name, kind):
    model, x1, x2 = MODELS[name]
    ref = ntk.kernel(model, x1, x2, kind=kind, method="autodiff", dtype=F64, batch_size=4)
    for method in ("structured", "auto"):
        k = ntk.kernel(model, x1, x2, kind=kind, method=method, dtype=F64, batch_size=2)
        assert k.shape == ref.shape == ((len(x1), len(x2), 3, 3) if kind == "entk" else (len(x1), len(x2)))
        assert rel(k, ref) <= 1e-8, (name, kind, method)


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_against_explicit_loop(name):
    model, x1, x2 = MODELS[name]
    m64 = copy.deepcopy(model).double()
    ref = reference_entk(m64, x1.double(), x2.double())
    k = ntk.kernel(model, x1, x2, kind="entk", dtype=F64, batch_size=3)
    assert rel(k, ref) <= 1e-10


def test_tied_weights_and_scalar_param():
    torch.manual_seed(1)
    model, x = Tied(), torch.randn(6, 4)
    ref = reference_entk(copy.deepcopy(model).double(), x.double(), x.double())
    for method in ntk.METHODS:
        assert rel(ntk.kernel(model, x, kind="entk", method=method, dtype=F64), ref) <= 1e-10


@pytest.mark.parametrize("name", ["mlp", "resnet"])
def test_pntk_trntk_from_entk(name):
    model, x1, x2 = MODELS[name]
    e = ntk.kernel(model, x1, x2, kind="entk", dtype=F64)                     # (N1, N2, C, C)
    assert rel(ntk.kernel(model, x1, x2, kind="pntk", dtype=F64), e.sum((2, 3))) <= 1e-10
    assert rel(ntk.kernel(model, x1, x2, kind="trntk", dtype=F64), e.diagonal(dim1=2, dim2=3).sum(-1)) <= 1e-10


@pytest.mark.parametrize("kind", ["pntk", "trntk"])
def test_symmetric_psd_and_normalized(kind):
    model, x1, _ = MODELS["cnn"]
    k = ntk.kernel(model, x1, kind=kind, dtype=F64, batch_size=2)
    assert torch.equal(k, k.T)
    ev = torch.linalg.eigvalsh(k)
    assert ev.min() >= -1e-10 * ev.max()
    kn = ntk.kernel(model, x1, kind=kind, normalize=True, dtype=F64, batch_size=2)
    assert torch.allclose(kn.diagonal(), torch.ones(len(x1), dtype=F64))
    d = k.diagonal().sqrt()
    assert rel(kn, k / (d[:, None] * d[None, :])) <= 1e-12


def test_entk_normalize_is_entrywise():
    model, x1, x2 = MODELS["mlp"]
    e = ntk.kernel(model, x1, x2, kind="entk", dtype=F64)
    d1 = ntk.kernel(model, x1, kind="entk", dtype=F64).diagonal(dim1=0, dim2=1).diagonal(dim1=0, dim2=1)  # (N1, C)
    d2 = ntk.kernel(model, x2, kind="entk", dtype=F64).diagonal(dim1=0, dim2=1).diagonal(dim1=0, dim2=1)  # (N2, C)
    en = ntk.kernel(model, x1, x2, kind="entk", normalize=True, dtype=F64)
    assert rel(en, e / (d1[:, None, :, None] * d2[None, :, None, :]).sqrt()) <= 1e-12


@pytest.mark.parametrize("method", ["autodiff", "structured"])
def test_layerwise_sums_to_total(method):
    model, x1, x2 = MODELS["resnet"]
    for normalize in (False, True):
        parts = ntk.kernel(model, x1, x2, layerwise=True, normalize=normalize, method=method, dtype=F64)
        total = ntk.kernel(model, x1, x2, normalize=normalize, method=method, dtype=F64)
        assert "head" in parts and "stem.0" in parts and "stem.1" in parts
        assert rel(sum(parts.values()), total) <= 1e-12


def test_projection_unbiased_and_error_falls_as_one_over_sqrt_k():
    model, x1, _ = MODELS["mlp"]
    exact = ntk.kernel(model, x1, kind="trntk", dtype=F64)
    draws = [ntk.kernel(model, x1, kind="trntk", proj_dim=64, seed=s, dtype=F64) for s in range(20)]
    single = sum(rel(k, exact) for k in draws) / len(draws)
    assert rel(sum(draws) / len(draws), exact) < 0.5 * single    # unbiased: averaging 20 draws shrinks it ~4.5x
    err = {k: sum(rel(ntk.kernel(model, x1, kind="trntk", proj_dim=k, seed=s, dtype=F64), exact)
                  for s in range(4)) / 4 for k in (16, 256)}
    assert 2.5 <= err[16] / err[256] <= 6.0, err


def explicit_r(model, k, seed, dtype=F64):
    """The whole P x k matrix R, chunk by chunk, in the order of the trainable parameters."""
    from nnlens.ntk import projection
    blocks = []
    for i, p in enumerate(q for q in model.parameters() if q.requires_grad):
        d0, r = projection.view(tuple(p.shape))
        rows = torch.zeros(d0, r, k, dtype=dtype)
        for r0, r1, blk in projection.r_chunks(tuple(p.shape), k, seed, i, "cpu", dtype):
            rows[r0:r1] = blk.permute(1, 0, 2)                                # chunk is (r, rows, k)
        blocks.append(rows.reshape(d0 * r, k))
    return torch.cat(blocks)                                                  # (P, k)


@pytest.mark.parametrize("name", ["mlp", "cnn", "resnet"])
def test_projection_is_r_transpose_g(name):
    """proj-eNTK against explicit Jacobians times the explicit R, float64."""
    model, x1, x2 = MODELS[name]
    m64 = copy.deepcopy(model).double()
    params = [p for p in m64.parameters() if p.requires_grad]
    m64.eval()

    def jac(x):
        rows = []
        for xi in x.double():
            out = m64(xi.unsqueeze(0))[0]
            rows.append(torch.stack([torch.cat([g.flatten()
                                                for g in torch.autograd.grad(out[c], params, retain_graph=True)])
                                     for c in range(len(out))]))
        return torch.stack(rows)                                              # (N, C, P)

    r = explicit_r(m64, 24, seed=5)                                           # (P, 24)
    assert set(r.unique().tolist()) == {-1.0, 1.0} and abs(r.mean().item()) < 0.05
    z1, z2 = jac(x1) @ r / 24 ** 0.5, jac(x2) @ r / 24 ** 0.5                # (N, C, 24)
    ref = torch.einsum("nck,mdk->nmcd", z1, z2)
    k = ntk.kernel(model, x1, x2, kind="entk", proj_dim=24, seed=5, dtype=F64, batch_size=2)
    assert rel(k, ref) <= 1e-10


def test_projection_independent_of_dtype_batch_and_budget():
    from nnlens.ntk import projection
    for shape, k in [((7, 5), 24), ((3,), 100), ((2, 3, 3, 3), 7)]:
        for (_, _, a), (_, _, b) in zip(projection.r_chunks(shape, k, 1, 2, "cpu", torch.float32),
                                        projection.r_chunks(shape, k, 1, 2, "cpu", F64)):
            assert torch.equal(a.double(), b)
    model, x1, x2 = MODELS["cnn"]
    ref = ntk.kernel(model, x1, x2, kind="trntk", proj_dim=40, dtype=F64)
    for kw in (dict(batch_size=1), dict(batch_size=2, memory_budget=0), dict(method="autodiff", batch_size=3)):
        assert rel(ntk.kernel(model, x1, x2, kind="trntk", proj_dim=40, dtype=F64, **kw), ref) <= 1e-12
    f32 = ntk.kernel(model, x1, x2, kind="trntk", proj_dim=40)
    assert rel(f32, ref) <= 1e-5                                              # float32: the same R


def test_threads_are_set_for_the_call_and_restored():
    model, x1, _ = MODELS["mlp"]
    before = torch.get_num_threads()
    a = ntk.kernel(model, x1, kind="pntk", dtype=F64, threads=1)
    assert torch.get_num_threads() == before
    assert rel(a, ntk.kernel(model, x1, kind="pntk", dtype=F64)) <= 1e-12


def test_progress_bar_changes_nothing(capsys):
    model, x1, x2 = MODELS["mlp"]
    for kw in (dict(), dict(proj_dim=16)):
        a = ntk.kernel(model, x1, x2, dtype=F64, batch_size=2, progress=True, **kw)
        assert torch.equal(a, ntk.kernel(model, x1, x2, dtype=F64, batch_size=2, progress=False, **kw))
    assert "ntk trntk" in capsys.readouterr().err


def test_projection_same_across_methods_and_seeded():
    model, x1, x2 = MODELS["cnn"]
    a = ntk.kernel(model, x1, x2, kind="pntk", proj_dim=32, seed=3, method="autodiff", dtype=F64)
    b = ntk.kernel(model, x1, x2, kind="pntk", proj_dim=32, seed=3, method="structured", dtype=F64, batch_size=2)
    assert rel(b, a) <= 1e-10
    assert torch.equal(b, ntk.kernel(model, x1, x2, kind="pntk", proj_dim=32, seed=3, method="structured",
                                     dtype=F64, batch_size=2))
    assert rel(ntk.kernel(model, x1, x2, kind="pntk", proj_dim=32, seed=4, dtype=F64), a) > 1e-3


def test_repeatable_and_model_untouched():
    model, x1, x2 = MODELS["resnet"]
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    k1 = ntk.kernel(model, x1, x2, kind="entk", dtype=F64)
    k2 = ntk.kernel(model, x1, x2, kind="entk", dtype=F64)
    assert torch.equal(k1, k2) and k1.dtype == F64
    assert model.training and next(model.parameters()).dtype == torch.float32
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    model.eval()
    assert ntk.kernel(model, x1, x2).dtype == torch.float32


def test_kind_is_a_spec():
    model, x1, x2 = MODELS["mlp"]
    assert set(ntk.KINDS) == {"entk", "pntk", "trntk"}
    assert ntk.KINDS["pntk"].sum_logits and ntk.KINDS["entk"].class_pairs and not ntk.KINDS["trntk"].class_pairs
    same = ntk.Kind("my_trace", sum_logits=False, class_pairs=False)     # a spec works like its name
    assert torch.equal(ntk.kernel(model, x1, x2, kind=same, dtype=F64),
                       ntk.kernel(model, x1, x2, kind="trntk", dtype=F64))


def test_memory_budget_changes_nothing_but_memory():
    model, x1, _ = MODELS["cnn"]
    for kw in (dict(kind="trntk"), dict(kind="pntk", proj_dim=16)):
        a = ntk.kernel(model, x1, dtype=F64, batch_size=2, **kw)
        b = ntk.kernel(model, x1, dtype=F64, batch_size=2, memory_budget=0, **kw)     # recompute every block
        assert rel(b, a) <= 1e-14


def test_auto_without_linear_or_conv_is_autodiff():
    torch.manual_seed(2)
    model = Tied()
    model.lin.requires_grad_(False)
    model.head.requires_grad_(False)                       # only the scalar parameter is trainable
    x = torch.randn(5, 4)
    a = ntk.kernel(model, x, kind="entk", method="auto", dtype=F64)
    b = ntk.kernel(model, x, kind="entk", method="autodiff", dtype=F64)
    assert torch.equal(a, b)


def test_bad_inputs():
    model, x1, x2 = MODELS["mlp"]
    cases = [
        (dict(x2=torch.randn(3, 11)), "same feature shape"),
        (dict(kind="ntk"), "valid kinds"),
        (dict(method="fast"), "valid methods"),
        (dict(proj_dim=0), "proj_dim"),
        (dict(proj_dim=8, layerwise=True), "layerwise"),
        (dict(batch_size=0), "batch_size"),
        (dict(memory_budget=-1), "memory_budget"),
        (dict(proj_dim=8, seed=-1), "seed"),
        (dict(threads=0), "threads"),
    ]
    for kwargs, msg in cases:
        with pytest.raises(ntk.NTKError, match=msg):
            ntk.kernel(model, x1, **kwargs)
    frozen = models.MLP(12, 3, width=4).requires_grad_(False)
    with pytest.raises(ntk.NTKError, match="no trainable parameters"):
        ntk.kernel(frozen, x1)
    with pytest.raises(ntk.NTKError, match=r"\(N, C\)"):
        ntk.kernel(models.TwoLayer(12, 5), x1)
    with pytest.raises(ntk.NTKError, match="non-empty"):
        ntk.kernel(model, x1[:0])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    for name in ("mlp", "cnn", "resnet"):
        model, x1, x2 = MODELS[name]
        for kind in ntk.KINDS:
            cpu = ntk.kernel(model, x1, x2, kind=kind, dtype=F64, device="cpu")
            gpu = ntk.kernel(model, x1, x2, kind=kind, dtype=F64, device="cuda")
            assert gpu.is_cuda and rel(gpu.cpu(), cpu) <= 1e-10
        a = ntk.kernel(model, x1, x2, proj_dim=32, dtype=F64, device="cpu")
        b = ntk.kernel(model, x1, x2, proj_dim=32, dtype=F64, device="cuda")
        assert rel(b.cpu(), a) <= 1e-10
