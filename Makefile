# The Makefile owns setup: every target installs what it needs, from scratch, on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
TOOLS := .tools
AZURITE := $(TOOLS)/azurite/node_modules/.bin/azurite
CHECKOV_VENV := .venv-checkov
CHECKOV := $(CHECKOV_VENV)/bin/checkov
# Python sources that ruff and mypy check.
SOURCES := acr_core acr_emulator tests $(wildcard bench) $(wildcard scripts) $(wildcard function_app.py)

.PHONY: help setup lint typecheck pytest test chaos demo bench emulator examples clean

help:
	@echo "make demo   run the cleanup end to end on the embedded ACR emulator (about a minute)"
	@echo "make test   install everything, then ruff, mypy and the whole test suite"
	@echo "make bench  benchmarks against Microsoft's SDK on the emulator (not part of make test)"
	@echo "make chaos  the reliability suite with its long trial counts (not part of make test)"
	@echo "make emulator  start a local ACR emulator (PORT=5000; PORT=0: a free one); source .emulator.env"
	@echo "make examples  run examples/quickstart (the SDK quickstart's operations) on an emulator"

$(VENV)/.stamp: requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv
	$(UV) pip install --quiet --python $(PY) -r requirements-dev.txt -e .
	# The Functions worker's loader, for the worker-faithful indexing test. It declares
	# Python >= 3.13 but runs on 3.11 (docs/functions-facts.md section 1.6).
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --ignore-requires-python \
		azure-functions-runtime==1.3.0 azurefunctions-extensions-base==1.2.0
	touch $@

$(AZURITE):
	mkdir -p $(TOOLS)/azurite
	cd $(TOOLS)/azurite && npm install --no-audit --no-fund --silent azurite@3.35.0 >/dev/null

$(CHECKOV_VENV)/.stamp:
	# checkov pins many libraries of its own, so it lives in a venv of its own.
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check uv
	$(CHECKOV_VENV)/bin/uv pip install --quiet --python $(CHECKOV_VENV)/bin/python checkov
	touch $@

# The three installs are independent, so they run side by side (-j3): from scratch that is
# about half the time of one after the other.
setup:
	@$(MAKE) --no-print-directory -j3 $(VENV)/.stamp $(AZURITE) $(CHECKOV_VENV)/.stamp

lint: $(VENV)/.stamp
	$(VENV)/bin/ruff check $(SOURCES)
	$(VENV)/bin/ruff format --check $(SOURCES)

typecheck: $(VENV)/.stamp
	$(VENV)/bin/mypy $(SOURCES)

# Two pytest-xdist workers, one per core; --dist loadfile keeps each file's tests in one worker,
# so a module's fixtures (Azurite) and the session's checkov run start once. WORKERS=0: serially.
WORKERS ?= 2
# The suite starts dozens of Python processes (the CLI, the emulator, fresh interpreters). With
# PYTHONDONTWRITEBYTECODE set each compiled every module it imported again (uv installs no .pyc):
# here the first one writes them, under .venv/pycache rather than beside the sources.
PYCACHE := PYTHONDONTWRITEBYTECODE= PYTHONPYCACHEPREFIX=$(abspath $(VENV))/pycache

pytest: setup
	AZURITE=$(abspath $(AZURITE)) CHECKOV=$(abspath $(CHECKOV)) $(PYCACHE) \
		$(PY) -m pytest -q -n $(WORKERS) --dist loadfile

# setup first: its installs then run side by side, before lint and typecheck need the venv.
test: setup lint typecheck pytest

# The reliability suite (tests/reliability) at its long trial counts; docs/reliability.md.
chaos: setup
	ACR_CLEANUP_CHAOS=1 AZURITE=$(abspath $(AZURITE)) CHECKOV=$(abspath $(CHECKOV)) \
		$(PY) -m pytest -q -p no:cacheprovider tests/reliability -o timeout=1800

demo: $(VENV)/.stamp
	$(PY) scripts/demo.py

bench: $(VENV)/.stamp
	$(UV) pip install --quiet --python $(PY) -r bench/requirements.txt
	$(PY) -m bench

# The emulator's port: `make emulator PORT=0` picks a free one. Its first stdout line is its
# JSON line (the recipe is silent), and `source .emulator.env` sets ACR_REGISTRY, ACR_USERNAME,
# ACR_PASSWORD and ACR_CA_FILE in another shell.
PORT ?= 5000
EMULATOR_ENV ?= .emulator.env

emulator: $(VENV)/.stamp
	@$(PY) -m acr_emulator --port $(PORT) --generate demo --env-file $(EMULATOR_ENV)

# examples/quickstart, each run in turn against an emulator of its own on a free port.
examples: $(VENV)/.stamp
	@$(PY) examples/quickstart/run_all.py

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache .hypothesis
