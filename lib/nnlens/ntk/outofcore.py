"""Data-set-scale kernels out of core: an (N1, N2) kernel written block by block to a chunked on-disk array.

``kernel_to_disk(model, x1, x2=None, out=PATH, kind="trntk", normalize=True)`` computes the same
kernel as ``ntk.kernel`` (engine.py: its kinds, scale conventions and projections) when the result
does not fit in memory: 70,000 inputs give a 70,000 x 70,000 trNTK, 19.6 GB in float32. It returns
the kernel as a read-only ``zarr.Array`` (zarr v3, a directory at ``out``; ``dask.array.from_zarr``
reads it lazily). Two passes, each a set of Dask tasks:

1. factors: every ``block`` inputs -> their per-layer factors (``factors.Features``, the structured
   engine: Gram factors of Linear/Conv2d layers, autodiff Jacobians of the rest, or the projected
   gradients with ``proj_dim``), written once to the store, with their self-kernels K(x, x).
2. blocks: one task per row block i loads its factors once and, for every column block j (j >= i
   when x2 is None: the symmetric half is computed once and block (i, j) mirrored into (j, i)),
   loads the column factors, sums ``factors.pair`` over layers, divides by sqrt(K(x,x) K(x',x'))
   when ``normalize`` (the diagonal is known from pass 1, so normalization is exact out of core)
   and writes the chunk. Column factors come from disk, not from recomputation: the operating
   system's page cache keeps them while they fit in memory, and when they do not the kernel still
   finishes at disk speed. The factors are deleted at the end unless ``keep_factors``.

Resuming: every finished factor chunk and kernel block is marked in the store (``done_f1``,
``done_f2``, ``done``: uint8, one chunk per block, written after the data; zarr writes each chunk
file atomically), so a run killed at any point and called again with the same arguments computes
only what is not marked, and gives the same bytes. The store's attributes record the kernel's
spec and a hash of the model's parameters and of the inputs; a call whose spec differs refuses
to mix (pass ``overwrite=True`` to start again).

Scheduling: the local threaded scheduler by default (``workers`` threads, each task on ``threads``
torch threads, so a block's bytes do not depend on the worker count); a ``dask.distributed``
cluster when ``scheduler`` is an address or a ``Client``, or when ``$NNLENS_DASK_SCHEDULER`` names
one (``sweeps.scheduler_address``: the sweeps' switch). Cluster workers must see ``out``.

Store layout (group ``out``): ``kernel`` (N1, N2[, C, C]) in chunks of (block, block[, C, C]),
NaN until written; ``diag1`` (N1[, C]), ``diag2`` (N2[, C]): raw self-kernels; ``factors/{1,2}/<k>/
{a,g,j}``: factor k of every input, (N, ...) in chunks of ``block`` inputs.
"""
from __future__ import annotations

import copy
import hashlib
import math
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from .. import sweeps
from .engine import MEMORY_BUDGET, Kind, NTKError, _bar, _check, block_factors, cosine_scale, prepared, self_kernel
from .factors import Features, Flat, Gram, pair
from .projection import project

FORMAT = 1                       # version of the store layout
LOCAL = ("threads", "sync")      # dask's local schedulers accepted by name


def _digest(*tensors) -> str:
    h = hashlib.blake2b(digest_size=12)
    for t in tensors:
        a = t.detach().cpu().contiguous()
        h.update(str((tuple(a.shape), str(a.dtype))).encode())
        h.update(a.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _set_threads(threads: int | None) -> None:
    if threads and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def _chunk_factors(feat: Features, x: torch.Tensor, proj) -> list:
    """Factors of one block of inputs: the engine's (``block_factors``) or one projected ``Flat``."""
    if proj is None:
        return block_factors(feat, x)
    k, seed, projection = proj
    z = project(feat, [x], k, seed, len(x), MEMORY_BUDGET, None, projection)[0]       # (B, C', K)
    return [Flat("projection", z)]


def _layout(fs: list) -> list[dict]:
    """What the store keeps of each factor: its type and the trailing shapes of its arrays."""
    out = []
    for f in fs:
        if isinstance(f, Flat):
            out.append({"type": "flat", "name": f.name, "j": list(f.j.shape[1:]), "index": f.index})
        else:
            out.append({"type": "gram", "name": f.name, "a": list(f.a.shape[1:]), "g": list(f.g.shape[1:]),
                        "w_index": f.w_index, "b_index": f.b_index})
    return out


def _factor_task(path: str, which: int, i: int, x: torch.Tensor, model: nn.Module | bytes, kind: Kind, structured: bool,
                 n_out: int, proj, threads: int | None) -> int:
    """Pass 1: the factors and self-kernels of input block i of set ``which`` (1 or 2), written and marked."""
    import zarr
    _set_threads(threads)
    # a copy: hooks are per model and local tasks share threads; bytes: pickled for a cluster (distributed's own
    # serializer of nn.Module rebuilds its hook dicts as plain dicts, which torch cannot hook into)
    model = pickle.loads(model) if isinstance(model, bytes) else copy.deepcopy(model)
    feat = Features(model, kind, structured)
    feat.n_out = n_out
    fs = _chunk_factors(feat, x, proj)
    g = zarr.open_group(path, mode="r+")
    bs = g["kernel"].chunks[which - 1]
    rows = slice(i * bs, i * bs + len(x))
    for k, f in enumerate(fs):
        for name, t in ((("j", f.j),) if isinstance(f, Flat) else (("a", f.a), ("g", f.g))):
            g[f"factors/{which}/{k}/{name}"][rows] = t.detach().cpu().numpy()
    g[f"diag{which}"][rows] = self_kernel(fs, kind).detach().cpu().numpy()
    g[f"done_f{which}"][i] = 1
    return 1


def _load(g, which: int, i: int, layout: list[dict], device) -> tuple[list, torch.Tensor]:
    """The factors (in the engine's types) and self-kernels of input block i of set ``which``."""
    bs = g["kernel"].chunks[which - 1]
    rows = slice(i * bs, (i + 1) * bs)
    get = lambda name: torch.from_numpy(g[name][rows]).to(device)                    # noqa: E731
    fs = []
    for k, spec in enumerate(layout):
        base = f"factors/{which}/{k}"
        if spec["type"] == "flat":
            fs.append(Flat(spec["name"], get(f"{base}/j"), spec["index"]))
        else:
            fs.append(Gram(spec["name"], get(f"{base}/a"), get(f"{base}/g"), spec["w_index"], spec["b_index"]))
    return fs, get(f"diag{which}")


def _write_block(g, i: int, j: int, blk: np.ndarray, sym: bool, class_pairs: bool) -> None:
    """Kernel block (i, j) (B1, B2[, C, C]) and, off the diagonal of a symmetric kernel, its mirror (j, i)."""
    kern = g["kernel"]
    b1, b2 = kern.chunks[:2]
    kern[i * b1:i * b1 + blk.shape[0], j * b2:j * b2 + blk.shape[1]] = blk
    if sym and j != i:
        kern[j * b1:j * b1 + blk.shape[1], i * b2:i * b2 + blk.shape[0]] = (
            blk.transpose(1, 0, 3, 2) if class_pairs else blk.T)
    g["done"][i, j] = 1


def _row_task(path: str, i: int, cols: list[int], kind: Kind, normalize: bool, device, threads: int | None) -> int:
    """Pass 2: kernel blocks (i, j) for j in ``cols``; row factors loaded once, column factors per block."""
    import zarr
    _set_threads(threads)
    g = zarr.open_group(path, mode="r+")
    meta = g.attrs["nnlens"]
    layout, sym = meta["layout"], meta["symmetric"]
    f1, d1 = _load(g, 1, i, layout, device)
    for j in cols:
        f2, d2 = (f1, d1) if sym and j == i else _load(g, 1 if sym else 2, j, layout, device)
        blk = sum(pair(a, b, kind) for a, b in zip(f1, f2))                          # (B1, B2[, C, C])
        if normalize:
            blk = blk / cosine_scale(d1, d2, kind)
        _write_block(g, i, j, blk.detach().cpu().numpy(), sym, kind.class_pairs)
    return len(cols)


def _open(path: Path, meta: dict, shapes: dict, overwrite: bool):
    """The store at ``path``: created with ``meta`` and ``shapes``, or reopened when its spec matches."""
    import zarr
    if overwrite and path.exists():
        shutil.rmtree(path)
    if (path / "zarr.json").exists():
        g = zarr.open_group(path, mode="r+")
        old = dict(g.attrs.get("nnlens", {}))
        diff = sorted(k for k in set(old) | set(meta) if old.get(k) != meta.get(k))
        if diff:
            raise NTKError(f"{path} holds a different kernel ({', '.join(diff)} differ); pass overwrite=True to "
                           "replace it, or choose another path")
        return g
    if path.exists() and any(path.iterdir()):
        raise NTKError(f"{path} exists and is not a kernel store; choose an empty or new path")
    g = zarr.open_group(path, mode="w")
    for name, (shape, chunks, dtype, fill) in shapes.items():
        g.create_array(name, shape=shape, chunks=chunks, dtype=dtype, fill_value=fill, compressors=None)
    g.attrs["nnlens"] = meta
    return g


def _shapes(meta: dict, n_out: int, np_dtype) -> dict:
    """name -> (shape, chunks, dtype, fill value) of every array of a new store."""
    n1, n2, bs, cp = meta["n1"], meta["n2"], meta["block"], meta["class_pairs"]
    nb1, nb2 = math.ceil(n1 / bs), math.ceil(n2 / bs)
    extra = (n_out, n_out) if cp else ()
    dshape = (n_out,) if cp else ()
    out = {"kernel": ((n1, n2, *extra), (bs, bs, *extra), np_dtype, np.nan),
           "done": ((nb1, nb2), (1, 1), np.uint8, 0)}
    for which, n, nb in ((1, n1, nb1), (2, n2, nb2)):
        if which == 2 and meta["symmetric"]:
            continue
        out[f"diag{which}"] = ((n, *dshape), (bs, *dshape), np_dtype, np.nan)
        out[f"done_f{which}"] = ((nb,), (1,), np.uint8, 0)
        for k, f in enumerate(meta["layout"]):
            for name in (("j",) if f["type"] == "flat" else ("a", "g")):
                tail = tuple(f[name])
                out[f"factors/{which}/{k}/{name}"] = ((n, *tail), (bs, *tail), np_dtype, 0)
    return out


def _client(scheduler):
    """A ``distributed.Client`` for ``scheduler`` (an address or a Client), or None for dask's local schedulers."""
    if scheduler is not None and not isinstance(scheduler, str):
        return scheduler                                        # a Client (anything with .submit)
    address = None if scheduler in LOCAL else sweeps.scheduler_address(scheduler)
    if not address:
        return None
    from distributed import Client
    return Client(address)


def _run(tasks: list, client, local: str, workers: int | None, bar) -> None:
    """Run ``(fn, args)`` tasks as Dask tasks, in the order listed (biggest first); ``bar`` advances by each result.

    client: a ``distributed.Client`` or None for dask's local ``local`` scheduler (``"threads"`` or ``"sync"``)."""
    try:
        _run_tasks(tasks, client, local, workers, bar)
    finally:
        if bar is not None:
            bar.close()


def _run_tasks(tasks: list, client, local: str, workers: int | None, bar) -> None:
    if not tasks:
        return
    if client is None:
        from dask import local as dask_local
        from dask import threaded
        from dask.callbacks import Callback

        graph = {f"nnlens-ntk-{n:06d}": (fn, *args) for n, (fn, args) in enumerate(tasks)}

        class Progress(Callback):
            def _posttask(self, key, result, dsk, state, worker_id):
                if bar is not None and key in graph:
                    bar.update(result)
        with Progress():
            if local == "sync":
                dask_local.get_sync(graph, list(graph))
            else:
                threaded.get(graph, list(graph), num_workers=workers or os.cpu_count() or 1)
        return
    from distributed import as_completed
    models = {id(a): a for _, args in tasks for a in args if isinstance(a, nn.Module)}
    shared = {k: client.scatter(pickle.dumps(m), broadcast=True) for k, m in models.items()}   # once per worker
    futures = [client.submit(fn, *[shared.get(id(a), a) for a in args], pure=False, priority=-n)
               for n, (fn, args) in enumerate(tasks)]
    for fut in as_completed(futures):
        done = fut.result()
        if bar is not None:
            bar.update(done)


def _bar_named(progress, total: int, kind: Kind, what: str):
    bar = _bar(progress, total, kind)
    if bar is not None:
        bar.set_description(f"ntk {kind.name} {what}", refresh=False)
    return bar


def _meta(feat: Features, x1, x2, spec: Kind, normalize, proj, method, block) -> dict:
    """The store's record of what it holds (a resumed call must match it)."""
    layout = _layout(_chunk_factors(feat, x1[:1], proj))
    return {"format": FORMAT, "kind": spec.name, "sum_logits": spec.sum_logits, "class_pairs": spec.class_pairs,
            "normalize": bool(normalize), "proj_dim": proj[0] if proj else None, "seed": proj[1] if proj else None,
            "projection": proj[2] if proj else None, "method": method, "block": block, "dtype": str(x1.dtype),
            "n1": len(x1), "n2": len(x1 if x2 is None else x2), "symmetric": x2 is None,
            "model": _digest(*feat.model.state_dict().values()), "x1": _digest(x1),
            "x2": None if x2 is None else _digest(x2), "layout": layout}


def kernel_to_disk(model: nn.Module, x1: torch.Tensor, x2: torch.Tensor | None = None, *, out: str | os.PathLike,
                   kind: str | Kind = "trntk", normalize: bool = False, proj_dim: int | None = None, seed: int = 0,
                   projection: str = "dense", method: str = "auto", block: int = 2048, device=None, dtype=None,
                   scheduler=None, workers: int | None = None, threads: int | None = 1, keep_factors: bool = False,
                   overwrite: bool = False, progress: bool | None = None):
    """The empirical NTK of ``model`` between ``x1`` (N1, ...) and ``x2`` (N2, ...; None: x1), written to ``out``.

    Returns the kernel as a read-only ``zarr.Array`` of shape (N1, N2) (``"pntk"``/``"trntk"``) or
    (N1, N2, C, C) (``"entk"``), equal to ``ntk.kernel`` with the same arguments. ``kind``,
    ``normalize``, ``proj_dim``, ``seed``, ``projection``, ``method``, ``device``, ``dtype``: as in
    ``ntk.kernel`` (a dense projection draws R once per block of inputs). ``block``: inputs per
    block, the store's chunk edge (a task holds two blocks' factors and one kernel block).
    ``scheduler``: None (``$NNLENS_DASK_SCHEDULER``, else dask's local threads), ``"threads"``,
    ``"sync"``, or a ``distributed`` address or ``Client``. ``workers``: local threads (None: the CPU
    count); ``threads``: torch threads per task. ``keep_factors``: keep the per-input factors once
    the kernel is complete. ``overwrite``: replace a store that holds a different kernel.
    ``progress``: tqdm bars over factor blocks and kernel blocks (None: when NNLENS_PROGRESS allows).
    """
    spec = _check(model, x1, x2, kind, method, proj_dim, seed, False, block, MEMORY_BUDGET, threads, projection)
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise NTKError(f"workers must be a positive int or None (the CPU count), got {workers!r}")
    path, sym = Path(out), x2 is None
    client = _client(scheduler)
    local = scheduler if scheduler in LOCAL else "threads"
    try:
        with prepared(model, x1, x2, spec, method, device, dtype, threads if client is None else None) as \
                (feat, x1, x2):
            proj = (proj_dim, seed, projection) if proj_dim else None
            meta = _meta(feat, x1, x2, spec, normalize, proj, method, block)
            np_dtype = torch.empty(0, dtype=x1.dtype).numpy().dtype
            g = _open(path, meta, _shapes(meta, feat.n_out, np_dtype), overwrite)
            tasks = []
            for which, x in ((1, x1),) if sym else ((1, x1), (2, x2)):
                if f"done_f{which}" not in g:                  # factors deleted: the kernel is complete
                    continue
                done = g[f"done_f{which}"][:]
                for i in np.flatnonzero(done == 0).tolist():
                    xb = x[i * block:(i + 1) * block]
                    tasks.append((_factor_task, (str(path), which, i, xb if client is None else xb.clone(),
                                                 feat.model, spec, method != "autodiff", feat.n_out, proj, threads)))
            _run(tasks, client, local, workers, _bar_named(progress, len(tasks), spec, "factors"))
            done = g["done"][:]
            rows = [(i, [j for j in range(i if sym else 0, done.shape[1]) if not done[i, j]]) for i in range(len(done))]
            rows = [(i, cols) for i, cols in rows if cols]
            tasks = [(_row_task, (str(path), i, cols, spec, bool(normalize), x1.device, threads)) for i, cols in rows]
            _run(tasks, client, local, workers, _bar_named(progress, sum(len(c) for _, c in rows), spec, "blocks"))
    finally:
        if client is not None and client is not scheduler:
            client.close()
    kernel = open_kernel(path)
    if not keep_factors:
        drop_factors(path)
    return kernel


def drop_factors(out: str | os.PathLike) -> None:
    """Delete the per-input factors of a complete kernel store (what ``keep_factors=False`` does at the end)."""
    open_kernel(out)                                           # refuses an incomplete store: it still needs them
    for name in ("factors", "done_f1", "done_f2"):
        shutil.rmtree(Path(out) / name, ignore_errors=True)


def open_kernel(out: str | os.PathLike):
    """The kernel stored at ``out`` by ``kernel_to_disk``, read-only; an error when it is not complete."""
    import zarr
    path = Path(out)
    if not (path / "zarr.json").exists():
        raise NTKError(f"no kernel store at {path}; compute it with ntk.kernel_to_disk(model, x, out=...)")
    g = zarr.open_group(path, mode="r")
    done, sym = g["done"][:], g.attrs["nnlens"]["symmetric"]
    need = np.triu(np.ones_like(done, dtype=bool)) if sym else np.ones_like(done, dtype=bool)
    missing = int((need & (done == 0)).sum())
    if missing:
        raise NTKError(f"the kernel at {path} is incomplete ({missing} of {int(need.sum())} blocks missing); "
                       "call kernel_to_disk again with the same arguments to resume")
    return g["kernel"]
