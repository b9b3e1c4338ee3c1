# The two commands of the README, and the rest. Each target installs what it needs into .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= config/carecast.yaml

.PHONY: run serve serve-postgres worker deploy test bench lint check clean

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

$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $(VENV)/.installed $(VENV)/.installed-test $@

run: $(VENV)/.installed  ## run the pipeline once on config/
	mkdir -p .carecast
	$(BIN)/carecast run --config $(CONFIG)

PREFECT_URL := http://127.0.0.1:4200

# Each in its own session (setsid), so Ctrl-C reaches only this recipe, which stops them in order: serve first, so
# no run is left half-started, then the server.
serve: $(VENV)/.installed  ## Prefect server (UI at http://127.0.0.1:4200) and `carecast serve` of every practice (CONFIG=file: one); Ctrl-C stops both
	mkdir -p .carecast
	@server=; serve=; \
	stop() { trap - INT TERM; \
	  if [ -n "$$serve" ]; then kill -TERM $$serve 2>/dev/null; wait $$serve; fi; \
	  if [ -n "$$server" ]; then kill -TERM $$server 2>/dev/null; wait $$server; fi; }; \
	trap 'echo; echo "stopping carecast serve, then the Prefect server"; stop; exit 0' INT TERM; \
	setsid $(BIN)/prefect server start --host 127.0.0.1 --port 4200 & server=$$!; \
	until $(BIN)/python -c "import urllib.request as r; r.urlopen('$(PREFECT_URL)/api/health', timeout=2)" 2>/dev/null; \
	do kill -0 $$server 2>/dev/null || exit 1; sleep 1; done; \
	echo "Prefect UI: $(PREFECT_URL)"; \
	PREFECT_API_URL=$(PREFECT_URL)/api setsid $(BIN)/carecast serve $(if $(filter command line,$(origin CONFIG)),--config $(CONFIG)) & serve=$$!; \
	wait $$serve; rc=$$?; stop; exit $$rc

# Many practices: the Prefect server on PostgreSQL (database `prefect`, created when missing), the ledger in the same
# PostgreSQL (database `carecast`: set ledger.url in each practice file). Then `make deploy` and `make worker`.
PG ?= postgresql://postgres@127.0.0.1:5432
POOL ?= carecast
serve-postgres: $(VENV)/.installed  ## Prefect server on PostgreSQL at $(PG) (databases prefect and carecast)
	mkdir -p .carecast
	$(BIN)/python -m carecast_flows.postgres $(PG) prefect carecast
	PREFECT_API_DATABASE_CONNECTION_URL=$(subst postgresql://,postgresql+asyncpg://,$(PG))/prefect \
	  $(BIN)/prefect server start --host 127.0.0.1 --port 4200

deploy: $(VENV)/.installed  ## register every practice's deployments in the process work pool $(POOL)
	PREFECT_API_URL=$(PREFECT_URL)/api $(BIN)/carecast deploy --pool $(POOL)

worker: $(VENV)/.installed  ## a worker of the pool $(POOL): start one per machine (or more)
	PREFECT_API_URL=$(PREFECT_URL)/api $(BIN)/prefect worker start --pool $(POOL) --type process

check: $(VENV)/.installed  ## validate the configuration
	$(BIN)/carecast check --config $(CONFIG)

test: $(VENV)/.installed-test  ## the whole test suite
	mkdir -p .carecast
	$(BIN)/pytest

# Sizes: BENCH_SCALE=0.5 make bench, or BENCH_ARGS="--full" / "--only fanout-sms" / "--repeat 5".
bench: $(VENV)/.installed-bench  ## CareCast against bare baselines on local servers; writes bench/results.md
	$(BIN)/python -m bench $(BENCH_ARGS)

lint: $(VENV)/.installed-test  ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf .carecast
