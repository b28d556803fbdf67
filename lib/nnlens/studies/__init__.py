"""The studies wing: one package per study notebook, discovered by ``profiles.studies()``.

| package          | notebook                    | paper            |
|------------------|-----------------------------|------------------|
| ``s01_pca``      | 01_pca_surrogates.ipynb     | arXiv 2309.15328 |
| ``s02_entk``     | 02_entk_attribution.ipynb   | arXiv 2305.14585 |
| ``s03_spectral`` | 03_spectral_dynamics.ipynb  | arXiv 2211.06506 |
| ``s04_anova``    | 04_optimizer_anova.ipynb    | arXiv 2307.11684 |
| ``s05_ntk``      | 05_ntk_engine.ipynb         | arXiv 2205.12372 |

Every study package has the same shape:

- ``config.py``: the frozen dataclass ``StudyNN`` (the default profile, each field documented
  where it is declared) and ``PROFILES``, the smoke and paper profiles as overrides of it.
- ``runs.py`` (split by step when longer than a screenful of screens): drivers that take the
  config and return plain results (DataFrames, dicts of arrays). They compose the science core
  (``data``, ``train``, ``ntk``, ``probes``, ``collapse``, ``spectra``, ``stats``, ...); they
  neither plot nor write files.
- ``claims.py``: the thresholds, each with the reason for its value, and
  ``claims(results, cfg) -> list[report.Row]``, one row per claim; unit-tested on hand-built
  results with a case that holds and one that does not.
- ``figures.py``: ``plot_*`` functions returning a matplotlib figure (the notebook shows it
  inline and saves it with ``out.savefig``).
- ``__init__.py``: the facade the notebook imports as ``study``.

Imports point down only: a study imports the science core and ``report``, never ``workbook``
(a test checks the import graph). Adding a study is one package here and one notebook
``notebooks/NN_name.ipynb`` (README, "Adding a study"); nothing else changes.
"""
