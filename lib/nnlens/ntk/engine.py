"""The empirical NTK family: eNTK, pNTK, trNTK, their random projections and layer-wise parts.

With g_c(x) = d f_c(x) / d theta the gradient of logit c (logits, not softmax; model in
eval mode; theta every trainable parameter, P of them, in the model's own parameterization
-- no 1/sqrt(width) NTK scaling, no division by P), the kernels and their scale conventions:

- ``entk``:  K(x, x')_{cd} = <g_c(x), g_d(x')>                        -> (N1, N2, C, C)
  The same numbers as neural-tangents' ``empirical_ntk_fn(..., trace_axes=())``.
- ``trntk``: sum_c <g_c(x), g_c(x')>, the trace of the eNTK over logits (Engel et al. 2023,
  arXiv 2305.14585)                                                    -> (N1, N2)
  Ours SUMS over the C logits; neural-tangents' default ``trace_axes=(-1,)`` AVERAGES them,
  so its value is ``trntk / C``.
- ``pntk``:  <sum_c g_c(x), sum_c g_c(x')> = sum_{c,d} K_cd (Mohamadi, Bae & Sutherland 2022,
  arXiv 2206.12543)                                                    -> (N1, N2)
  The paper's pNTK differentiates sum_c f_c / sqrt(C), i.e. carries a factor 1/C that is
  dropped here, so ``pntk`` = C x the paper's pNTK.
- ``normalize=True`` (the cosine kernels of arXiv 2305.14585) divides by sqrt(K(x,x) K(x',x'))
  (eNTK entry-wise: K_cd / sqrt(K(x,x)_cc K(x',x')_dd)), so the constant factors above (1/C,
  sums vs means) cancel and every library gives the same normalized kernel.
- ``proj_dim=K`` replaces every g by R^T g / sqrt(K), one seeded Rademacher matrix
  R in {+-1}^{P x K} (the same R for every class, drawn once per call; ``projection.py``
  defines it exactly), so the projected kernel is an unbiased estimate of the exact one with
  relative error ~ K^-1/2 (proj-pNTK / proj-trNTK of arXiv 2305.14585). ``projection="kron"``
  (LoGra's per-layer R_out x R_in) and ``"khatri_rao"`` (columns that are Kronecker products)
  never form per-example gradients; ``projection.py`` defines them and their errors.

A kind is one small spec (``Kind``): whether the logits are summed before differentiating
(one backward pass, C' = 1) and whether class pairs are kept ((C, C) per entry) or only their
diagonal summed. A new kernel of this family is one more ``KINDS`` entry.

Methods (torchNTK, arXiv 2205.12372, computes the explicit path only for bias-free
single-output MLPs; this one has none of those limits):

- ``autodiff``: per-example Jacobians with torch.func (vmap(jacrev(functional_call))),
  the general path and the reference in tests.
- ``structured``: per-layer Gram products for nn.Linear and nn.Conv2d (``factors.py``:
  (A A^T) o (G G^T), im2col for convolutions, or per-example gradients when those are
  cheaper for that layer); parameters of any other module (BatchNorm affine, embeddings,
  ...) fall back to autodiff in the same call, so every model is exact.
- ``auto`` (the default): ``structured`` for the layers it covers and ``autodiff`` for the
  rest -- plain ``autodiff`` for a model without Linear/Conv2d layers.

Kernels are computed in row and column blocks of ``batch_size`` inputs; the per-example
factors of column blocks are kept between row blocks while they fit in ``memory_budget``
bytes, and recomputed beyond it. A call uses torch's current intra-op thread count, or
``threads`` for its duration. Kernels larger than memory: ``outofcore.kernel_to_disk``, which
reuses ``prepared``, ``block_factors``, ``self_kernel`` and ``cosine_scale`` block by block.
"""
from __future__ import annotations

import contextlib
import copy
import math
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn as nn

from .. import utils
from .factors import Features, Flat, Gram, choose, diag, nbytes, pair
from .projection import PROJECTIONS, project


class NTKError(ValueError):
    """A model or input the NTK engine cannot handle, or an unknown option."""


@dataclass(frozen=True)
class Kind:
    """What a kernel keeps of the per-logit gradients g_c (see the module docstring)."""
    name: str
    sum_logits: bool        # differentiate sum_c f_c: one backward pass, one gradient per example (C' = 1)
    class_pairs: bool       # keep every (c, d) pair: (N1, N2, C, C); else sum_c of the (c, c) pairs: (N1, N2)


KINDS = {
    "entk": Kind("entk", sum_logits=False, class_pairs=True),
    "pntk": Kind("pntk", sum_logits=True, class_pairs=False),
    "trntk": Kind("trntk", sum_logits=False, class_pairs=False),
}
METHODS = ("auto", "autodiff", "structured")
MEMORY_BUDGET = 1 << 30     # default bytes of cached column-block factors


def _stream(feat: Features, x1, x2, kind: Kind, layerwise, proj_dim, seed, bs, normalize, budget, progress,
            projection="dense"):
    """Fill K block by block; column factors are cached while they fit in ``budget`` bytes."""
    sym = x2 is None
    x2 = x1 if sym else x2
    n1, n2 = len(x1), len(x2)
    nb1, nb2 = math.ceil(n1 / bs), math.ceil(n2 / bs)
    bar = _bar(progress, (nb1 if sym else nb1 + nb2) if proj_dim else nb1, kind)

    if proj_dim:                                         # R drawn once for all inputs (projection.py)
        z = project(feat, [x1] if sym else [x1, x2], proj_dim, seed, bs, budget, bar, projection)  # [(N, C', K)]

        def prep(xs, i):
            return [Flat("projection", z[xs][i * bs:(i + 1) * bs])]
    else:
        def prep(xs, i):
            return block_factors(feat, (x1, x2)[xs][i * bs:(i + 1) * bs])

    cache, used = {}, [0]
    d2 = [None] * nb2

    def col(j):
        if j in cache:
            return cache[j]
        fs = prep(-1, j)
        if d2[j] is None:
            d2[j] = self_kernel(fs, kind)
        size = nbytes(fs)
        if used[0] + size <= budget:
            cache[j] = fs
            used[0] += size
        return fs

    shape = (n1, n2, *((feat.n_out, feat.n_out) if kind.class_pairs else ()))
    out = {}
    d1 = []
    for i in range(nb1):
        f1 = col(i) if sym else prep(0, i)
        d1.append(d2[i] if sym else self_kernel(f1, kind))
        for j in range(i if sym else 0, nb2):
            f2 = f1 if (sym and j == i) else col(j)
            for a, b in zip(f1, f2):
                key = a.name if layerwise else ""
                if key not in out:
                    out[key] = x1.new_zeros(shape)
                blk = pair(a, b, kind)                                  # (B1, B2[, C, C])
                out[key][i * bs:i * bs + len(blk), j * bs:j * bs + blk.shape[1]] += blk
                if sym and j != i:
                    out[key][j * bs:j * bs + blk.shape[1], i * bs:i * bs + len(blk)] += (
                        blk.permute(1, 0, 3, 2) if kind.class_pairs else blk.T)
            if bar is not None and not proj_dim:
                bar.update(1)
    if bar is not None:
        bar.close()
    if normalize:
        scale = cosine_scale(torch.cat(d1), torch.cat(d2), kind)
        out = {k: v / scale for k, v in out.items()}
    return out if layerwise else out[""]


def block_factors(feat: Features, x: torch.Tensor) -> list:
    """The per-layer factors of one block of inputs, each in the cheaper of its two forms (``factors.choose``)."""
    return [choose(f, feat.kind) if isinstance(f, Gram) else f for f in feat(x)]


def self_kernel(fs: list, kind: Kind) -> torch.Tensor:
    """K(x, x) of every input of one block of factors: (B, C) with class pairs (the (c, c) entries), else (B,)."""
    d = sum(diag(f) for f in fs)                                        # (B, C')
    return d if kind.class_pairs else d.sum(1)


def cosine_scale(d1: torch.Tensor, d2: torch.Tensor, kind: Kind) -> torch.Tensor:
    """sqrt(K(x, x) K(x', x')) between self-kernels d1 (N1[, C]) and d2 (N2[, C]); 1 where it is 0.

    (N1, N2), or (N1, N2, C, C) with class pairs: the divisor of ``normalize=True``."""
    r1, r2 = d1.clamp_min(0).sqrt(), d2.clamp_min(0).sqrt()
    if kind.class_pairs:
        scale = r1[:, None, :, None] * r2[None, :, None, :]             # (N1, N2, C, C)
    else:
        scale = r1[:, None] * r2[None, :]                               # (N1, N2)
    return torch.where(scale > 0, scale, torch.ones_like(scale))


def _bar(progress, total: int, kind: Kind):
    """A tqdm.auto bar over kernel blocks (projection: input batches), or None.

    progress None: on for two blocks or more unless NNLENS_PROGRESS is 0, shown once the kernel has taken 2 s."""
    if not utils.progress_enabled(progress) or (progress is None and total < 2):
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=f"ntk {kind.name}", unit="block", leave=False, delay=0 if progress else 2)


def _check(model, x1, x2, kind, method, proj_dim, seed, layerwise, batch_size, memory_budget, threads,
           projection="dense") -> Kind:
    if isinstance(kind, Kind):
        spec = kind
    elif kind in KINDS:
        spec = KINDS[kind]
    else:
        raise NTKError(f"unknown kind {kind!r}; valid kinds: {', '.join(KINDS)} (or an ntk.Kind)")
    if method not in METHODS:
        raise NTKError(f"unknown method {method!r}; valid methods: {', '.join(METHODS)}")
    if not isinstance(model, nn.Module):
        raise NTKError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not any(p.requires_grad for p in model.parameters()):
        raise NTKError("the model has no trainable parameters (requires_grad=True); the NTK is the "
                       "inner product of parameter gradients, so there is nothing to differentiate")
    for name, x in (("x1", x1), ("x2", x2)):
        if x is not None and (not torch.is_tensor(x) or x.dim() < 1 or len(x) == 0):
            raise NTKError(f"{name} must be a non-empty tensor with the examples along dim 0, got "
                           f"{type(x).__name__}{tuple(x.shape) if torch.is_tensor(x) else ''}")
    if x2 is not None and x1.shape[1:] != x2.shape[1:]:
        raise NTKError(f"x1 and x2 must have the same feature shape; got x1 {tuple(x1.shape)} and "
                       f"x2 {tuple(x2.shape)} (dims after the first must match)")
    if proj_dim is not None and (not isinstance(proj_dim, int) or isinstance(proj_dim, bool) or proj_dim < 1):
        raise NTKError(f"proj_dim must be a positive int or None, got {proj_dim!r}")
    if proj_dim is not None and layerwise:
        raise NTKError("layerwise=True with proj_dim is not supported: one projection of all gradients "
                       "has cross-layer terms, so per-layer parts would not sum to the total; "
                       "use layerwise with the exact kernel (proj_dim=None)")
    if projection not in PROJECTIONS:
        raise NTKError(f"unknown projection {projection!r}; valid projections: {', '.join(PROJECTIONS)}")
    if projection != "dense" and proj_dim is None:
        raise NTKError(f"projection={projection!r} needs proj_dim (the projected dimension K)")
    if proj_dim is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        raise NTKError(f"seed must be an int >= 0 (it seeds the projection), got {seed!r}")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise NTKError(f"threads must be a positive int or None (keep torch's setting), got {threads!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise NTKError(f"batch_size must be a positive int, got {batch_size!r}")
    if not isinstance(memory_budget, int) or memory_budget < 0:
        raise NTKError(f"memory_budget must be a number of bytes >= 0, got {memory_budget!r}")
    return spec


@contextlib.contextmanager
def prepared(model: nn.Module, x1: torch.Tensor, x2: torch.Tensor | None, spec: Kind, method: str, device=None,
             dtype=None, threads: int | None = None) -> Iterator[tuple[Features, torch.Tensor, torch.Tensor | None]]:
    """The model and inputs ready for the kernel: yields (features, x1, x2) on ``device`` in ``dtype``.

    The model is cast (a copy when its device or dtype differ) and in eval mode for the block (its
    training flag restored after), torch runs ``threads`` intra-op threads (restored after), the
    model's output is checked to be (N, C) logits and ``Features`` is built with ``n_out`` = C.
    """
    device = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
    p0 = next(p for p in model.parameters() if p.requires_grad)
    dtype = dtype or p0.dtype
    if p0.device != device or p0.dtype != dtype:
        model = copy.deepcopy(model).to(device=device, dtype=dtype)
    cast = lambda x: x.to(device=device, dtype=dtype if x.is_floating_point() else x.dtype)  # noqa: E731
    x1 = cast(x1)
    x2 = cast(x2) if x2 is not None else None
    was_training = model.training
    model.eval()
    with contextlib.ExitStack() as stack:
        stack.enter_context(utils.threads(threads))
        stack.callback(model.train, was_training)
        with torch.no_grad():
            y = model(x1[:1])
        if not torch.is_tensor(y) or y.dim() != 2 or y.shape[0] != 1:
            raise NTKError(f"the model must return logits of shape (N, C); for a batch of 1 it returned "
                           f"{tuple(y.shape) if torch.is_tensor(y) else type(y).__name__} "
                           "(wrap a single-output model so it returns (N, 1))")
        feat = Features(model, spec, structured=method != "autodiff")   # auto: structured where it applies
        feat.n_out = y.shape[1]
        yield feat, x1, x2


def kernel(model: nn.Module, x1: torch.Tensor, x2: torch.Tensor | None = None, *, kind: str | Kind = "trntk",
           normalize: bool = False, proj_dim: int | None = None, seed: int = 0, projection: str = "dense",
           layerwise: bool = False, method: str = "auto", batch_size: int = 256, device=None, dtype=None,
           memory_budget: int = MEMORY_BUDGET, threads: int | None = None, progress: bool | None = None):
    """The empirical NTK of ``model`` between ``x1`` (N1, ...) and ``x2`` (N2, ...) (None: x1).

    ``kind``: a name in ``KINDS`` or a ``Kind``. Returns (N1, N2) for ``"pntk"``/``"trntk"``,
    (N1, N2, C, C) for ``"entk"``; with ``layerwise=True`` a dict {module name: component of
    that shape} whose values sum to the total (normalized components share the total's
    normalization). ``proj_dim``/``seed``: the seeded random projection (module docstring);
    ``projection``: ``"dense"`` (one Rademacher R, the paper's) or ``"kron"`` (per layer
    R_out x R_in, ``projection.py``). The result lives on ``device`` (None: CUDA when
    available, else CPU) in ``dtype`` (None: the model's; a different dtype computes on a cast
    copy of the model and the inputs). ``memory_budget``: bytes of per-example factors kept at
    once (cached column blocks; the inputs projected in one pass over R). ``threads``: torch's
    intra-op thread count for this call (restored afterwards; None: the caller's,
    ``torch.get_num_threads()``). ``progress``: a tqdm.auto bar over kernel blocks (None: when
    NNLENS_PROGRESS allows, after 2 s). For kernels larger than memory see ``kernel_to_disk``.
    """
    spec = _check(model, x1, x2, kind, method, proj_dim, seed, layerwise, batch_size, memory_budget, threads,
                  projection)
    with prepared(model, x1, x2, spec, method, device, dtype, threads) as (feat, x1, x2):
        return _stream(feat, x1, x2, spec, layerwise, proj_dim, seed, batch_size, normalize, memory_budget,
                       progress, projection)
