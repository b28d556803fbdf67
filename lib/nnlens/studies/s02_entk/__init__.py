"""Study 02: eNTK surrogates and data attribution (arXiv 2305.14585); notebook ``02_entk_attribution``.

| module         | holds                                                                          |
|----------------|--------------------------------------------------------------------------------|
| ``config``     | ``Study02`` (the default profile) and ``PROFILES`` (smoke, paper)               |
| ``runs``       | settings, kernels and kGLM/kSVM surrogates, faithfulness (τ, TAD), projections  |
| ``attribution``| trigger poisoning (02.5) and the linear datamodeling score with TRAK (02.6-02.8)|
| ``claims``     | the thresholds and ``claims(results, cfg)``                                    |
| ``figures``    | ``plot_*`` functions returning figures                                         |

The notebook imports this package as ``study`` and calls the names below.
"""
from .attribution import lds_runs, lds_train_job, poisoning_pairs, poisoning_runs, poisoning_study
from .claims import claims, lds_claims
from .config import PROFILES, Study02
from .figures import (plot_explanations, plot_lds, plot_poisoning, plot_projection_error, plot_tau_binary,
                      plot_tau_paired, plot_tau_tad)
from .runs import (CI_LEVEL, JUDGED_RECIPES, LDS_KERNELS, NTK_KERNELS, Setting, faithfulness_runs, fit_surrogates,
                   label, main_setting, paired_tau, paired_tau_table, projection_error_table, settings,
                   summarize_faithfulness, surrogate_study, train_config)

__all__ = ["CI_LEVEL", "JUDGED_RECIPES", "LDS_KERNELS", "NTK_KERNELS", "PROFILES", "Setting", "Study02", "claims",
           "faithfulness_runs", "fit_surrogates", "label", "lds_claims", "lds_runs", "lds_train_job", "main_setting",
           "paired_tau", "paired_tau_table", "plot_explanations", "plot_lds", "plot_poisoning",
           "plot_projection_error", "plot_tau_binary", "plot_tau_paired", "plot_tau_tad", "poisoning_pairs",
           "poisoning_runs", "poisoning_study", "projection_error_table", "settings", "summarize_faithfulness",
           "surrogate_study", "train_config"]
