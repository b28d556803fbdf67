"""One module per study notebook: the study's drivers and its claims.

| module                                         | notebook                   | paper            |
|------------------------------------------------|----------------------------|------------------|
| ``s01_pca`` (+ ``s01_figures``)                | 01_pca_surrogates.ipynb    | arXiv 2309.15328 |
| ``s02_entk`` (+ ``s02_attribution``, ``s02_plots``) | 02_entk_attribution.ipynb | arXiv 2305.14585 |
| ``s03_spectral`` (+ ``s03_runs``, ``s03_mlp``, ``s03_plots``) | 03_spectral_dynamics.ipynb | arXiv 2211.06506 |
| ``s04_anova`` (+ ``s04_figures``)              | 04_optimizer_anova.ipynb   | arXiv 2307.11684 |
| ``s05_ntk``                                    | 05_ntk_engine.ipynb        | arXiv 2205.12372 |

A study larger than one readable file splits by step: ``s02_attribution`` holds study 02's
poisoning and retraining (LDS) drivers, ``s03_runs`` study 03's training runs and measurements,
``s03_mlp`` its digits-MLP comparison; ``s01_figures``, ``s02_plots``, ``s03_plots`` and
``s04_figures`` hold figures. ``sNN_<name>`` (the module the notebook imports as ``study``) always
holds ``claims``.

Every study module has the same shape:

- Named threshold constants at the top, each with the reason for its value, fixed
  before any run (never tuned to a result).
- Drivers that take the study's frozen profile config (``profiles.Study0N``) and
  return plain results (DataFrames, dicts of arrays): ``run(cfg)`` or a few steps
  the notebook calls in order. They compose the concept modules (``data``,
  ``train``, ``ntk``, ``probes``, ``collapse``, ``spectra``, ``stats``, ...);
  they do not plot and do not write files.
- ``claims(results, cfg) -> list[reports.Row]``: one row per paper claim, with the
  measured value, the threshold (named constant and value) and the verdict.
  Unit-tested on hand-built results, with a case that holds and one that does not.
- Figures of the study as ``plot_*`` functions returning a matplotlib figure
  (the notebook shows it inline and saves it with ``plots.savefig``).

Where new things go: a new kernel in ``nnlens.ntk`` (its ``KINDS`` spec), a new
dataset in ``nnlens.data``, a new profile field in ``nnlens.profiles`` (the study's
dataclass and its smoke/paper overrides), a new claim as one more ``Row`` in the
study's ``claims`` with its threshold constant, a new study as ``sNN_name.py``
here plus ``notebooks/NN_name.ipynb`` (README, "Adding a study").
"""
