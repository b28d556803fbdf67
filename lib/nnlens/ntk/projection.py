"""The seeded Rademacher projection of per-example gradients (proj-pNTK / proj-trNTK).

``project(factors, k, seed, shapes)`` maps every per-example gradient g (all trainable
parameters, P entries) to R^T g / sqrt(k), with one Rademacher matrix R in {+-1}^{P x k}
(arXiv 2305.14585, which uses TRAK's projector, arXiv 2303.14186). R is never held whole: the
rows of R that belong to parameter ``index`` come in blocks of whole leading-dim rows, each
drawn from a CPU generator seeded by (seed, index, block), so R does not depend on the
device, the method or the batch size. ``_R_BLOCK`` (elements per block) is part of R's
definition -- changing it changes R -- not a memory budget.
"""
from __future__ import annotations

import math

import torch

from .factors import Flat

_R_BLOCK = 1 << 22          # elements of one generated block of R (fixes the seed layout)


def r_blocks(shape, k: int, seed: int, index: int, device, dtype):
    """Yield (row0, row1, R_block (row1-row0, r, k)) for a parameter of ``shape`` viewed (d0, r)."""
    d0 = shape[0] if len(shape) else 1
    r = math.prod(shape[1:]) if len(shape) > 1 else 1
    rows = max(1, _R_BLOCK // (r * k))
    for b, row0 in enumerate(range(0, d0, rows)):
        row1 = min(d0, row0 + rows)
        gen = torch.Generator().manual_seed((int(seed) * 1_000_003 + index) * 1_000_003 + b)
        blk = torch.randint(0, 2, (row1 - row0, r, k), generator=gen, dtype=torch.int8)
        yield row0, row1, (2 * blk - 1).to(device=device, dtype=dtype)


def project(factors, k: int, seed: int, shapes: dict) -> Flat:
    """sum over parameters of R_p^T g_p / sqrt(k): one factor with j (B, C', k).

    factors: the per-layer ``Flat``/``Gram`` factors of one batch; shapes: parameter index ->
    parameter shape (the row layout of R).
    """
    out = None
    for f in factors:
        if isinstance(f, Flat):
            b, c = f.j.shape[:2]
            out = f.j.new_zeros(b, c, k) if out is None else out
            jr = f.j.reshape(b, c, shapes[f.index][0] if shapes[f.index] else 1, -1)   # (B, C', d0, r)
            for r0, r1, blk in r_blocks(shapes[f.index], k, seed, f.index, f.j.device, f.j.dtype):
                out += jr[:, :, r0:r1].flatten(2) @ blk.flatten(0, 1)                   # (B, C', k)
            continue
        b, c, t, dg = f.g.shape
        out = f.g.new_zeros(b, c, k) if out is None else out
        a_w = f.a[..., :-1] if f.b_index is not None else f.a                         # (B, T, da)
        for r0, r1, blk in r_blocks(shapes[f.w_index], k, seed, f.w_index, f.g.device, f.g.dtype):
            blk = blk.reshape(r1 - r0, a_w.shape[-1], k)                               # (rows, da, k)
            if t == 1 and c > 1:
                ra = torch.einsum("na,gak->ngk", a_w[:, 0], blk)                       # (B, rows, k)
                out += torch.einsum("ncg,ngk->nck", f.g[:, :, 0, r0:r1], ra)
            else:
                jb = torch.einsum("ncti,nta->ncia", f.g[..., r0:r1], a_w)              # (B, C', rows, da)
                out += jb.flatten(2) @ blk.flatten(0, 1)
        if f.b_index is not None:
            gb = f.g.sum(2)                                                            # (B, C', dg)
            for r0, r1, blk in r_blocks(shapes[f.b_index], k, seed, f.b_index, f.g.device, f.g.dtype):
                out += gb[:, :, r0:r1] @ blk[:, 0]
    return Flat("projection", out / math.sqrt(k))
