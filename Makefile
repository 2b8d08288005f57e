# Doradus developer commands. Every target is idempotent.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
SYSTEM_PACKAGES := chromium flatbuffers-compiler

.PHONY: demo test lint typecheck system-deps bench bench-quick bench-formats bench-backends bench-dora-venv clean help

help:
	@echo "make demo         create .venv with every extra and run the camera pipeline example"
	@echo "make test         add the test extras to .venv and run lint, types and the test suite"
	@echo "make system-deps  install the Debian packages the tests need"
	@echo "make bench        Doradus against dora-rs 1.1.0, full suite (benchmarks/results/latest.md)"
	@echo "make bench-quick  the same, reduced to under two minutes (benchmarks/results/quick.md)"
	@echo "make bench-formats  Arrow, Cap'n Proto, FlatBuffers, Avro measured (docs/data-formats.md)"
	@echo "make bench-backends every backend's latency and throughput (docs/backends.md)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-all: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[all]'
	touch $@

# dora-echo is a node from dora's hub, from the package registry. It pins numpy<2, which
# pyarrow no longer runs with, and never imports numpy itself: install it without its pins.
$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed-all
	$(BIN)/python -m pip install --quiet -e '.[all,test]'
	$(BIN)/python -m pip install --quiet --no-deps 'dora-echo==0.5.0'
	touch $@

demo: $(VENV)/.installed-all
	$(BIN)/doradus run examples/camera-pipeline/dataflow.yml

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests examples $(wildcard benchmarks)
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

# dora-rs 1.1.0 in its own virtualenv, for the side-by-side benchmarks. When it cannot be
# created (no network), `bench` and `bench-quick` still run, Doradus only.
DORA_VENV := benchmarks/.venv-dora

$(DORA_VENV)/.installed:
	$(PYTHON) -m venv $(DORA_VENV)
	$(DORA_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(DORA_VENV)/bin/python -m pip install --quiet 'dora-rs==1.1.0' 'dora-rs-cli==1.1.0' pyarrow numpy
	touch $@

bench-dora-venv: $(DORA_VENV)/.installed

bench: $(VENV)/.installed-all
	-@$(MAKE) --no-print-directory bench-dora-venv
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

bench-quick: $(VENV)/.installed-all
	-@$(MAKE) --no-print-directory bench-dora-venv
	$(BIN)/python benchmarks/run.py --quick $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Encode/decode/size/memory per data format and latency through real dataflows (a few minutes).
bench-formats: $(VENV)/.installed-all
	$(BIN)/python benchmarks/formats.py

# Latency and throughput of every backend through real dataflows (about 3 minutes).
bench-backends: $(VENV)/.installed-all
	$(BIN)/python benchmarks/backends.py
