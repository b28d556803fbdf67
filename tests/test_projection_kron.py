"""Kronecker-factored projections ("kron": LoGra's R_out (x) R_in; "khatri_rao": column-wise) against the
dense-R definition with R built explicitly, and their JL error against the dense Rademacher R (float64)."""
import copy

import pytest
import torch

from nnlens import models, ntk
from nnlens.ntk import factors, projection
from nnlens.utils import rel_error as rel

F64 = torch.float64


def _conv_bn():
    return torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3), torch.nn.BatchNorm2d(3), torch.nn.ReLU(), torch.nn.Flatten(),
                               torch.nn.Linear(3 * 6 * 6, 3))


def _models():
    torch.manual_seed(0)
    return {"mlp": (models.MLP(12, 3, width=8, depth=2), torch.randn(6, 12), torch.randn(4, 12)),
            "cnn": (models.SmallCNN(1, 3, width=2, image_size=8), torch.randn(5, 1, 8, 8), torch.randn(3, 1, 8, 8)),
            "conv_bn": (_conv_bn(), torch.randn(5, 1, 8, 8), torch.randn(3, 1, 8, 8))}


MODELS = _models()


def jacobian(model, x):
    """Per-example, per-class gradients of all trainable parameters, one autograd call each: (N, C, P)."""
    params = [p for p in model.parameters() if p.requires_grad]
    rows = []
    for xi in x:
        out = model(xi.unsqueeze(0))[0]
        grads = [torch.autograd.grad(out[c], params, retain_graph=True) for c in range(len(out))]
        rows.append(torch.stack([torch.cat([g.flatten() for g in gc]) for gc in grads]))   # (C, P)
    return torch.stack(rows)


def dense_rows(shape, k, seed, index):
    """The dense R's rows of one parameter, (numel, k)."""
    d0, r = projection.view(shape)
    rows = torch.zeros(d0, r, k, dtype=F64)
    for r0, r1, blk in projection.r_chunks(shape, k, seed, index, "cpu", F64):
        rows[r0:r1] = blk.permute(1, 0, 2)
    return rows.reshape(d0 * r, k)


def explicit_r(model, x, k, seed, kind):
    """The whole P x k' matrix of projection ``kind``, built entry by entry from its definition."""
    params = [p for p in model.parameters() if p.requires_grad]
    offsets = [0]
    for p in params:
        offsets.append(offsets[-1] + p.numel())
    units = factors.Features(model, ntk.KINDS["entk"], structured=True)(x[:1])        # the layers, in order
    shares = projection._shares(len(units), k) if kind == "kron" else [k] * len(units)
    blocks = []
    for f, kl in zip(units, shares):
        if isinstance(f, factors.Flat):
            p = params[f.index].numel()
            m = torch.eye(p, dtype=F64) if kind == "kron" and p <= kl else dense_rows(params[f.index].shape, kl, seed,
                                                                                   f.index) / kl ** 0.5
            rows = [(f.index, torch.arange(p))]
        else:
            dg, da = f.g.shape[-1], f.a.shape[-1]
            if kind == "kron":
                r_out, r_in, scale = projection.kron_factors(dg, da, kl, seed, f.w_index, dtype=F64)
                r_out = torch.eye(dg, dtype=F64) if r_out is None else r_out
                r_in = torch.eye(da, dtype=F64) if r_in is None else r_in
                m = torch.kron(r_out, r_in) * scale                                  # (dg da, k_out k_in)
            else:
                r_out = projection._rademacher(dg, kl, seed, f.w_index, 2, "cpu", F64)
                r_in = projection._rademacher(da, kl, seed, f.w_index, 1, "cpu", F64)
                m = (r_out[:, None, :] * r_in[None, :, :]).reshape(dg * da, kl) / kl ** 0.5   # column-wise kron
            din = da - (f.b_index is not None)
            o, i = torch.arange(dg).repeat_interleave(da), torch.arange(da).repeat(dg)    # row (o, i) of m
            w = i < din
            rows = [(f.w_index, (o * din + i)[w]), (f.b_index, o[~w])]
            m = torch.cat([m[w], m[~w]])
        full = torch.zeros(offsets[-1], m.shape[1], dtype=F64)
        start = 0
        for index, local in rows:
            if index is None or not len(local):
                continue
            full[offsets[index] + local] = m[start:start + len(local)]
            start += len(local)
        blocks.append(full)
    return torch.cat(blocks, 1) if kind == "kron" else sum(blocks)


@pytest.mark.parametrize("kind", ["kron", "khatri_rao"])
@pytest.mark.parametrize("name", list(MODELS))
def test_equals_the_explicit_kronecker_r(name, kind):
    """proj-eNTK from the factored path == explicit Jacobians times the explicit (Kronecker-built) R."""
    model, x1, x2 = MODELS[name]
    m64 = copy.deepcopy(model).double().eval()
    r = explicit_r(m64, x1.double(), 30, seed=4, kind=kind)                          # (P, k')
    assert r.shape[1] <= 30 and r.shape[1] >= 20
    z1, z2 = jacobian(m64, x1.double()) @ r, jacobian(m64, x2.double()) @ r            # (N, C, k')
    ref = torch.einsum("nck,mdk->nmcd", z1, z2)
    k = ntk.kernel(model, x1, x2, kind="entk", proj_dim=30, seed=4, projection=kind, dtype=F64, batch_size=2)
    assert rel(k, ref) <= 1e-10
    assert rel(k, ntk.kernel(model, x1, x2, kind="entk", dtype=F64)) > 1e-3           # a projection, not exact


def test_kron_keeps_small_sides_whole():
    assert projection.kron_dims(10, 513, 2560) == (10, 256)                             # d_out fits: identity
    assert projection.kron_dims(512, 785, 256) == (16, 16)
    assert projection.kron_dims(4, 5, 64) == (4, 5)                                     # the whole layer fits: exact
    r_out, r_in, scale = projection.kron_factors(10, 513, 2560, seed=0, index=0)
    assert r_out is None and r_in.shape == (513, 256) and scale == pytest.approx(256 ** -0.5)
    assert set(r_in.unique().tolist()) == {-1.0, 1.0}


def _errors(model, x, kind, projection_, ks, seeds=4):
    exact = ntk.kernel(model, x, kind=kind, dtype=F64)
    return {k: sum(rel(ntk.kernel(model, x, kind=kind, proj_dim=k, seed=s, projection=projection_, dtype=F64), exact)
                   for s in range(seeds)) / seeds for k in ks}


@pytest.mark.parametrize("kind", ["pntk", "trntk"])
def test_jl_error_against_the_dense_r(kind):
    """Khatri-Rao: error ~ k^-1/2, comparable to the dense R's. A coordinate is a product of two independent
    one-dimensional JL estimates, with at most ~4x the dense coordinate's variance, so pNTK's error is within
    2x; trNTK's input-side estimate is shared by all C classes and does not average out over them as the dense
    R's does, so it gets 3x (measured on MLPs: pNTK 1.0-1.2x, trNTK 1.3-2.2x). LoGra's kron: unbiased and
    falling with k, but slower than k^-1/2 (a product of two ~sqrt(k)-dimensional JL estimates)."""
    torch.manual_seed(1)
    model, x = models.MLP(32, 10, width=48, depth=2), torch.randn(30, 32)
    dense = _errors(model, x, kind, "dense", (64, 1024))
    kr = _errors(model, x, kind, "khatri_rao", (64, 1024))
    kron = _errors(model, x, kind, "kron", (64, 1024))
    assert 2.5 <= kr[64] / kr[1024] <= 6.5, kr                                          # 16x k: 4x less error
    bound = 2 if kind == "pntk" else 3
    assert kr[64] <= bound * dense[64] and kr[1024] <= bound * dense[1024], (kr, dense)
    assert kron[64] / kron[1024] >= 1.6, kron
    exact = ntk.kernel(model, x, kind=kind, dtype=F64)
    draws = [ntk.kernel(model, x, kind=kind, proj_dim=64, seed=s, projection="kron", dtype=F64) for s in range(16)]
    assert rel(sum(draws) / len(draws), exact) < 0.5 * kron[64]                         # unbiased: averaging helps


def test_unknown_projection_and_projection_without_k():
    model, x1, _ = MODELS["mlp"]
    with pytest.raises(ntk.NTKError, match="valid projections: dense, kron, khatri_rao"):
        ntk.kernel(model, x1, proj_dim=8, projection="sparse")
    with pytest.raises(ntk.NTKError, match="needs proj_dim"):
        ntk.kernel(model, x1, projection="kron")
