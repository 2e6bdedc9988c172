# The two commands of the README: `make demo` and `make test`. Nothing else is needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The public data sets live beside the repository (../shared/data) unless MERCATO_DATA_DIR says otherwise.
export MERCATO_DATA_DIR ?= $(if $(wildcard ../shared/data/SOURCES.md),$(abspath ../shared/data),)

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/mercato demo

test: $(VENV)/.installed-test
	$(BIN)/ruff check --no-cache src tests benchmarks
	$(BIN)/mypy
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check --no-cache src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

clean:
	rm -rf $(VENV) mercato-demo .pytest_cache .ruff_cache .mypy_cache
