"""Study 01: PCA surrogates and neural collapse (arXiv 2309.15328); notebook ``01_pca_surrogates``.

| module     | holds                                                                     |
|------------|---------------------------------------------------------------------------|
| ``config`` | ``Study01`` (the default profile) and ``PROFILES`` (smoke, paper)          |
| ``runs``   | drivers: data, training, layer-wise PCA probes, collapse, onsets, v*       |
| ``ladder`` | networks beyond the seeds: the width ladder (01.1), the onset null (01.5) |
| ``claims`` | the thresholds and ``claims(results, cfg)``                                |
| ``figures``| ``plot_*`` functions returning figures                                     |

The notebook imports this package as ``study`` and calls the names below.
"""
from .claims import ROWS, V_STAR_MAX, best_per_layer, claims, equivalence, nc1_null_quantile
from .config import PROFILES, Study01, networks
from .figures import (
    plot_accuracy_vs_k,
    plot_accuracy_vs_variance,
    plot_collapse,
    plot_scree,
    plot_training,
    plot_vstar,
    plot_vstar_vs_width,
)
from .ladder import PAPER_WIDTH, network_onsets, trend
from .ladder import table as ladder_table
from .runs import (
                      EXTRA_KS,
                      K_DETERMINE,
                      NEAR_NETWORK,
                      SVM_KS,
                      determine_gaps,
                      layer_features,
                      load_data,
                      onsets,
                      probe_layer,
                      run,
                      run_seed,
                      summary,
                      top_k,
                      train_config,
                      train_network,
                      vstar,
)

__all__ = ["EXTRA_KS", "K_DETERMINE", "NEAR_NETWORK", "PROFILES", "ROWS", "SVM_KS", "Study01", "V_STAR_MAX",
           "best_per_layer", "claims", "determine_gaps", "equivalence", "layer_features", "load_data",
           "nc1_null_quantile", "onsets", "plot_accuracy_vs_k", "plot_accuracy_vs_variance", "plot_collapse",
           "plot_scree", "plot_training", "plot_vstar", "plot_vstar_vs_width", "PAPER_WIDTH", "network_onsets",
           "networks", "trend", "ladder_table", "probe_layer", "run", "run_seed", "summary", "top_k",
           "train_config", "train_network", "vstar"]
