# Ativo — the two commands: `make run` (set up and run the local platform) and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.ativo-installed
# The host's PATH, before .venv/bin goes first: uv and the base Python are the host's, never the venv's (a venv's
# pip refuses `--user`, which broke `make run` after a pull that changed requirements.txt).
HOST_PATH := $(PATH)
UV := $(shell command -v uv 2>/dev/null || { test -x "$$HOME/.local/bin/uv" && echo "$$HOME/.local/bin/uv"; })
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: help setup data test-packages run demo-drift demo-erasure stop status airflow-env system-packages test test-fast test-unit test-security test-dags test-model test-component test-e2e test-integration test-browser lint docs bench bench-smoke clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'
	@echo "  make test-<tier>        one tier: test-unit, test-security, test-dags, test-model, test-component, test-e2e"

$(STAMP): requirements.txt pyproject.toml
	@UV="$(UV)"; \
	  if [ -z "$$UV" ]; then \
	    echo "==> installing uv (fast pip)"; PATH="$(HOST_PATH)" $(PYTHON) -m pip install --quiet --user uv; \
	    UV="$$HOME/.local/bin/uv"; \
	  fi; \
	  echo "==> creating $(VENV) and installing the pinned dependencies (about 1 minute)"; \
	  PATH="$(HOST_PATH)" $$UV venv --quiet --seed --allow-existing -p $(PYTHON) $(VENV) && \
	  $$UV pip install --quiet -p $(PY) -r requirements.txt && \
	  $$UV pip install --quiet -p $(PY) --no-deps -e . && \
	  rm -rf include/ativo.egg-info  # the build's copy of the metadata: include/ is on sys.path, and Airflow would load the plugin twice
	@touch $(STAMP)

# Python writes a module's bytecode the first time a process imports it, and every later process loads it from there.
# This machine's environment sets PYTHONDONTWRITEBYTECODE, under which each process would compile every module it
# imports again (about half the start of Airflow's scheduler, a server or a CLI call); it is unset for what make runs.
# So only the modules in use are ever compiled, once: compiling every dependency at install (uv's --compile-bytecode)
# took 55 of the 60 s of a fresh setup, most of it for modules nothing imports. The project's own code is compiled
# before each test run, so the test workers do not race to write it.
export PYTHONDONTWRITEBYTECODE :=
COMPILE_PROJECT := $(PY) -m compileall -q -j 0 include ativo_dev tests dags plugins bench > /dev/null || true

setup: $(STAMP)  ## create .venv with the pinned dependencies

data: setup  ## fetch the UCI Adult reference data (sha256 checked)
	@$(PY) -m ativo.cli fetch-data

run: data  ## start Airflow, MLflow and run the lifecycle on the embedded default
	@$(PY) -m ativo_dev up $(if $(filter 1 yes true,$(FRESH)),--fresh) $(if $(filter 1 yes true,$(DASK)),--dask)

demo-drift: setup  ## on the running platform: drifted traffic → MONITOR → retraining → canary (after make run)
	@$(PY) -m ativo_dev demo-drift $(if $(SPEC),--spec $(SPEC))

demo-erasure: setup  ## on the running platform: erase one customer everywhere, retrain, redeploy, receipt (after make run)
	@$(PY) -m ativo_dev demo-erasure $(if $(SPEC),--spec $(SPEC))

stop:  ## stop every process `make run` started
	@if [ -x $(PY) ]; then $(PY) -m ativo_dev down; else echo "nothing to stop"; fi

status: setup  ## what is running and where
	@$(PY) -m ativo_dev status

airflow-env: setup  ## the embedded platform's environment for `airflow` commands: eval "$$(make -s airflow-env)"
	@$(PY) -m ativo_dev env

# Tiers come from the test's directory (tests/<tier>/): unit, dags, model, component, e2e, integration, browser.
PYTEST := $(PY) -m pytest -p no:cacheprovider
XDIST ?= -n 2 --dist loadfile --no-loadscope-reorder

test-packages:
	@bash ativo_dev/system-packages.sh prometheus

system-packages:  ## Debian's prometheus (promtool) and chromium, for the alert-rule tests and the browser tier
	@bash ativo_dev/system-packages.sh

# The Debian package the alert-rule tests need is installed while the venv is (two downloads at once, not in turn).
test:  ## every tier but integration and browser, the set CI and a newcomer run
	@$(MAKE) --no-print-directory -j2 data test-packages
	@$(COMPILE_PROJECT)
	@$(PYTEST) -m "not integration and not browser" $(XDIST) --durations=15 $(PYTEST_ARGS)

test-fast: data  ## unit and DAG tiers, while you work (under 90 s)
	@$(COMPILE_PROJECT)
	@$(PYTEST) -m "unit or dags" $(PYTEST_ARGS)

test-unit test-security test-dags test-model test-component test-e2e: test-%: data
	@$(COMPILE_PROJECT)
	@$(PYTEST) -m $* --durations=10 $(PYTEST_ARGS)

test-browser: data  ## browser tier: a live platform, Prometheus on it, Debian's chromium (screenshots in var/screenshots/)
	@bash ativo_dev/system-packages.sh prometheus chromium
	@$(COMPILE_PROJECT)
	@$(PYTEST) -m browser --durations=10 $(PYTEST_ARGS)

test-integration: data  ## integration tier: PostgreSQL, S3 endpoint, whole Airflows on a real scheduler (ATIVO_REQUIRE_SERVICES=1 makes a missing service fail)
	@$(COMPILE_PROJECT)
	@$(PYTEST) -m integration $(PYTEST_ARGS)

lint: setup  ## ruff format --check, ruff check and mypy
	@$(VENV)/bin/ruff format --check .
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/mypy

docs: setup  ## the documentation site: docs/cli.md from the parser, then mkdocs build --strict into var/site
	@$(PY) -m ativo_dev.cli_docs
	@NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet
	@echo "==> the site is in var/site (open var/site/index.html)"

bench: data  ## benchmarks (each prints a summary and one JSON line)
	@$(PY) bench/etl.py
	@$(PY) bench/hpo.py
	@$(PY) bench/gates.py
	@$(PY) bench/drift.py
	@$(PY) bench/erasure.py
	@$(PY) bench/monitor.py
	@$(PY) bench/budget.py
	@$(PY) bench/canary.py

# Every benchmark in bench/ at a tiny size, one after the other (about 4 minutes on 2 cores; CI runs it): each must
# exit 0 and end with its JSON line holding the keys its docstring names; bench/smoke.py prints a table and exits 1
# when one fails. What the tiny sizes leave out, the table says: bench/etl.py runs with --skip-backfill (the 30-day
# backfill on Airflow and the embedded PostgreSQL takes about 2.5 minutes; `make bench` runs it), bench/drift.py with
# --skip-evidently (its venv needs the package registry); bench/gpu.py is skipped, saying so, only on a host without
# a GPU. wrk is installed first for bench/serve.py (with ATIVO_REQUIRE_TOOLS=1, as in CI, a missing wrk fails here).
bench-smoke: data  ## every benchmark at a tiny size: each must end with its JSON line (a table; exit 1 on a failure)
	@bash ativo_dev/system-packages.sh wrk
	@$(COMPILE_PROJECT)
	@$(PY) bench/smoke.py

clean: stop  ## remove runtime state (var/) — keeps .venv
	rm -rf var
