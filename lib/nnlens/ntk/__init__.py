"""The empirical NTK engine (see ``engine`` for the kernels and ``bench`` for study 05's benchmark).

``from nnlens import ntk; ntk.kernel(model, x1, x2, kind="trntk")``.
"""
from .engine import CACHE_BYTES, KINDS, METHODS, NTKError, kernel

__all__ = ["kernel", "NTKError", "KINDS", "METHODS", "CACHE_BYTES"]
