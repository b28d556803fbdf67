"""The seeded Rademacher projection of per-example gradients (proj-pNTK / proj-trNTK).

``project(feat, xs, k, seed, ...)`` maps the per-example gradient g (all P trainable
parameters) of every input to R^T g / sqrt(k), with one Rademacher matrix R in {+-1}^{P x k},
the same for every class (arXiv 2305.14585, which uses TRAK's projector, arXiv 2303.14186).

R, exactly (``r_chunks``): the rows of R that belong to trainable parameter number ``index``
(P_p rows, the parameter viewed as (d0, r) in row-major order) come from one PCG64 stream
seeded by ``SeedSequence([seed, index])``; they are cut into chunks of whole leading rows,
``rows = max(1, R_CHUNK // (r k))`` at a time, and chunk number c takes the next
ceil(rows r k / 64) 64-bit words of the stream: entry e of the chunk (row-major (rows, r, k))
is -1 when bit (e mod 64) of word e // 64 is set, else +1. So R depends only on ``seed``, the
parameter shapes and k -- not on the device, dtype, method, batch size or memory budget.

Cost. R (P x k) is drawn once per call, chunk by chunk, and every chunk is applied to the
per-example factors of all inputs at once (kept under ``memory_budget``; beyond it the inputs
go in groups, one pass over R per group). The draw is cheap: PCG64 words (numpy) turned into
+-1.0 floats by placing each bit in the float's sign bit (three integer ops, no per-entry random
numbers); what remains is the projection GEMM itself, N P k multiply-adds (measured in
``benchmarks/ntk.py`` against TRAK's BasicProjector, which draws R with ``bernoulli_``).
For a Linear layer the projection never forms per-example gradients: (a @ R_rows) then a
contraction with g, N P k + N C' d_out k for C' classes, whatever C' is.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .factors import Flat, Gram, nbytes

R_CHUNK = 1 << 18          # entries of R per generated chunk (1 MB of float32); part of R's definition


def view(shape) -> tuple[int, int]:
    """A parameter of ``shape`` viewed as (d0, r) rows of R."""
    d0 = shape[0] if len(shape) else 1
    return d0, (math.prod(shape[1:]) if len(shape) > 1 else 1)


def _signs(words: np.ndarray, n: int, device, dtype) -> torch.Tensor:
    """The first n entries (+-1 in ``dtype``) coded by ``words`` (uint64): bit set -> -1."""
    if dtype == torch.float64:
        w = torch.from_numpy(words.view(np.int64)).to(device)                       # (W,)
        shifts = torch.arange(63, -1, -1, dtype=torch.int64, device=device)          # bit j -> sign bit 63
        s = torch.bitwise_left_shift(w[:, None], shifts)                             # (W, 64)
        s.bitwise_and_(-2**63).bitwise_or_(0x3FF0000000000000)                       # sign | exponent of 1.0
        return s.view(torch.float64).flatten()[:n]
    halves = np.stack([words & 0xFFFFFFFF, words >> 32], 1).astype(np.uint32).view(np.int32)  # (W, 2): low, high
    w = torch.from_numpy(halves).to(device).flatten()                                # (2W,)
    shifts = torch.arange(31, -1, -1, dtype=torch.int32, device=device)              # bit j -> sign bit 31
    s = torch.bitwise_left_shift(w[:, None], shifts)                                 # (2W, 32)
    s.bitwise_and_(-2**31).bitwise_or_(0x3F800000)
    out = s.view(torch.float32).flatten()[:n]
    return out if dtype == torch.float32 else out.to(dtype)


def r_chunks(shape, k: int, seed: int, index: int, device, dtype):
    """Yield (row0, row1, R_chunk (r, row1-row0, k)) of +-1 for parameter ``index`` of ``shape``.

    R_chunk[c, i, :] is the row of R of parameter entry (row0 + i, c) (the layout lets a
    Linear layer's input multiply a whole chunk in one GEMM)."""
    d0, r = view(shape)
    rows = max(1, R_CHUNK // (r * k))
    bits = np.random.PCG64(np.random.SeedSequence([int(seed), int(index)]))
    for row0 in range(0, d0, rows):
        row1 = min(d0, row0 + rows)
        n = (row1 - row0) * r * k
        yield row0, row1, _signs(bits.random_raw(-(-n // 64)), n, device, dtype).view(r, row1 - row0, k)


def project_factors(factors, k: int, seed: int, shapes: dict, chunks=r_chunks) -> torch.Tensor:
    """sum over parameters of R_p^T g_p / sqrt(k) for one set of factors: (B, C', k).

    factors: the ``Flat``/``Gram`` factors of B inputs; shapes: parameter index -> shape (the
    row layout of R); ``chunks``: the source of R's chunks (``r_chunks``; the benchmark swaps
    in pre-drawn ones to time the GEMMs alone).
    """
    out = None
    for f in factors:
        if isinstance(f, Flat):
            b, c = f.j.shape[:2]
            out = f.j.new_zeros(b, c, k) if out is None else out
            jr = f.j.reshape(b, c, *view(shapes[f.index]))                              # (B, C', d0, r)
            for r0, r1, blk in chunks(shapes[f.index], k, seed, f.index, f.j.device, f.j.dtype):
                out += jr[:, :, r0:r1].transpose(2, 3).flatten(2) @ blk.flatten(0, 1)   # (B, C', k)
            continue
        b, c, t, dg = f.g.shape
        out = f.g.new_zeros(b, c, k) if out is None else out
        a_w = f.a[..., :-1] if f.b_index is not None else f.a                          # (B, T, da)
        for r0, r1, blk in chunks(shapes[f.w_index], k, seed, f.w_index, f.g.device, f.g.dtype):
            if t == 1:                                                                 # R^T vec(g a^T) = g^T (a R)
                ra = a_w[:, 0] @ blk.flatten(1)                                        # (B, rows*k)
                out.baddbmm_(f.g[:, :, 0, r0:r1], ra.view(b, r1 - r0, k))              # (B, C', rows) @ (B, rows, k)
            else:
                jb = torch.einsum("ncti,nta->ncai", f.g[..., r0:r1], a_w)              # (B, C', da, rows)
                out += jb.flatten(2) @ blk.flatten(0, 1)
        if f.b_index is not None:
            gb = f.g.sum(2)                                                            # (B, C', dg)
            for r0, r1, blk in chunks(shapes[f.b_index], k, seed, f.b_index, f.g.device, f.g.dtype):
                out += gb[:, :, r0:r1] @ blk[0]
    return out / math.sqrt(k)


def _merge(group: list) -> list:
    """The factors of several batches as one batch (concatenated along examples)."""
    if len(group) == 1:
        return group[0]
    merged = []
    for fs in zip(*group):
        f = fs[0]
        if isinstance(f, Flat):
            merged.append(Flat(f.name, torch.cat([x.j for x in fs]), f.index))
        else:
            merged.append(Gram(f.name, torch.cat([x.a for x in fs]), torch.cat([x.g for x in fs]), f.w_index,
                               f.b_index))
    return merged


def project(feat, xs, k: int, seed: int, batch_size: int, memory_budget: int, bar=None) -> list:
    """The projected per-example gradients of every input of every tensor in ``xs``: [(N_i, C', k)].

    feat: a ``factors.Features``; inputs go through it in batches of ``batch_size``; their
    factors are gathered while they fit in ``memory_budget`` bytes and each group is projected
    with one pass over R. ``bar``: a tqdm bar advanced once per batch, or None.
    """
    lengths = [len(x) for x in xs]
    batches = [x[s:s + batch_size] for x in xs for s in range(0, len(x), batch_size)]
    zs, group, used = [], [], 0

    def flush():
        if group:
            zs.append(project_factors(_merge(group), k, seed, feat.shapes))
            group.clear()

    for xb in batches:
        fs = feat(xb)
        if group and used + nbytes(fs) > memory_budget:
            flush()
            used = 0
        group.append(fs)
        used += nbytes(fs)
        if bar is not None:
            bar.update(1)
    flush()
    return list(torch.cat(zs).split(lengths))
