"""Study 03: spectral dynamics of linear-width networks (arXiv 2211.06506); notebook ``03_spectral_dynamics``.

| module      | holds                                                                               |
|-------------|-------------------------------------------------------------------------------------|
| ``config``  | ``Study03`` (the default profile) and ``PROFILES`` (smoke, paper)                    |
| ``twolayer``| the two-layer model's training runs and spectral measurements                        |
| ``runs``    | drivers: the regimes, Adam's lr search, the heavy-tail null, the width ladder, κ sweep |
| ``mlp``     | the real-data MLP comparison                                                         |
| ``claims``  | the thresholds and ``claims(results, cfg)``                                          |
| ``figures`` | ``plot_*`` functions returning figures                                               |

The notebook imports this package as ``study`` and calls the names below.
"""
from .claims import claims
from .config import PROFILES, Study03
from .figures import plot_dynamics, plot_esd, plot_kappa_sweep, plot_kernel_spectra, plot_ladder
from .mlp import esd, run_mlp
from .runs import (
                   LABELS,
                   REGIMES,
                   init,
                   kappa_sweep,
                   kappas,
                   label,
                   ladder_slopes,
                   measure,
                   null_alphas,
                   outlier_edge,
                   run_ladder,
                   run_regimes,
                   seeds,
                   sizes,
                   spike_lr,
                   tune_adam,
)

__all__ = ["LABELS", "PROFILES", "REGIMES", "Study03", "claims", "esd", "init", "kappa_sweep", "kappas", "label",
           "ladder_slopes", "measure", "null_alphas", "outlier_edge", "plot_dynamics", "plot_esd", "plot_kappa_sweep",
           "plot_kernel_spectra", "plot_ladder", "run_ladder", "run_mlp", "run_regimes", "seeds", "sizes", "spike_lr",
           "tune_adam"]
