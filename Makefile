# The front door. Every target installs what it needs into .venv first, so each works on a
# fresh clone: `make demo` runs the product on the bundled servers, `make test` the suite,
# `make check` lint and types and then the suite (what CI runs).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
STAMP  := $(VENV)/.installed

.PHONY: install system-tools lock run demo test test-unit test-integration test-e2e test-browser test-random mutate check lint types format schemas bench bench-compare help clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]' --constraint constraints.txt
	@touch $(STAMP)

system-tools:           ## the browser and promtool the suite drives, from the system's packages where it can
	@bash deploy/tools/system-packages.sh

lock:                   ## constraints.txt from the newest versions pyproject.toml allows; then `make test`
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip
	.lock-venv/bin/python -m pip install --quiet -e '.[dev]'
	{ sed -n '/^#/p' constraints.txt; .lock-venv/bin/python -m pip freeze --exclude-editable; } > constraints.txt.new
	mv constraints.txt.new constraints.txt && rm -rf .lock-venv

run: install            ## the bundled broker + PostgreSQL + both services + SMTP sink; Ctrl-C stops all
	$(BIN)/recoveryctl dev --services

demo: install           ## plays the customer stories through the running system and prints the outcomes
	$(BIN)/recoveryctl demo

# The floor is the branch coverage of services/ (docs/testing.md), rounded down: a change that
# leaves code untested lowers it and fails the run.
COVERAGE_FLOOR := 94

test: install system-tools ## the whole suite: unit, integration (real servers), end to end (real processes); branch coverage
	$(PY) -m pytest -rs --cov --cov-report=term-missing:skip-covered --cov-fail-under=$(COVERAGE_FLOOR)

test-unit: install
	$(PY) -m pytest tests/unit

test-integration: install
	$(PY) -m pytest tests/integration

test-e2e: install
	$(PY) -m pytest tests/e2e

test-browser: install system-tools ## the escalation desk in Chromium (tests/browser/); part of `make test`
	$(PY) -m pytest tests/browser

# pytest-randomly is off by default (addopts); `-p randomly` on the command line turns it back on.
# The same SEED gives the same order: a failure found under one replays with it.
SEED  ?= 1
TESTS ?= tests/unit tests/integration
test-random: install    ## the unit and integration suites in a shuffled order: `make test-random SEED=n`
	$(PY) -m pytest -p randomly --randomly-seed=$(SEED) $(TESTS)

# The floor of the mutation score (docs/testing.md): a domain change that its tests do not
# notice lowers it.
MUTATION_FLOOR := 90
mutate: install         ## mutation testing of the recovery and notifier domains (mutmut, [tool.mutmut]); its score
	$(BIN)/mutmut run --max-children 1
	$(BIN)/mutmut export-cicd-stats
	$(PY) -m tests.mutation_score --floor $(MUTATION_FLOOR)

check: install system-tools lint types test  ## lint, types, then the whole suite (`make test`): what CI runs

lint: install           ## ruff: lint and format check
	$(BIN)/ruff check services tests bench
	$(BIN)/ruff format --check services tests bench

types: install          ## mypy: strict on services/; tests/ and bench/ checked, bodies included
	$(BIN)/mypy

format: install
	$(BIN)/ruff format services tests bench
	$(BIN)/ruff check --fix services tests bench

schemas: install        ## writes schemas/: JSON Schema per event type and the AsyncAPI document
	$(PY) -m services.common.schemagen schemas --limits-page docs/limits.md

bench: install          ## throughput and latency on the bundled servers; prints tables
	$(PY) -m bench

# This tree against REF (a git ref), the runs interleaved over ROUNDS rounds (bench/compare.py);
# NAMES empty runs every benchmark.
REF    ?=
ROUNDS ?= 3
NAMES  ?=
ifeq ($(filter bench-compare,$(MAKECMDGOALS))$(REF),bench-compare)
$(error make bench-compare: REF is required, e.g. make bench-compare REF=main NAMES="recovery")
endif
bench-compare: install  ## benchmarks here and at REF, alternately: `make bench-compare REF=main NAMES="recovery notifier"`
	$(PY) -m bench --against $(REF) --rounds $(ROUNDS) $(NAMES)

help:                   ## these targets and what they do
	@awk -F ':.*## ' '/^[a-z-]+:.*## /{printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

clean:
	rm -rf $(VENV) .local .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.*
