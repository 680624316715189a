# Prompt Workbench - the two commands: `make demo` and `make test`. Each sets everything up first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

# llama-cpp-python compiles from source. Its default native build crashes on some CPUs (AMX kernels), so
# build a portable one. `?=` lets you override it, e.g. for a GPU build.
CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DLLAVA_BUILD=OFF
export CMAKE_ARGS

# demo parameters (override: make demo DEMO_ARGS="-p sample_size 20")
DEMO_NOTEBOOK ?= notebooks/03_evaluate.ipynb
DEMO_ARGS ?=
PYTEST_ARGS ?=

.PHONY: help setup browser lint demo test test-fast lab bench clean

help:
	@echo "make demo   - set up, then run the demo experiment on the embedded local model and write an HTML report"
	@echo "make test   - set up (venv, packages, headless Chromium), then run the whole test suite"
	@echo "make lab    - start JupyterLab in the project's environment"
	@echo "make bench  - run the benchmarks in benchmarks/ (slow; numbers for the notes; BENCH=\"harness\" for one)"
	@echo "make lint   - the linter (ruff, configured in pyproject.toml); make test runs it first"

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@echo "Installing the workbench and its dependencies (the first time, llama-cpp-python compiles: ~5 min)..."
	$(BIN)/python -m pip install --progress-bar off -e '.[test]'
	@rm -f $(VENV)/.installed-*
	@touch $@

# Debian's chromium for the browser tests (never a browser download from Playwright).
browser:
	@command -v chromium >/dev/null 2>&1 || bash .ci/install-chromium

demo: setup
	$(BIN)/workbench run $(DEMO_NOTEBOOK) $(DEMO_ARGS)

# ruff, configured in pyproject.toml; `make test` fails on a lint error, so CI enforces it
lint: setup
	$(BIN)/ruff check workbench tests benchmarks

test: setup browser lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# the quick inner loop: no browser, no notebooks
test-fast: setup
	$(BIN)/python -m pytest -m "not browser and not notebook" $(PYTEST_ARGS)

lab: setup
	$(BIN)/jupyter lab --notebook-dir=notebooks $(if $(filter 0,$(shell id -u)),--allow-root,)

BENCH ?=
bench: setup
	$(BIN)/python benchmarks/run_all.py $(BENCH)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache test-artifacts
