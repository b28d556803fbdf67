"""The empirical NTK engine: ``from nnlens import ntk; ntk.kernel(model, x1, x2, kind="trntk")``.

- ``engine.py``: the kernels (``kernel``, ``KINDS``, ``METHODS``, ``NTKError``) and their scale
  conventions (against neural-tangents and the papers) in its docstring.
- ``factors.py``: per-example gradient factors of a batch (Gram route, autodiff fallback).
- ``projection.py``: the seeded Rademacher projection of the proj- kernels.

Study 05's benchmark of this engine lives in ``benchmarks/ntk.py``, not here.
"""
from .engine import KINDS, MEMORY_BUDGET, METHODS, Kind, NTKError, kernel

__all__ = ["kernel", "NTKError", "Kind", "KINDS", "METHODS", "MEMORY_BUDGET"]
