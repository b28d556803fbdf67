"""The workbook wing: ``make reproduce`` and its tools. Nothing in the library imports it.

| module        | owns                                                                           |
|---------------|--------------------------------------------------------------------------------|
| ``runner``    | runs study notebooks headless (papermill) into staging, publishes all or nothing |
| ``bookkeeping``| benchmarks first, up-to-date rule, timings, the reports index, stage progress |
| ``publish``   | moving a study's staged reports into place atomically, scrubbing volatile metadata |
| ``preflight`` | what a run needs before it starts: data on disk, a writable reports folder, threads |
| ``site``      | the static HTML site: summary, claims ledger, study pages (nbconvert template) |
| ``sitetext``  | the site's words: findings from the ledger, counts, provenance, glossary        |
| ``nbfiles``   | notebooks as JupyterLab saves them, outputs stripped (``make normalize``)        |
| ``stability`` | reruns with nuisances varied (threads, a seed) into scratch; ``stability.csv`` (``make stability``) |
"""
