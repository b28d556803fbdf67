"""The empirical NTK family: eNTK, pNTK, trNTK, their random projections and layer-wise parts.

With g_c(x) = d f_c(x) / d theta the gradient of logit c (logits, not softmax; model in
eval mode) with respect to every trainable parameter:

- ``entk``:  K(x, x')_{cd} = <g_c(x), g_d(x')>                 -> (N1, N2, C, C)
- ``pntk``:  <sum_c g_c(x), sum_c g_c(x')>  (Mohamadi & Sutherland 2022; the 1/C factor
  is left out, normalization cancels it)                      -> (N1, N2)
- ``trntk``: sum_c <g_c(x), g_c(x')>  (Engel et al. 2023, arXiv 2305.14585) -> (N1, N2)

``normalize=True`` divides by sqrt(K(x,x) K(x',x')) (for eNTK entry-wise:
K_cd / sqrt(K(x,x)_cc K(x',x')_dd)). ``proj_dim=K`` replaces every g by R^T g / sqrt(K)
with one seeded Rademacher matrix R in {+-1}^{P x K}, generated block by block from
``seed`` and never held whole (the proj-pNTK / proj-trNTK of arXiv 2305.14585).

Methods (torchNTK, arXiv 2205.12372, computes the explicit path only for bias-free
single-output MLPs; this one has none of those limits):

- ``autodiff``: per-example Jacobians with torch.func (vmap(jacrev(functional_call))),
  the general path and the reference in tests.
- ``structured``: for nn.Linear and nn.Conv2d (weights and biases) the per-example
  gradient is sum_t g_t a_t^T (layer input a, gradient at the layer output g, t over
  positions), so a layer's block is sum_{t,s} (a_t.a'_s)(g_t.g'_s) -- (A A^T) o (G G^T)
  for a Linear layer -- from one forward and one backward per batch (pNTK) or C
  backwards (trNTK, eNTK), captured with hooks. Per layer it takes the cheaper of the
  Gram route and forming per-example gradients (im2col for convolutions). Parameters
  of any other module (BatchNorm affine, embeddings, ...) fall back to autodiff in
  the same call, so every model is exact.
- ``auto``: ``structured`` (which already picks per layer by cost).

Kernels are computed in row and column blocks of ``batch_size`` so memory stays bounded.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call, jacrev, vmap

KINDS = ("entk", "pntk", "trntk")
METHODS = ("auto", "autodiff", "structured")
CACHE_BYTES = 1 << 30      # column-block features are kept when they fit in this, else recomputed
PROJ_BLOCK = 1 << 22       # elements of one generated block of R


class NTKError(ValueError):
    """A model or input the NTK engine cannot handle, or an unknown option."""


# ----------------------------------------------------------------------------- factors
@dataclass
class _Flat:
    """Per-example gradients of one group of parameters: j (B, C', p)."""
    name: str
    j: torch.Tensor
    index: int = -1           # position of the parameter among the trainable ones (for R)


@dataclass
class _Gram:
    """A Linear/Conv2d layer: per-example gradient = sum_t g_t a_t^T.

    a: (B, T, da) layer input (im2col for convs, a ones column when there is a bias);
    g: (B, C', T, dg) gradient at the layer output, one row per class (C' = 1 for pNTK).
    """
    name: str
    a: torch.Tensor
    g: torch.Tensor
    w_index: int = -1
    b_index: int | None = None

    def flat(self) -> _Flat:
        j = torch.einsum("ncti,nta->ncia", self.g, self.a)      # (B, C', dg, da)
        return _Flat(self.name, j.flatten(2))                    # (B, C', dg*da)


def _pair(f1, f2, kind: str) -> torch.Tensor:
    """Kernel block between two factors of the same layer: (B1, B2) or (B1, B2, C, C)."""
    if isinstance(f1, _Flat):
        if kind == "entk":
            return torch.einsum("ncp,mdp->nmcd", f1.j, f2.j)    # (B1, B2, C, C)
        return f1.j.flatten(1) @ f2.j.flatten(1).T               # (B1, B2)
    if f1.a.shape[1] == 1:                                       # T = 1: (A A^T) o (G G^T)
        aa = f1.a[:, 0] @ f2.a[:, 0].T                           # (B1, B2)
        if kind == "entk":
            gg = torch.einsum("nci,mdi->nmcd", f1.g[:, :, 0], f2.g[:, :, 0])  # (B1, B2, C, C)
            return aa[:, :, None, None] * gg
        return aa * (f1.g[:, :, 0].flatten(1) @ f2.g[:, :, 0].flatten(1).T)
    aa = torch.einsum("nta,msa->nmts", f1.a, f2.a)               # (B1, B2, T, T)
    gg = torch.einsum("ncti,mcsi->nmts", f1.g, f2.g)             # (B1, B2, T, T), summed over c
    return (aa * gg).sum((2, 3))                                 # (B1, B2)


def _diag(f) -> torch.Tensor:
    """Per-example self-kernel per class, K(x, x)_cc: (B, C')."""
    if isinstance(f, _Flat):
        return (f.j * f.j).sum(-1)
    aa = torch.einsum("nta,nsa->nts", f.a, f.a)                  # (B, T, T)
    gg = torch.einsum("ncti,ncsi->ncts", f.g, f.g)               # (B, C', T, T)
    return (aa[:, None] * gg).sum((2, 3))


def _choose(f: _Gram, kind: str, proj: bool):
    """Keep the Gram route or form per-example gradients, whichever costs less per pair."""
    _, c, t, dg = f.g.shape
    da = f.a.shape[-1]
    ck = c * c if kind == "entk" else c
    gram_ok = not proj and (t == 1 or (kind != "entk" and t * t <= 64))
    if gram_ok and t * t * (da + ck * dg) <= ck * dg * da:
        return f
    return f.flat()


# ----------------------------------------------------------------------------- projection
def _r_blocks(shape, k: int, seed: int, index: int, device, dtype):
    """Yield (row0, row1, R_block (row1-row0, r, k)) for a parameter of ``shape`` viewed (d0, r).

    R is the rows of the one P x k Rademacher matrix that belong to this parameter; each
    block of whole leading-dim rows comes from a CPU generator seeded by (seed, index,
    block), so R never exists whole and does not depend on device, method or batch size.
    """
    d0 = shape[0] if len(shape) else 1
    r = math.prod(shape[1:]) if len(shape) > 1 else 1
    rows = max(1, PROJ_BLOCK // (r * k))
    for b, row0 in enumerate(range(0, d0, rows)):
        row1 = min(d0, row0 + rows)
        gen = torch.Generator().manual_seed((int(seed) * 1_000_003 + index) * 1_000_003 + b)
        blk = torch.randint(0, 2, (row1 - row0, r, k), generator=gen, dtype=torch.int8)
        yield row0, row1, (2 * blk - 1).to(device=device, dtype=dtype)


def _project(factors, k: int, seed: int, shapes: dict) -> _Flat:
    """sum over parameters of R_p^T g_p / sqrt(k): one factor with j (B, C', k)."""
    out = None
    for f in factors:
        if isinstance(f, _Flat):
            b, c = f.j.shape[:2]
            out = f.j.new_zeros(b, c, k) if out is None else out
            jr = f.j.reshape(b, c, shapes[f.index][0] if shapes[f.index] else 1, -1)   # (B, C', d0, r)
            for r0, r1, blk in _r_blocks(shapes[f.index], k, seed, f.index, f.j.device, f.j.dtype):
                out += jr[:, :, r0:r1].flatten(2) @ blk.flatten(0, 1)                    # (B, C', k)
            continue
        b, c, t, dg = f.g.shape
        out = f.g.new_zeros(b, c, k) if out is None else out
        a_w = f.a[..., :-1] if f.b_index is not None else f.a                          # (B, T, da)
        for r0, r1, blk in _r_blocks(shapes[f.w_index], k, seed, f.w_index, f.g.device, f.g.dtype):
            blk = blk.reshape(r1 - r0, a_w.shape[-1], k)                                # (rows, da, k)
            if t == 1 and c > 1:
                ra = torch.einsum("na,gak->ngk", a_w[:, 0], blk)                        # (B, rows, k)
                out += torch.einsum("ncg,ngk->nck", f.g[:, :, 0, r0:r1], ra)
            else:
                jb = torch.einsum("ncti,nta->ncia", f.g[..., r0:r1], a_w)               # (B, C', rows, da)
                out += jb.flatten(2) @ blk.flatten(0, 1)
        if f.b_index is not None:
            gb = f.g.sum(2)                                                             # (B, C', dg)
            for r0, r1, blk in _r_blocks(shapes[f.b_index], k, seed, f.b_index, f.g.device, f.g.dtype):
                out += gb[:, :, r0:r1] @ blk[:, 0]
    return _Flat("projection", out / math.sqrt(k))


# ----------------------------------------------------------------------------- features
class _Features:
    """Turns a batch of inputs into per-layer factors for one model, kind and method."""

    def __init__(self, model: nn.Module, kind: str, method: str):
        self.model, self.kind = model, kind
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.index = {n: i for i, (n, _) in enumerate(named)}
        self.shapes = {i: tuple(p.shape) for i, (_, p) in enumerate(named)}
        self.layers = {}                                 # module name -> module, structured path
        if method in ("auto", "structured"):
            for mname, m in model.named_modules():
                if self._structured_ok(m):
                    self.layers[mname] = m
        covered = {f"{m}.{p}" if m else p for m in self.layers for p in ("weight", "bias")}
        self.rest = [n for n, _ in named if n not in covered]   # autodiff parameters

    @staticmethod
    def _structured_ok(m) -> bool:
        if type(m) not in (nn.Linear, nn.Conv2d) or not m.weight.requires_grad:
            return False
        if m.bias is not None and not m.bias.requires_grad:
            return False
        if isinstance(m, nn.Conv2d) and (m.groups != 1 or m.padding_mode != "zeros" or isinstance(m.padding, str)):
            return False                                 # grouped / non-zero / "same" padding: autodiff
        return True

    def __call__(self, x: torch.Tensor) -> list:
        factors = self._structured(x) if self.layers else []
        if self.rest:
            factors += self._autodiff(x)
        return factors

    def _autodiff(self, x):
        """Per-example Jacobians of the ``rest`` parameters with torch.func."""
        model = self.model
        params = {n: p.detach() for n, p in model.named_parameters() if n in self.rest}
        consts = {n: p.detach() for n, p in model.named_parameters() if n not in params}
        consts.update({n: b for n, b in model.named_buffers()})
        pntk = self.kind == "pntk"

        def f(p, xi):
            out = functional_call(model, (p, consts), (xi.unsqueeze(0),)).squeeze(0)   # (C,)
            return out.sum(0, keepdim=True) if pntk else out                           # (C',)

        jac = vmap(jacrev(f), in_dims=(None, 0))(params, x)      # name -> (B, C', *shape)
        return [_Flat(n.rpartition(".")[0] or n, j.reshape(len(x), j.shape[1], -1), self.index[n]) for n, j in jac.items()]

    def _structured(self, x):
        """Hooks capture each layer's input and output; backward passes give output gradients."""
        ins, outs, hooks = {}, {}, []
        for name, m in self.layers.items():
            def hook(mod, inp, out, name=name):
                ins.setdefault(name, []).append(inp[0].detach())
                outs.setdefault(name, []).append(out)
            hooks.append(m.register_forward_hook(hook))
        try:
            with torch.enable_grad():
                y = self.model(x)                                             # (B, C)
                order = [(n, i) for n in self.layers for i in range(len(outs.get(n, [])))]
                targets = [outs[n][i] for n, i in order]
                if self.kind == "pntk":
                    grads = [torch.autograd.grad(y.sum(), targets, allow_unused=True)]
                else:
                    grads = [torch.autograd.grad(y[:, c].sum(), targets, retain_graph=c < y.shape[1] - 1,
                                                 allow_unused=True) for c in range(y.shape[1])]
        finally:
            for h in hooks:
                h.remove()
        factors = []
        for name, m in self.layers.items():
            a_list, g_list = [], []
            for call in range(len(ins.get(name, []))):
                k = order.index((name, call))
                gc = [g[k] if g[k] is not None else torch.zeros_like(targets[k]) for g in grads]
                a, g = _layer_ag(m, ins[name][call], torch.stack(gc, 1))
                a_list.append(a)
                g_list.append(g)
            if not a_list:
                continue                                                      # a layer the forward never used
            a, g = torch.cat(a_list, 1), torch.cat(g_list, 2)                  # calls concatenated along T
            w_i = self.index[f"{name}.weight" if name else "weight"]
            b_i = self.index.get(f"{name}.bias" if name else "bias") if m.bias is not None else None
            factors.append(_Gram(name, a, g, w_i, b_i))
        return factors


def _layer_ag(m, inp, g):
    """Layer input as (B, T, da) (+ ones column for a bias) and output grads as (B, C', T, dg)."""
    b, c = g.shape[:2]
    if isinstance(m, nn.Linear):
        a = inp.reshape(b, -1, m.in_features)                                 # (B, T, din)
        g = g.reshape(b, c, -1, m.out_features)                               # (B, C', T, dout)
    else:
        a = F.unfold(inp, m.kernel_size, m.dilation, m.padding, m.stride).transpose(1, 2)  # (B, L, Cin*kh*kw)
        g = g.flatten(3).transpose(2, 3)                                      # (B, C', L, Cout)
    if m.bias is not None:
        a = torch.cat([a, a.new_ones(a.shape[:2] + (1,))], -1)
    return a, g


# ----------------------------------------------------------------------------- streaming
def _sizes(fs) -> int:
    return sum(t.numel() * t.element_size() for f in fs
               for t in ((f.j,) if isinstance(f, _Flat) else (f.a, f.g)))


def _stream(feat: _Features, x1, x2, kind, layerwise, proj_dim, seed, bs, normalize):
    """Fill K block by block; column features are cached while they fit in CACHE_BYTES."""
    sym = x2 is None
    x2 = x1 if sym else x2
    n1, n2 = len(x1), len(x2)

    def prep(xb):
        fs = feat(xb)
        if proj_dim:
            return [_project(fs, proj_dim, seed, feat.shapes)]
        return [_choose(f, kind, False) if isinstance(f, _Gram) else f for f in fs]

    def diag(fs):
        d = sum(_diag(f) for f in fs)                                   # (B, C')
        return d if kind == "entk" else d.sum(1)                        # (B, C) or (B,)

    cache, used = {}, [0]
    d2 = [None] * math.ceil(n2 / bs)

    def col(j):
        if j in cache:
            return cache[j]
        fs = prep(x2[j * bs:(j + 1) * bs])
        if d2[j] is None:
            d2[j] = diag(fs)
        size = _sizes(fs)
        if used[0] + size <= CACHE_BYTES:
            cache[j] = fs
            used[0] += size
        return fs

    shape = (n1, n2, *((feat.n_out, feat.n_out) if kind == "entk" else ()))
    out = {}
    d1 = []
    for i in range(math.ceil(n1 / bs)):
        f1 = col(i) if sym else prep(x1[i * bs:(i + 1) * bs])
        d1.append(d2[i] if sym else diag(f1))
        for j in range(i if sym else 0, math.ceil(n2 / bs)):
            f2 = f1 if (sym and j == i) else col(j)
            for a, b in zip(f1, f2):
                key = a.name if layerwise else ""
                if key not in out:
                    out[key] = x1.new_zeros(shape)
                blk = _pair(a, b, kind)                                 # (B1, B2[, C, C])
                out[key][i * bs:i * bs + len(blk), j * bs:j * bs + blk.shape[1]] += blk
                if sym and j != i:
                    out[key][j * bs:j * bs + blk.shape[1], i * bs:i * bs + len(blk)] += (blk.permute(1, 0, 3, 2) if kind == "entk" else blk.T)
    if normalize:
        r1, r2 = torch.cat(d1).clamp_min(0).sqrt(), torch.cat(d2).clamp_min(0).sqrt()
        if kind == "entk":
            scale = r1[:, None, :, None] * r2[None, :, None, :]         # (N1, N2, C, C)
        else:
            scale = r1[:, None] * r2[None, :]                           # (N1, N2)
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        out = {k: v / scale for k, v in out.items()}
    return out if layerwise else out[""]


# ----------------------------------------------------------------------------- API
def _check(model, x1, x2, kind, method, proj_dim, layerwise, batch_size):
    if kind not in KINDS:
        raise NTKError(f"unknown kind {kind!r}; valid kinds: {', '.join(KINDS)}")
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
    if not isinstance(batch_size, int) or batch_size < 1:
        raise NTKError(f"batch_size must be a positive int, got {batch_size!r}")


def kernel(model: nn.Module, x1: torch.Tensor, x2: torch.Tensor | None = None, *, kind: str = "trntk",
           normalize: bool = False, proj_dim: int | None = None, seed: int = 0, layerwise: bool = False,
           method: str = "auto", batch_size: int = 256, device=None, dtype=None):
    """The empirical NTK of ``model`` between ``x1`` (N1, ...) and ``x2`` (N2, ...) (None: x1).

    Returns (N1, N2) for ``kind="pntk"``/``"trntk"``, (N1, N2, C, C) for ``"entk"``; with
    ``layerwise=True`` a dict {module name: component of that shape} whose values sum to the
    total (normalized components share the total's normalization). The result lives on
    ``device`` (None: CUDA when available, else CPU) in ``dtype`` (None: the model's; a
    different dtype computes on a cast copy of the model and the inputs).
    """
    _check(model, x1, x2, kind, method, proj_dim, layerwise, batch_size)
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
    try:
        with torch.no_grad():
            y = model(x1[:1])
        if not torch.is_tensor(y) or y.dim() != 2 or y.shape[0] != 1:
            raise NTKError(f"the model must return logits of shape (N, C); for a batch of 1 it returned "
                           f"{tuple(y.shape) if torch.is_tensor(y) else type(y).__name__} "
                           "(wrap a single-output model so it returns (N, 1))")
        feat = _Features(model, kind, method)
        feat.n_out = y.shape[1]
        return _stream(feat, x1, x2, kind, layerwise, proj_dim, seed, batch_size, normalize)
    finally:
        model.train(was_training)
