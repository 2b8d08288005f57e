# Doradus developer commands. Every target is idempotent.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
SYSTEM_PACKAGES := chromium flatbuffers-compiler tmux

.PHONY: compiled soak fuzz fuzz-atheris demo test lint typecheck lock upgrade system-deps bench bench-quick bench-formats bench-backends bench-descriptor bench-dora-venv bench-ipc-venv docs docs-serve examples clean help

help:
	@echo "make demo         create .venv from the lock (every extra) and run the camera pipeline example"
	@echo "make test         install the lock into .venv (if needed); lint, import contracts, types, tests"
	@echo "make lock         resolve pyproject.toml into requirements/lock.txt (keeps current pins)"
	@echo "make upgrade      the same, moving every package to its newest version"
	@echo "make system-deps  install the Debian packages the tests need"
	@echo "make compiled     bytecode for src/ (as a wheel install has it); every target that runs Doradus does it"
	@echo "make fuzz         hostile input: the fuzz tests with many examples (FUZZ_EXAMPLES=5000 per target)"
	@echo "make fuzz-atheris the same decoders under atheris, coverage-guided (FUZZ_SECONDS=60 per target)"
	@echo "make soak         soak and chaos runs (about 15 minutes; SOAK_MINUTES=0.5 SOAK_MESSAGES=100000 shorter)"
	@echo "make bench        Doradus against dora-rs 1.1.0 and the raw IPC floor, full suite; publishes docs/performance.md (clean tree only)"
	@echo "make bench-quick  the same, reduced to about three minutes (benchmarks/results/quick.md)"
	@echo "make bench-formats  Arrow, Cap'n Proto, FlatBuffers, Avro measured (docs/data-formats.md)"
	@echo "make bench-backends every backend's latency and throughput (docs/backends.md)"
	@echo "make bench-descriptor how long loading a dataflow file takes (10 and 100 nodes)"
	@echo "make docs         build the documentation site into site/ (mkdocs --strict)"
	@echo "make docs-serve   serve the documentation on http://127.0.0.1:8000, rebuilt on change"
	@echo "make examples     the real-world examples (examples/*/README.md) at full size, checked (a few minutes)"

# Installs are locked: requirements/lock.txt pins every package (runtime, every extra, every
# test and lint tool, the build backend, pip itself) with hashes. `make demo` and `make test`
# install exactly it, with --no-deps so nothing is ever resolved here; tools/lock.py refuses a
# lock that is missing or older than pyproject.toml's requirements and names `make lock`.
LOCK    := requirements/lock.txt
NO_DEPS := requirements/no-deps.txt
PIP_INSTALL := $(BIN)/python -m pip install --quiet --disable-pip-version-check

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(LOCK) $(NO_DEPS):
	@echo "error: $@ is missing: run \`make lock\` to create it" >&2; exit 1

$(VENV)/.installed: $(LOCK) $(NO_DEPS) pyproject.toml | $(BIN)/python
	@$(PYTHON) tools/lock.py fresh
	$(PIP_INSTALL) --require-hashes --no-deps -r $(LOCK) -r $(NO_DEPS)
	$(PIP_INSTALL) --no-deps --no-build-isolation --editable .
	@$(BIN)/python tools/lock.py sync
	touch $@

# Bytecode for src/, as a wheel install has it. The package is installed editable, so without
# this every process started with PYTHONDONTWRITEBYTECODE set (or from a read-only checkout)
# compiles each module it imports, every time: about 0.15 s of CPU for `doradus run` and 0.03 s
# per node. Incremental (only changed files), so every target that runs Doradus refreshes it.
compiled: $(VENV)/.installed
	@$(BIN)/python -m compileall -q -j 0 src

# The lock tool itself comes from the lock when there is one; a first `make lock` bootstraps it.
lock: | $(BIN)/python
	@test -x $(BIN)/pip-compile || $(PIP_INSTALL) 'pip-tools>=7.4'
	$(BIN)/python tools/lock.py lock

upgrade: | $(BIN)/python
	@test -x $(BIN)/pip-compile || $(PIP_INSTALL) 'pip-tools>=7.4'
	$(BIN)/python tools/lock.py lock --upgrade

demo: compiled
	$(BIN)/doradus run examples/camera-pipeline/dataflow.yml

lint: $(VENV)/.installed
	$(BIN)/ruff check src tests examples benchmarks tools docs/hooks
	$(BIN)/ruff format --check src tools docs/hooks
	$(BIN)/lint-imports

typecheck: $(VENV)/.installed
	$(BIN)/mypy

test: compiled lint typecheck
	@# Whole files per worker, in collection order: the longest file (bench-quick) starts first
	@# instead of last, where xdist's default reordering (fewest tests last) put it.
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder

# Hostile input (docs/security.md): the property tests of tests/fuzz/ and the coordinator API's
# schemathesis test, with FUZZ_EXAMPLES examples per decoder (`make test`: 100) and FUZZ_API_EXAMPLES
# per API operation (`make test`: 15). About 5 minutes as set here.
FUZZ_EXAMPLES ?= 5000
FUZZ_API_EXAMPLES ?= 200
fuzz: compiled
	DORADUS_FUZZ=1 DORADUS_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) DORADUS_FUZZ_API_EXAMPLES=$(FUZZ_API_EXAMPLES) \
		$(BIN)/python -m pytest tests/fuzz tests/cli/test_api_schemathesis.py -q --timeout 0

# Coverage-guided (atheris, libFuzzer) runs of the same decoders, FUZZ_SECONDS each; a crash stops
# the run and leaves its input as crash-<hash> in the current folder.
FUZZ_SECONDS ?= 60
fuzz-atheris: compiled
	@for target in loader frame metadata arrow capnp flatbuffers avro; do \
		echo "== $$target"; \
		$(BIN)/python tools/fuzz_atheris.py $$target -max_total_time=$(FUZZ_SECONDS) || exit 1; \
	done

# Soak and chaos (docs/reliability.md), not part of `make test`: 1,000,000 messages through a
# 3-node chain (zero loss with backpressure; with queue_size 2, losses = drop counters), SIGKILL of
# random nodes with restart_policy always for SOAK_MINUTES (5), 40 MiB messages into a slow
# consumer (memory flat), the coordinator killed and started again under load. Figures in
# benchmarks/results/soak.{json,md}; SOAK_ARGS="--only chaos" runs one part.
soak: compiled
	$(BIN)/python benchmarks/soak/run.py $(SOAK_ARGS)

system-deps:
	@if [ -n "$(SYSTEM_PACKAGES)" ]; then \
		missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
		if [ -n "$$missing" ]; then apt-get update -qq && apt-get install -y -qq $$missing; fi; \
	fi
	@echo "system dependencies present"

# dora-rs 1.1.0 in its own virtualenv, for the side-by-side benchmarks. When it cannot be
# created (no network), `bench` and `bench-quick` still run, Doradus only.
DORA_VENV := benchmarks/.venv-dora

$(DORA_VENV)/.installed: requirements/dora-bench.txt
	$(PYTHON) -m venv $(DORA_VENV)
	$(DORA_VENV)/bin/python -m pip install --quiet --require-hashes --no-deps -r requirements/dora-bench.txt
	touch $@

bench-dora-venv: $(DORA_VENV)/.installed

# The raw IPC floor measured in the same run (iceoryx2's Python bindings, pyzmq over ipc://),
# pinned with hashes in requirements/ipc-bench.txt, in a virtualenv of its own: benchmark-only,
# never a Doradus dependency. Without it the anchor columns say "unavailable".
IPC_VENV := benchmarks/.venv-ipc

$(IPC_VENV)/.installed: requirements/ipc-bench.txt
	$(PYTHON) -m venv $(IPC_VENV)
	$(IPC_VENV)/bin/python -m pip install --quiet --require-hashes --no-deps -r requirements/ipc-bench.txt
	touch $@

bench-ipc-venv: $(IPC_VENV)/.installed

# `make bench` publishes (docs/performance.md, results/latest.*) and so refuses a dirty tree;
# `make bench BENCH_PUBLISH=` measures without publishing (results/full.*).
BENCH_PUBLISH ?= --publish

bench: compiled
	-@$(MAKE) --no-print-directory bench-dora-venv
	-@$(MAKE) --no-print-directory bench-ipc-venv
	$(BIN)/python benchmarks/run.py $(BENCH_PUBLISH) $(BENCH_ARGS)

bench-quick: compiled
	-@$(MAKE) --no-print-directory bench-dora-venv
	-@$(MAKE) --no-print-directory bench-ipc-venv
	$(BIN)/python benchmarks/run.py --quick $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Encode/decode/size/memory per data format and latency through real dataflows (a few minutes).
bench-formats: compiled
	$(BIN)/python benchmarks/formats.py $(BENCH_PUBLISH)

# Latency and throughput of every backend through real dataflows (about 3 minutes).
bench-backends: compiled
	$(BIN)/python benchmarks/backends.py $(BENCH_PUBLISH)

# The real-world examples at full size: the tests of tests/examples/ (which `make test` runs
# reduced) with DORADUS_EXAMPLES=full, printing what each measured (about 3 minutes).
examples: compiled
	DORADUS_EXAMPLES=full $(BIN)/python -m pytest tests/examples -q -s --timeout 1200

# Loading (parsing and checking) dataflow files of 10 and 100 nodes (a few seconds).
bench-descriptor: compiled
	$(BIN)/python benchmarks/descriptor.py

# The documentation site (mkdocs.yml; the docs extra is in the lock). Strict: a broken link,
# reference or page fails the build. Reference pages are generated as it builds.
DOCS_ENV := NO_MKDOCS_2_WARNING=1
docs: $(VENV)/.installed
	$(DOCS_ENV) $(BIN)/mkdocs build --strict --site-dir site

docs-serve: $(VENV)/.installed
	$(DOCS_ENV) $(BIN)/mkdocs serve --strict --dev-addr 127.0.0.1:8000
