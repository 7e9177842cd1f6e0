# Quick start: `make run` (set up, then analyse the bundled example trial) and `make test`.
.PHONY: setup run test test-fast test-slow lint constraints

VENV := .venv/bin
# Tests run in one worker per logical CPU (pytest-xdist), each test file in one worker so that its
# module fixtures (fits, workflow runs) are built once; `make test PYTEST_PARALLEL=` runs serially.
PYTEST_PARALLEL ?= -n logical --dist loadfile

setup:
	@bash scripts/bootstrap.sh

run: setup
	@bash scripts/run-example.sh

# The whole suite: lint, fast tests, then the slow statistical checks.
test: setup
	@echo "[test] ruff check"
	@$(VENV)/ruff check .
	@echo "[test] import layers (lint-imports)"
	@$(VENV)/lint-imports --no-cache
	@echo "[test] fast tests"
	@$(VENV)/pytest -m "not slow" $(PYTEST_PARALLEL) -q --durations=10
	@echo "[test] slow statistical tests"
	@$(VENV)/pytest -m slow $(PYTEST_PARALLEL) -q --durations=15

test-fast: setup
	@$(VENV)/pytest -m "not slow" $(PYTEST_PARALLEL) -q --durations=10

test-slow: setup
	@$(VENV)/pytest -m slow $(PYTEST_PARALLEL) -q --durations=15

lint: setup
	@$(VENV)/ruff check .
	@$(VENV)/lint-imports --no-cache

# Recompile the pins after changing dependencies in pyproject.toml.
constraints: setup
	@$(VENV)/python -m pip install --quiet uv
	@$(VENV)/uv pip compile pyproject.toml --extra dev --python-version 3.12 \
		--no-header --output-file constraints.txt
