# Vitals: the two commands of the README, and their parts.
#   make run    set up, then run Vitals on embedded defaults with demo traffic (`vitals up --demo`)
#   make test   set up, then run lint, type checks and the full test suite
# Needs python3 (3.11+), Java 17+ and Maven on PATH; everything else is installed here.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
STAMP  := $(VENV)/.installed
# the build backend's editable-install notices are warnings, not errors: keep them off the screen
PIP    := PYTHONWARNINGS=ignore $(BIN)/python -m pip

.PHONY: run test setup lint typecheck unit integration bench clean

# `make run` installs what running needs; the test tools come with `make test`.
$(RUN_STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "[1/2] updating pip in $(VENV)"
	@$(PIP) install -q --upgrade pip
	@echo "[2/2] installing Vitals and its dependencies (first time: about a minute)"
	@$(PIP) install -q -e .
	@touch $(RUN_STAMP)

$(STAMP): $(RUN_STAMP)
	@echo "installing the test tools (pytest, ruff, mypy, the client packages the tests run)"
	@$(PIP) install -q -e '.[test]'
	@touch $(STAMP)

setup: $(STAMP)

run: $(RUN_STAMP)
	@echo 'tip: export PATH="$$PWD/$(BIN):$$PATH" puts vitals on your PATH'
	$(BIN)/vitals up --demo

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit -q

integration: $(STAMP)
	$(BIN)/python -m pytest tests/integration -q

# two workers, a test file each at a time: each has its own broker and embedded engine, and
# most of a test's time is spent waiting on them
test: lint typecheck
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=15

bench: $(STAMP)
	$(BIN)/python -m bench.e2e

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
