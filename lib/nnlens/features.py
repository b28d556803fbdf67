"""Layer-wise activations of a trained model, read through named taps.

``activations(model, x, taps)`` runs ``x`` through ``model`` in eval mode, in
batches, and returns each tapped module's output flattened to (N, D). Wide
convolutional maps can be average-pooled to ``pool`` x ``pool`` first, which
keeps PCA of wide layers affordable (the paper's protocol fits PCA on the full
maps; ``pool=0`` does the same).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def _module(model: nn.Module, name: str) -> nn.Module:
    mods = dict(model.named_modules())
    if name not in mods:
        taps = getattr(model, "taps", None) or [n for n in mods if n]
        raise KeyError(f"model has no module {name!r}; valid taps: {', '.join(taps)}")
    return mods[name]


@torch.no_grad()
def activations(model: nn.Module, x: torch.Tensor, taps: list[str] | None = None, *,
                batch_size: int = 512, pool: int = 0, include_logits: bool = False) -> dict[str, torch.Tensor]:
    """{tap name: (N, D) float32 tensor on the CPU}; ``taps=None`` uses ``model.taps``.

    With ``include_logits`` the network's outputs are added under ``"logits"``.
    """
    taps = list(model.taps if taps is None else taps)
    store: dict[str, list[torch.Tensor]] = {t: [] for t in taps}
    current: dict[str, torch.Tensor] = {}

    def hook(name):
        def fn(_mod, _inp, out):
            if pool and out.dim() == 4 and out.shape[-1] > pool:
                out = F.adaptive_avg_pool2d(out, pool)       # (B, C, pool, pool)
            current[name] = out.flatten(1).float().cpu()      # (B, D)
        return fn

    handles = [_module(model, t).register_forward_hook(hook(t)) for t in taps]
    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    logits = []
    try:
        for i in range(0, len(x), batch_size):
            out = model(x[i:i + batch_size].to(dev))
            logits.append(out.float().cpu())
            for t in taps:
                store[t].append(current.pop(t))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    result = {t: torch.cat(v) for t, v in store.items()}
    if include_logits:
        result["logits"] = torch.cat(logits)
    return result
