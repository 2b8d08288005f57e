# Doradus developer commands. Every target is idempotent.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
SYSTEM_PACKAGES :=

.PHONY: demo test lint typecheck system-deps bench bench-quick clean help

help:
	@echo "make demo         create .venv with every extra and run the camera pipeline example"
	@echo "make test         add the test extras to .venv and run lint, types and the test suite"
	@echo "make system-deps  install the Debian packages the tests need"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-all: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[all]'
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed-all
	$(BIN)/python -m pip install --quiet -e '.[all,test]'
	# A node from dora's hub, from the package registry. It pins numpy<2, which pyarrow no
	# longer runs with, and never imports numpy itself: install it without its pins.
	$(BIN)/python -m pip install --quiet --no-deps 'dora-echo==0.5.0'
	touch $@

demo: $(VENV)/.installed-all
	$(BIN)/doradus run examples/camera-pipeline/dataflow.yml

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests examples benchmarks
	$(BIN)/ruff format --check src

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

test: $(VENV)/.installed-test lint typecheck
	$(BIN)/python -m pytest -q

system-deps:
	@if [ -n "$(SYSTEM_PACKAGES)" ]; then \
		missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
		if [ -n "$$missing" ]; then apt-get update -qq && apt-get install -y -qq $$missing; fi; \
	fi
	@echo "system dependencies present"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
