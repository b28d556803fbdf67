"""Per-example gradient factors of one batch, and the kernel blocks between two batches.

A batch of inputs becomes one factor per parameter-owning layer (``Features``):

- ``Gram``: an nn.Linear / nn.Conv2d layer, whose per-example gradient is sum_t g_t a_t^T
  (layer input a, gradient at the layer output g, t over positions), captured with hooks
  from one forward and 1 (pNTK) or C (trNTK, eNTK) backward passes;
- ``Flat``: explicit per-example gradients j (B, C', p) -- from torch.func Jacobians for
  every other parameter (the general path), or a ``Gram`` expanded when that is cheaper.

``pair`` gives the kernel block between two factors of the same layer (sum_{t,s}
(a_t.a'_s)(g_t.g'_s), i.e. (A A^T) o (G G^T) for a Linear layer, without forming the
Jacobian), ``diag`` the per-example self-kernel used by ``normalize``. What a kernel keeps
of the per-logit gradients (summed logits, class pairs) comes from its ``Kind`` (engine).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call, jacrev, vmap


@dataclass
class Flat:
    """Per-example gradients of one group of parameters: j (B, C', p)."""
    name: str
    j: torch.Tensor
    index: int = -1           # position of the parameter among the trainable ones (rows of R)


@dataclass
class Gram:
    """A Linear/Conv2d layer: per-example gradient = sum_t g_t a_t^T.

    a: (B, T, da) layer input (im2col for convs, a ones column when there is a bias);
    g: (B, C', T, dg) gradient at the layer output, one row per class (C' = 1 for pNTK).
    """
    name: str
    a: torch.Tensor
    g: torch.Tensor
    w_index: int = -1
    b_index: int | None = None

    def flat(self) -> Flat:
        j = torch.einsum("ncti,nta->ncia", self.g, self.a)      # (B, C', dg, da)
        return Flat(self.name, j.flatten(2))                     # (B, C', dg*da)


def nbytes(fs) -> int:
    """Memory held by a list of factors."""
    return sum(t.numel() * t.element_size() for f in fs for t in ((f.j,) if isinstance(f, Flat) else (f.a, f.g)))


def pair(f1, f2, kind) -> torch.Tensor:
    """Kernel block between two factors of the same layer: (B1, B2), or (B1, B2, C, C) with class pairs."""
    if isinstance(f1, Flat):
        if kind.class_pairs:
            return torch.einsum("ncp,mdp->nmcd", f1.j, f2.j)    # (B1, B2, C, C)
        return f1.j.flatten(1) @ f2.j.flatten(1).T               # (B1, B2), summed over c
    if f1.a.shape[1] == 1:                                       # T = 1: (A A^T) o (G G^T)
        aa = f1.a[:, 0] @ f2.a[:, 0].T                           # (B1, B2)
        if kind.class_pairs:
            gg = torch.einsum("nci,mdi->nmcd", f1.g[:, :, 0], f2.g[:, :, 0])  # (B1, B2, C, C)
            return aa[:, :, None, None] * gg
        return aa * (f1.g[:, :, 0].flatten(1) @ f2.g[:, :, 0].flatten(1).T)
    aa = torch.einsum("nta,msa->nmts", f1.a, f2.a)               # (B1, B2, T, T)
    gg = torch.einsum("ncti,mcsi->nmts", f1.g, f2.g)             # (B1, B2, T, T), summed over c
    return (aa * gg).sum((2, 3))                                 # (B1, B2)


def diag(f) -> torch.Tensor:
    """Per-example self-kernel per class, K(x, x)_cc: (B, C')."""
    if isinstance(f, Flat):
        return (f.j * f.j).sum(-1)
    aa = torch.einsum("nta,nsa->nts", f.a, f.a)                  # (B, T, T)
    gg = torch.einsum("ncti,ncsi->ncts", f.g, f.g)               # (B, C', T, T)
    return (aa[:, None] * gg).sum((2, 3))


def choose(f: Gram, kind):
    """Keep the Gram route or form per-example gradients, whichever costs less per pair."""
    _, c, t, dg = f.g.shape
    da = f.a.shape[-1]
    ck = c * c if kind.class_pairs else c
    gram_ok = t == 1 or (not kind.class_pairs and t * t <= 64)
    if gram_ok and t * t * (da + ck * dg) <= ck * dg * da:
        return f
    return f.flat()


def structured_ok(m: nn.Module) -> bool:
    """Whether the Gram route covers this module's parameters."""
    if type(m) not in (nn.Linear, nn.Conv2d) or not m.weight.requires_grad:
        return False
    if m.bias is not None and not m.bias.requires_grad:
        return False
    if isinstance(m, nn.Conv2d) and (m.groups != 1 or m.padding_mode != "zeros" or isinstance(m.padding, str)):
        return False                                 # grouped / non-zero / "same" padding: autodiff
    return True


class Features:
    """Turns a batch of inputs into per-layer factors for one model, kind and method.

    ``structured=True`` takes every Linear/Conv2d layer ``structured_ok`` accepts by the Gram
    route; the parameters left (``rest``) get per-example Jacobians with torch.func.
    """

    def __init__(self, model: nn.Module, kind, structured: bool):
        self.model, self.kind = model, kind
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.index = {n: i for i, (n, _) in enumerate(named)}
        self.shapes = {i: tuple(p.shape) for i, (_, p) in enumerate(named)}
        self.layers = {n: m for n, m in model.named_modules() if structured and structured_ok(m)}
        covered = {f"{m}.{p}" if m else p for m in self.layers for p in ("weight", "bias")}
        self.rest = [n for n, _ in named if n not in covered]   # autodiff parameters

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
        sum_logits = self.kind.sum_logits

        def f(p, xi):
            out = functional_call(model, (p, consts), (xi.unsqueeze(0),)).squeeze(0)   # (C,)
            return out.sum(0, keepdim=True) if sum_logits else out                     # (C',)

        jac = vmap(jacrev(f), in_dims=(None, 0))(params, x)      # name -> (B, C', *shape)
        return [Flat(n.rpartition(".")[0] or n, j.reshape(len(x), j.shape[1], -1), self.index[n])
                for n, j in jac.items()]

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
                if self.kind.sum_logits:
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
            factors.append(Gram(name, a, g, w_i, b_i))
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
