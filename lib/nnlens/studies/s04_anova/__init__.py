"""Study 04: optimizer variance by ANOVA (arXiv 2307.11684); notebook ``04_optimizer_anova``.

| module     | holds                                                                         |
|------------|-------------------------------------------------------------------------------|
| ``config`` | ``Study04`` (the default profile) and ``PROFILES`` (smoke, paper)              |
| ``runs``   | the arms' budgets, learning-rate tuning, the training grid                     |
| ``arms``   | the converged arm (early stopping); why the compute-matched arms exist        |
| ``analysis``| per-cell summaries, each arm's ANOVA and variance tests, the tables, eta^2   |
| ``claims`` | the thresholds and ``claims(results, cfg)``                                    |
| ``figures``| ``plot_*`` functions returning figures                                         |

The notebook imports this package as ``study`` and calls the names below.
"""
from . import arms, runs, variance
from .analysis import analyze, cells, cpu_seconds, eta_table, tables
from .arms import PATIENCE, run_converged, stack
from .claims import EFFECT_RATIO, claims
from .config import PROFILES, Study04
from .figures import plot_curves, plot_distributions, plot_interaction, plot_lr, plot_residuals, plot_variance_heatmap
from .runs import (
                   ALPHA,
                   ARM_LABELS,
                   ARMS,
                   CONVERGED_CAP,
                   RESPONSE,
                   TUNE_SEED0,
                   TUNED,
                   budgets,
                   default_store,
                   job_params,
                   orders,
                   run_grid,
                   seeds,
                   splits,
                   train_job,
                   tune_lr,
)

__all__ = ["ALPHA", "ARMS", "ARM_LABELS", "CONVERGED_CAP", "EFFECT_RATIO", "PATIENCE", "PROFILES", "RESPONSE", "TUNED",
           "Study04", "TUNE_SEED0", "analyze", "arms", "budgets", "cells", "claims", "cpu_seconds", "default_store",
           "eta_table", "job_params", "orders", "plot_curves", "plot_distributions", "plot_interaction", "plot_lr",
           "plot_residuals", "plot_variance_heatmap", "run_converged", "run_grid", "runs", "seeds", "splits", "stack",
           "tables", "train_job", "tune_lr", "variance"]
