"""Run a grid of independent jobs, locally or on a Dask cluster, resumably.

``run(fn, grid, backend=..., store=...)`` calls ``fn(**params)`` for every dict
of ``grid`` and returns one DataFrame row per job (the params, then the keys of
the dict ``fn`` returned), in grid order.

- ``backend="joblib"`` (the default when no scheduler is given): ``n_jobs`` local
  processes (joblib's loky), each limited to ``threads`` torch/BLAS threads (default 1, so a
  job's numbers do not depend on the machine's thread count; parallelism is across jobs).
- ``backend="dask"``: a ``dask.distributed`` scheduler at ``address`` or, when
  that is empty, at ``$NNLENS_DASK_SCHEDULER`` (so a notebook needs no code change
  to move onto a cluster). ``backend="auto"`` picks dask when an address is known.
- ``backend="sequential"``: a plain loop in this process (the reference, and the
  baseline of ``benchmarks/sweeps.py``).

Resuming: with a ``store`` folder every finished job is written there as one
JSON file named by a hash of (function name, params, source of the function's
module and its nnlens imports: ``nnlens.cache``), atomically (``nnlens._io``)
and by this process as soon as the result arrives, so a sweep killed part-way
reruns only the jobs that did not finish. Results must be JSON-serializable.

A study's jobs live with the study (study 04's ``train_job`` in
``nnlens.studies.s04_anova``); this module knows nothing about training.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import threading
from pathlib import Path
from typing import Callable, Iterable

import pandas as pd

from . import _io, cache, utils

BACKENDS = ("auto", "joblib", "dask", "sequential")
SCHEDULER_ENV = "NNLENS_DASK_SCHEDULER"


def product(**axes) -> list[dict]:
    """The full factorial grid of ``axes`` (name -> values) as a list of dicts, last axis fastest."""
    names = list(axes)
    return [dict(zip(names, values)) for values in itertools.product(*(axes[n] for n in names))]


def job_key(fn: Callable, params: dict, code: str | None = None) -> str:
    """A stable hash of the job: the function's qualified name, its params and its code.

    ``code`` defaults to ``cache.code_hash(fn.__module__)``: the source of the job's module
    and of every nnlens module it imports, so stored results of old code are not reused.
    """
    code = code if code is not None else cache.code_hash(fn.__module__)
    doc = json.dumps({"fn": f"{fn.__module__}.{fn.__qualname__}", "params": params, "code": code},
                     sort_keys=True, default=str)
    return hashlib.sha256(doc.encode()).hexdigest()[:20]


_LOCK = threading.Lock()


def _call(fn: Callable, params: dict, threads: int | None) -> dict:
    """Run one job with ``threads`` torch/BLAS threads (None: as they are), restored after it.

    torch's random state is process-global, so jobs that seed it cannot share a
    process concurrently: a threaded worker (a Dask worker with several threads)
    runs its jobs one at a time. Parallelism comes from processes.
    """
    with _LOCK, utils.threads(threads):
        out = fn(**params)
    if not isinstance(out, dict):
        raise TypeError(f"a sweep job must return a dict, {fn.__qualname__} returned {type(out).__name__}")
    return out


def _load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())["result"]
    except (OSError, ValueError, KeyError):
        return None  # a missing or unreadable file is a job still to run


def scheduler_address(address: str | None = None) -> str | None:
    """The Dask scheduler to use: ``address`` when given, else ``$NNLENS_DASK_SCHEDULER``, else None (local).

    The one place that reads the switch; ``ntk.kernel_to_disk`` uses it too."""
    return address or os.environ.get(SCHEDULER_ENV) or None


def _resolve_backend(backend: str, address: str | None) -> tuple[str, str | None]:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid backends: {', '.join(BACKENDS)}")
    address = scheduler_address(address)
    if backend == "auto":
        backend = "dask" if address else "joblib"
    if backend == "dask" and not address:
        raise ValueError(f"backend='dask' needs a scheduler address: pass address='tcp://host:8786' "
                         f"or set ${SCHEDULER_ENV}")
    return backend, address


def _iter_joblib(fn, todo, n_jobs, threads):
    from joblib import Parallel, delayed

    # batch_size=1: jobs differ in cost by 100x, and auto-batching would leave one worker idle at the end
    par = Parallel(n_jobs=n_jobs, backend="loky", batch_size=1, return_as="generator_unordered")
    yield from par(delayed(_indexed)(fn, i, p, threads) for i, p in todo)


def _indexed(fn, i, params, threads):
    return i, _call(fn, params, threads)


def _iter_dask(fn, todo, address, threads):
    from distributed import Client, as_completed

    with Client(address) as client:      # as_completed needs it as the default client
        futures = [client.submit(_indexed, fn, i, p, threads, pure=False) for i, p in todo]
        for fut in as_completed(futures):
            yield fut.result()


def _progress_bar(todo: int, total: int, fn: Callable):
    """A tqdm.auto bar over the jobs still to run (JupyterLab widget or stderr), unless NNLENS_PROGRESS=0."""
    if todo < 2 or not utils.progress_enabled():
        return None
    from tqdm.auto import tqdm

    name, done = getattr(fn, "__name__", type(fn).__name__), total - todo
    return tqdm(total=todo, desc=f"{name} ({done} of {total} jobs stored)" if done else name,
                unit="job", leave=False)


def run(fn: Callable, grid: Iterable[dict], *, backend: str = "auto", store: str | os.PathLike | None = None,
        n_jobs: int = 2, threads: int | None = 1, address: str | None = None) -> pd.DataFrame:
    """Run ``fn(**params)`` for every ``params`` in ``grid``; one row per job, in grid order.

    store: folder of finished jobs (one ``<key>.json`` each); jobs found there are not rerun.
    n_jobs: local processes (joblib). threads: torch/BLAS threads of every job, in a worker or in
    this process (restored after; None: leave as is).
    address: Dask scheduler (``tcp://...``); empty means ``$NNLENS_DASK_SCHEDULER``.
    """
    grid = [dict(p) for p in grid]
    backend, address = _resolve_backend(backend, address)
    store = Path(store) if store is not None else None
    code = cache.code_hash(fn.__module__)        # once per sweep: every job runs the same code
    keys = [job_key(fn, p, code) for p in grid]
    results: list[dict | None] = [None] * len(grid)
    if store is not None:
        for i, k in enumerate(keys):
            results[i] = _load(store / f"{k}.json")
    todo = [(i, grid[i]) for i in range(len(grid)) if results[i] is None]
    if todo:
        if backend == "sequential" or (backend == "joblib" and (n_jobs == 1 or len(todo) == 1)):
            stream = ((i, _call(fn, p, threads)) for i, p in todo)
        elif backend == "joblib":
            stream = _iter_joblib(fn, todo, n_jobs, threads)
        else:
            stream = _iter_dask(fn, todo, address, threads)
        bar = _progress_bar(len(todo), len(grid), fn)
        for i, out in stream:             # store each job as it arrives, so a kill loses only running jobs
            results[i] = out
            if store is not None:
                doc = {"fn": f"{fn.__module__}.{fn.__qualname__}", "params": grid[i], "result": out}
                _io.write_text(store / f"{keys[i]}.json", json.dumps(doc, sort_keys=True, default=str) + "\n")
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
    rows = [{**p, **r} for p, r in zip(grid, results)]
    return pd.DataFrame(rows)

