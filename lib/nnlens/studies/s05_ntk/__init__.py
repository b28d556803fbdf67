"""Study 05: the NTK engine (arXiv 2205.12372, torchNTK); notebook ``05_ntk_engine``.

| module     | holds                                                                         |
|------------|-------------------------------------------------------------------------------|
| ``config`` | ``Study05`` (the default profile) and ``PROFILES`` (smoke, paper)              |
| ``runs``   | the benchmark table (``benchmarks/ntk.py``) cut into tables, float64 checks     |
| ``claims`` | the thresholds and ``claims(results, cfg)``                                    |
| ``figures``| ``plot_scaling``, ``plot_projection``                                          |

The notebook imports this package as ``study`` and calls the names below.
"""
from .claims import claims
from .config import PROFILES, Study05
from .figures import plot_projection, plot_scaling
from .runs import (
    SECTIONS,
    bench_ready,
    config_id,
    layerwise_memory,
    limit_checks,
    load_bench,
    projection_cost,
    projection_error,
    summary,
    table,
)

BENCHMARK = "ntk"   # benchmarks/ntk.py writes bench/ntk.csv, which the notebook reads; the runner runs it first

__all__ = ["BENCHMARK", "PROFILES", "SECTIONS", "Study05", "bench_ready", "claims", "config_id", "layerwise_memory",
           "limit_checks", "load_bench", "plot_projection", "plot_scaling", "projection_cost", "projection_error",
           "summary", "table"]
