"""Study 04: optimizer variance by ANOVA (arXiv 2307.11684); notebook ``04_optimizer_anova``.

| module     | holds                                                                         |
|------------|-------------------------------------------------------------------------------|
| ``config`` | ``Study04`` (the default profile) and ``PROFILES`` (smoke, paper)              |
| ``runs``   | the two arms' budgets, learning-rate tuning, the training grid, the analysis   |
| ``claims`` | the thresholds and ``claims(results, cfg)``                                    |
| ``figures``| ``plot_*`` functions returning figures                                         |

The notebook imports this package as ``study`` and calls the names below.
"""
from . import runs, variance
from .claims import EFFECT_RATIO, claims
from .config import PROFILES, Study04
from .figures import plot_curves, plot_distributions, plot_interaction, plot_lr, plot_residuals, plot_variance_heatmap
from .runs import (
                   ALPHA,
                   ARM_LABELS,
                   ARMS,
                   RESPONSE,
                   TUNE_SEED0,
                   analyze,
                   budgets,
                   cells,
                   cpu_seconds,
                   default_store,
                   job_params,
                   orders,
                   run_grid,
                   splits,
                   tables,
                   train_job,
                   tune_lr,
)

__all__ = ["ALPHA", "ARMS", "ARM_LABELS", "EFFECT_RATIO", "PROFILES", "RESPONSE", "Study04", "TUNE_SEED0", "analyze",
           "budgets", "cells", "claims", "cpu_seconds", "default_store", "job_params", "orders", "plot_curves",
           "plot_distributions", "plot_interaction", "plot_lr", "plot_residuals", "plot_variance_heatmap", "run_grid",
           "runs", "splits", "tables", "train_job", "tune_lr", "variance"]
