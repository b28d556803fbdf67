"""The empirical NTK engine: ``from nnlens import ntk; ntk.kernel(model, x1, x2, kind="trntk")``.

- ``engine.py``: the kernels (``kernel``, ``KINDS``, ``METHODS``, ``NTKError``) and their scale
  conventions (against neural-tangents and the papers) in its docstring.
- ``factors.py``: per-example gradient factors of a batch (Gram route, autodiff fallback).
- ``projection.py``: the seeded projections of the proj- kernels (dense Rademacher, Kronecker, Khatri-Rao).
- ``outofcore.py``: ``kernel_to_disk``, kernels larger than memory as Dask tasks into a zarr store.

Study 05's benchmark of this engine lives in ``benchmarks/ntk.py``, not here.
"""
from .engine import KINDS, MEMORY_BUDGET, METHODS, Kind, NTKError, kernel
from .outofcore import drop_factors, kernel_to_disk, open_kernel
from .projection import PROJECTIONS

__all__ = ["kernel", "kernel_to_disk", "open_kernel", "drop_factors", "NTKError", "Kind", "KINDS", "METHODS",
           "PROJECTIONS", "MEMORY_BUDGET"]
