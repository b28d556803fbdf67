"""Study 02: eNTK surrogates and data attribution (arXiv 2305.14585); notebook ``02_entk_attribution``.

| module         | holds                                                                                 |
|----------------|---------------------------------------------------------------------------------------|
| ``config``     | ``Study02`` (the default profile) and ``PROFILES`` (smoke, paper)                      |
| ``runs``       | settings, kernels and kGLM surrogates (cv, and the paper's SGD at several random_states)|
| ``faith``      | τ and TAD intervals over seeds × optimizer draws × test points; projection-error slope |
| ``attribution``| trigger poisoning over a sweep of attack strengths (02.5)                              |
| ``lds``        | LDS with floors, class-partialled LDS, noise ceiling, TRAK's cost curve (02.6-02.8)    |
| ``retrain``    | the LDS retraining job (its own module, so its cache survives edits to ``lds``)        |
| ``paper_models``| the paper's three binary setups as its scripts build them; a vmap multi-seed trainer  |
| ``paper_job``  | one setup trained at several seeds: exact eNTK, the paper's kGLM / kSVM, accuracies, τ  |
| ``paper_numbers``| rows 02.11-02.19 against the paper's printed table; a standalone CLI (GPU runs)      |
| ``claims``     | the thresholds and ``claims(results, cfg)``                                            |
| ``figures``    | ``plot_*`` functions returning figures                                                 |

The notebook imports this package as ``study`` and calls the names below.
"""
from .attribution import CEILING, judged_level, poison_blend, poisoning_pairs, poisoning_runs, poisoning_study
from .claims import (
                     ALPHA,
                     LDS_MARGIN,
                     LDS_TRACK_GAP,
                     PROJ_TAU_GAP,
                     TAD_MAX,
                     TAU_MARGIN,
                     claims,
                     equivalence,
                     lds_claims,
                     three_way,
)
from .config import PROFILES, Study02
from .faith import (
                     CI_LEVEL,
                     hier_boot,
                     main_setting,
                     paired_tau,
                     paired_tau_table,
                     projection_error_draws,
                     projection_error_table,
                     slope_fit,
                     slope_null,
                     tad_table,
)
from .figures import (
                     plot_explanations,
                     plot_lds,
                     plot_poisoning,
                     plot_projection_error,
                     plot_tau_binary,
                     plot_tau_paired,
                     plot_tau_tad,
)
from .lds import ceiling, floor_scores, lds_runs
from .paper_numbers import paper_rows, paper_runs
from .paper_numbers import split_seconds as paper_split_seconds
from .paper_numbers import summary as paper_summary
from .retrain import lds_train_job
from .runs import (
                     JUDGED_RECIPES,
                     LDS_KERNELS,
                     NTK_KERNELS,
                     PAPER_RECIPE,
                     Setting,
                     faithfulness_runs,
                     fit_surrogates,
                     label,
                     settings,
                     sgd_convergence,
                     summarize_faithfulness,
                     surrogate_study,
                     train_config,
)

__all__ = ["ALPHA", "CEILING", "CI_LEVEL", "JUDGED_RECIPES", "LDS_KERNELS", "LDS_MARGIN", "LDS_TRACK_GAP",
           "NTK_KERNELS", "PAPER_RECIPE", "PROFILES", "PROJ_TAU_GAP", "Setting", "Study02", "TAD_MAX", "TAU_MARGIN",
           "ceiling", "claims", "equivalence", "faithfulness_runs", "fit_surrogates", "floor_scores", "hier_boot",
           "judged_level", "label", "lds_claims", "lds_runs", "lds_train_job", "main_setting", "paper_rows",
           "paper_runs", "paper_split_seconds", "paper_summary", "paired_tau",
           "paired_tau_table", "plot_explanations", "plot_lds", "plot_poisoning", "plot_projection_error",
           "plot_tau_binary", "plot_tau_paired", "plot_tau_tad", "poison_blend", "poisoning_pairs", "poisoning_runs",
           "poisoning_study", "projection_error_draws", "projection_error_table", "settings", "sgd_convergence",
           "slope_fit", "slope_null", "summarize_faithfulness", "surrogate_study", "tad_table", "three_way",
           "train_config"]
