"""Small numerical helpers that several modules share, each in one place.

- ``to_numpy(x, dtype)``: a numpy copy of a tensor, array or list (float64 by default).
- ``rel_error(approx, exact)``: relative Frobenius error ‖approx − exact‖_F / ‖exact‖_F.
- ``loglog_slope(x, y)``: least-squares slope of log y against log x (scaling exponents).
- ``forward(model, x)``: logits of a model in eval mode, in batches, without gradients.
- ``per_example_grads(model, x, fn)``: one gradient of a scalar function of each example's
  output with respect to every trainable parameter, (N, P), with ``torch.func``.
- ``seeded(seed)``: a context that seeds torch's global RNG for a block and restores the
  caller's state afterwards, so library code never changes the caller's random stream.
- ``threads(n)``: torch and BLAS (threadpoolctl) on ``n`` threads for a block, restored after
  (``None``: leave them); ``one_thread()`` is ``threads(1)``. The one place threads are pinned.
- ``progress_enabled(progress)``: whether to draw a progress bar: ``progress`` when given, else
  the ``NNLENS_PROGRESS`` switch (on unless 0/false/no). The one place that switch is parsed.

Anything another module needs twice goes here; anything that belongs to one concept
(kernels, spectra, probes, ...) stays in that concept's module.
"""
from __future__ import annotations

import contextlib
import os
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn as nn


def to_numpy(x, dtype=np.float64) -> np.ndarray:
    """A numpy array of ``x`` (tensor on any device, array, list) in ``dtype`` (None: keep it)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x) if dtype is None else np.asarray(x, dtype=dtype)


def rel_error(approx, exact) -> float:
    """‖approx − exact‖_F / ‖exact‖_F of two arrays of the same shape, in float64."""
    a, b = to_numpy(approx), to_numpy(exact)
    if a.shape != b.shape:
        raise ValueError(f"rel_error needs arrays of the same shape, got {a.shape} and {b.shape}")
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def loglog_slope(x, y) -> float:
    """Least-squares slope of log(y) against log(x): the exponent p of y ∝ x^p.

    x, y: (n,) positive values, n >= 2.
    """
    lx, ly = np.log(to_numpy(x).ravel()), np.log(to_numpy(y).ravel())
    if len(lx) != len(ly) or len(lx) < 2:
        raise ValueError(f"loglog_slope needs two sequences of the same length >= 2, got {len(lx)} and {len(ly)}")
    return float(np.polyfit(lx, ly, 1)[0])


@torch.no_grad()
def forward(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """``model(x)`` in eval mode, in batches, on the CPU: (N, ...) outputs.

    The model runs on its own device; its training flag is restored afterwards.
    """
    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    try:
        out = [model(x[i:i + batch_size].to(dev)).cpu() for i in range(0, len(x), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(out)


def per_example_grads(model: nn.Module, x: torch.Tensor, fn: Callable, *targets: torch.Tensor,
                      batch_size: int = 128, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Per-example gradients of ``fn(output, *target)`` with respect to every trainable parameter.

    x: (N, ...) inputs; targets: tensors with N rows (labels, ...), passed per example.
    ``fn`` maps one example's output (C,) (and its targets) to a scalar, e.g.
    ``lambda out, y: F.cross_entropy(out[None], y[None])`` or ``lambda out: out.sum()``.
    Returns (N, P) on the CPU, parameters concatenated in ``named_parameters`` order;
    the model is evaluated in eval mode (``torch.func.vmap(grad(...))``).
    """
    from torch.func import functional_call, grad, vmap

    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    named = {k: v.detach() for k, v in model.named_parameters() if v.requires_grad}
    params = {k: v.to(dtype) if dtype else v for k, v in named.items()}
    consts = {k: v.detach() for k, v in model.named_parameters() if k not in named}
    consts.update({k: (v.to(dtype) if dtype and v.is_floating_point() else v) for k, v in model.named_buffers()})

    def scalar(p, xi, *ti):
        out = functional_call(model, (p, consts), (xi[None],))[0]          # (C,)
        return fn(out, *ti)

    g = vmap(grad(scalar), in_dims=(None, 0, *([0] * len(targets))))
    rows = []
    try:
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size].to(dev)
            xb = xb.to(dtype) if dtype and xb.is_floating_point() else xb
            gb = g(params, xb, *(t[i:i + batch_size].to(dev) for t in targets))
            rows.append(torch.cat([gb[k].flatten(1) for k in params], 1).cpu())   # (B, P)
    finally:
        model.train(was_training)
    return torch.cat(rows)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed torch's global CPU (and CUDA) RNG for the block; restore the caller's state after it."""
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(seed))
        yield


@contextlib.contextmanager
def threads(n: int | None) -> Iterator[None]:
    """torch's intra-op threads and BLAS (through threadpoolctl) on ``n`` for the block, restored after.

    ``None`` leaves both as they are. Usable as a decorator (``@threads(1)``).
    """
    if n is None:
        yield
        return
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"threads must be a positive int or None, got {n!r}")
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(n):
            yield
    finally:
        torch.set_num_threads(before)


def one_thread():
    """``threads(1)``: torch and BLAS on one thread for the block, restored after; also a decorator.

    Every training (``train.fit``) and every sweep job runs this way, so the thread count of the
    machine changes speed only, never a number (parallelism comes from processes: ``sweeps.run``).
    Also for code made of many small and medium matrix operations (probes on a few thousand
    points, spectra of matrices <= 1600 on a side), where threads cost more than they give:
    measured on the 2-core target, study 01's probes took 16 CPU-s with the default threads and
    1.5 CPU-s with one (same numbers); a 150 x 100 SVD 116 ms against ~1 ms under load.
    """
    return threads(1)


def progress_enabled(progress: bool | None = None) -> bool:
    """``progress`` when it is a bool; otherwise the ``NNLENS_PROGRESS`` switch (on unless 0, false or no)."""
    if progress is not None:
        return bool(progress)
    return os.environ.get("NNLENS_PROGRESS", "1").strip().lower() not in ("0", "false", "no", "off")
