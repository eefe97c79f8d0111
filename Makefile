# Every target works on a fresh machine with only python3 and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.runtime
STAMP := $(VENV)/.installed
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements/lock.txt
DURATION ?= 20

.PHONY: install runtime demo test lint format bench bench-quick bench-compare lock clean docs browser

# What the demo needs (the package and its web dashboard); the test tools come on top.
runtime: $(RUNTIME)

$(RUNTIME): pyproject.toml requirements/lock.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) -e '.[web]'
	touch $(RUNTIME)

install: $(STAMP)

$(STAMP): $(RUNTIME)
	$(PIP) -e '.[test]'
	touch $(STAMP)

demo: runtime
	$(BIN)/epics-collector demo --duration $(DURATION) --output build/demo

test: install browser
	$(BIN)/python -m pytest -n 2 --dist loadgroup --durations=15  # two workers; a system test module stays on one (conftest); the slowest 15 said

browser:
	sh tools/install-browser.sh

lint: install
	$(BIN)/ruff check src tests bench tools
	$(BIN)/ruff format --check src tests bench tools
	$(BIN)/pyright
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff check --fix src tests bench tools
	$(BIN)/ruff format src tests bench tools

# Write the generated parts (PV tables, the blocking client), then build the site into
# build/site in strict mode. CI passes DOCS_CHECK=--check: stale generated files fail.
docs: install
	$(BIN)/python tools/pv_tables.py $(DOCS_CHECK)
	$(BIN)/python tools/sync_client.py $(DOCS_CHECK)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

BENCHES := pva_baseline collector_throughput collector_compress export spill_engine \
           processing_latency pvapy_compare factory client web history_views gateway \
           many_channels read_integrity retrieval retired channel_edits retention
BASE ?= bench/baseline.json

# Every benchmark; each ratio is the median of interleaved runs, with its spread. The
# table of targets is printed; every figure goes to build/bench.json (see bench-compare).
bench: SHELL := /bin/bash
bench: .SHELLFLAGS := -o pipefail -c
bench: install browser
	$(PIP) -r requirements/bench.txt
	mkdir -p build && : > build/bench.log
	for b in $(BENCHES); do \
	  start=$$SECONDS; $(BIN)/python bench/$$b.py 2>&1 | tee -a build/bench.log || exit 1; \
	  echo "bench/$$b.py took $$((SECONDS - start)) s" | tee -a build/bench.log; \
	done
	$(BIN)/python bench/summary.py build/bench.log --json build/bench.json

# Every benchmark at reduced size, one run each (a check before a commit: under 3 min).
bench-quick: SHELL := /bin/bash
bench-quick: .SHELLFLAGS := -o pipefail -c
bench-quick: install browser
	$(PIP) -r requirements/bench.txt
	mkdir -p build && : > build/bench-quick.log
	for b in $(BENCHES); do \
	  start=$$SECONDS; $(BIN)/python bench/$$b.py --quick 2>&1 | tee -a build/bench-quick.log || exit 1; \
	  echo "bench/$$b.py took $$((SECONDS - start)) s" | tee -a build/bench-quick.log; \
	done
	$(BIN)/python bench/summary.py build/bench-quick.log --json build/bench-quick.json

# What moved by more than its spread since BASE (default: the committed baseline);
# fails when a figure with a target regressed.
bench-compare: install
	$(BIN)/python bench/compare.py $(BASE) build/bench.json

# Re-pin every dependency to what is installed now (after changing pyproject.toml).
lock: install
	$(BIN)/python -m pip freeze --exclude-editable --exclude epics-collector --exclude pvapy > requirements/lock.txt

clean:
	rm -rf $(VENV) build .pytest_cache .ruff_cache
