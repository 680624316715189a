# Prompt Workbench - the two commands: `make demo` and `make test`. Each sets everything up first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

# The environment is installed from requirements.lock: every package at an exact version, with its hashes,
# generated from pyproject.toml by `make lock` (uv pip compile, universal: any platform, Python >= LOCK_PYTHON).
# pyproject.toml keeps the ranges, for people who install the workbench into an environment of their own.
LOCK := requirements.lock
LOCK_EXTRAS := test
LOCK_PYTHON := 3.11
LOCK_ARGS ?=
# The stamp names the exact pyproject.toml + lock installed: editing either one re-syncs the environment.
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml $(LOCK) 2>/dev/null | cksum | cut -d' ' -f1)

# uv installs the lock (it resolves nothing at install time: the lock is the resolution). It is pinned and kept
# inside the venv, outside the environment it manages. uv does not read pip's configuration: it uses its default
# index, or UV_DEFAULT_INDEX / uv.toml if you set them; an index given to pip by PIP_INDEX_URL is passed on, and
# so is PIP_CERT when SSL_CERT_FILE is unset. The hashes in the lock hold whichever index serves the files.
UV_VERSION := 0.13.8
UV := $(VENV)/uv/bin/uv
ifneq ($(strip $(PIP_INDEX_URL)),)
ifeq ($(strip $(UV_DEFAULT_INDEX)$(UV_INDEX_URL)),)
export UV_DEFAULT_INDEX := $(PIP_INDEX_URL)
endif
endif
UV_RUN := $(if $(and $(PIP_CERT),$(if $(SSL_CERT_FILE),,1)),SSL_CERT_FILE=$(PIP_CERT) )$(UV)

# llama-cpp-python compiles from source. Its default native build crashes on some CPUs (AMX kernels), so
# build a portable one. `?=` lets you override it, e.g. for a GPU build.
CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DLLAVA_BUILD=OFF
export CMAKE_ARGS
# It compiles once per machine: uv keeps the built wheel in its cache (UV_CACHE_DIR, by default ~/.cache/uv)
# and every later set-up, in any clone, reuses it. That cache is keyed by the sdist's hash and by the build's
# config settings, NOT by environment variables - so CMAKE_ARGS is handed over a second time as the config
# setting cmake.args (scikit-build-core reads both; the flags are the same): other CMAKE_ARGS, another wheel.
# (pip's wheel cache, used by the conda route in environment.yml, is keyed by the sdist alone: after changing
# CMAKE_ARGS there, add --no-cache-dir.)
empty :=
space := $(empty) $(empty)
LLAMA_BUILD := $(if $(strip $(CMAKE_ARGS)),--config-settings-package 'llama-cpp-python:cmake.args=$(subst $(space),;,$(strip $(CMAKE_ARGS)))')

# demo parameters (override: make demo DEMO_ARGS="-p sample_size 20")
DEMO_NOTEBOOK ?= notebooks/03_evaluate.ipynb
DEMO_ARGS ?=
PYTEST_ARGS ?=

.PHONY: help setup browser lint demo test test-fast lab bench lock lock-upgrade clean

help:
	@echo "make demo   - set up, then run the demo experiment on the embedded local model and write an HTML report"
	@echo "make test   - set up (venv, packages, headless Chromium), then run the whole test suite"
	@echo "make lab    - start JupyterLab in the project's environment"
	@echo "make bench  - run the benchmarks in benchmarks/ (slow; numbers for the notes; BENCH=\"harness\" for one)"
	@echo "make lint   - the linter (ruff, configured in pyproject.toml); make test runs it first"
	@echo "make lock   - regenerate $(LOCK) after changing dependencies in pyproject.toml (keeps other pins)"
	@echo "make lock-upgrade - regenerate $(LOCK) with the newest versions pyproject.toml allows"

setup: $(STAMP)

$(UV):
	@mkdir -p $(VENV)
	PIP_ROOT_USER_ACTION=ignore $(PYTHON) -m pip install --quiet --disable-pip-version-check \
		--target $(VENV)/uv 'uv==$(UV_VERSION)'

$(STAMP): pyproject.toml $(LOCK) | $(UV)
	@test -x $(BIN)/python || $(PYTHON) -m venv --without-pip $(VENV)
	@$(PYTHON) tools/lock.py check || echo "  ...installing the committed $(LOCK) anyway (the tests will fail on it)"
	@echo "Installing $(LOCK) (the first time on a machine, llama-cpp-python compiles: 3-6 min)..."
	$(UV_RUN) pip sync --python $(BIN)/python --require-hashes $(LLAMA_BUILD) $(LOCK)
	$(UV_RUN) pip install --python $(BIN)/python --no-deps -e .
	@rm -f $(VENV)/.installed-*
	@touch $@

# Regenerate the lock from pyproject.toml. Existing pins are kept unless pyproject.toml rules them out;
# `make lock-upgrade` (or LOCK_ARGS="--upgrade-package pandas") moves them. Commit the lock with pyproject.toml.
lock: | $(UV)
	$(UV_RUN) pip compile pyproject.toml $(addprefix --extra ,$(LOCK_EXTRAS)) --universal \
		--python-version $(LOCK_PYTHON) --generate-hashes --custom-compile-command 'make lock' \
		--quiet -o $(LOCK) $(LOCK_ARGS)
	$(PYTHON) tools/lock.py stamp

lock-upgrade: LOCK_ARGS += --upgrade
lock-upgrade: lock

# Debian's chromium for the browser tests (never a browser download from Playwright).
browser:
	@command -v chromium >/dev/null 2>&1 || bash .ci/install-chromium

demo: setup
	$(BIN)/workbench run $(DEMO_NOTEBOOK) $(DEMO_ARGS)

# ruff, at the locked version, configured in pyproject.toml; `make test` fails on a lint error, so CI enforces it
lint: setup
	$(BIN)/ruff check workbench tests benchmarks tools

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
