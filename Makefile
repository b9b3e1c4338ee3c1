# The two commands of the README, and the rest. Each target installs what it needs into .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= config/carecast.yaml

.PHONY: run test lint check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall when the project's declared dependencies change.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(VENV)/.installed $@

run: $(VENV)/.installed  ## run the pipeline once on config/
	mkdir -p .carecast
	$(BIN)/carecast run --config $(CONFIG)

check: $(VENV)/.installed  ## validate the configuration
	$(BIN)/carecast check --config $(CONFIG)

test: $(VENV)/.installed-test  ## the whole test suite
	mkdir -p .carecast
	$(BIN)/pytest

lint: $(VENV)/.installed-test  ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf .carecast
