# MicroShop — `make up` runs the whole shop, `make test` runs every check CI runs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
ARGS   ?=
NPM    ?= npm
WEB    := web/frontend
WEB_DEPS := $(WEB)/node_modules/.package-lock.json
# `make up` builds the React app when it is there and npm is installed
UP_WEB := $(if $(and $(wildcard $(WEB)/package.json),$(shell command -v $(NPM) 2>/dev/null)),frontend)

.PHONY: help install up migrate test lint typecheck pytest frontend frontend-test screenshots \
        bench bench-eventstore bench-orders bench-rebuild bench-floor bench-soak compose-test clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(STAMP): setup.cfg pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "MicroShop needs Python >= 3.11 (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,dev]'
	@touch $@

install: $(STAMP)  ## create .venv and install MicroShop with its test and dev tools

migrate: install  ## create the database if missing and apply migrations
	$(BIN)/microshop migrate

up: migrate $(UP_WEB)  ## set everything up, then run every service (Ctrl-C stops them all)
	$(BIN)/microshop seed --if-empty
	$(BIN)/microshop up --skip-migrate

test: lint typecheck frontend-test frontend pytest  ## everything CI runs: ruff, import contracts, mypy, Vitest, the tests

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

typecheck: install
	$(BIN)/mypy

pytest: install
	$(BIN)/python -m pytest $(ARGS)

compose-test: install  ## docker compose up on a clean copy, README "Try it" against it, down -v (needs Docker)
	$(BIN)/python -m pytest -m compose tests/compose -s $(ARGS)

$(WEB_DEPS): $(WEB)/package.json $(WEB)/package-lock.json
	cd $(WEB) && $(NPM) ci --no-audit --no-fund
	@touch $@

frontend: $(WEB_DEPS)  ## build the React app into web/frontend/dist (served at /app/)
	cd $(WEB) && $(NPM) run build

frontend-test: $(WEB_DEPS)  ## the React app's Vitest suite
	cd $(WEB) && $(NPM) test

screenshots: install frontend  ## browser tests, saving their screenshots into docs/screenshots
	MICROSHOP_SCREENSHOTS=$(CURDIR)/docs/screenshots $(BIN)/python -m pytest tests/e2e/test_browser.py

bench: bench-eventstore bench-orders  ## every benchmark (ARGS=--quick for a short run)

bench-eventstore: install  ## event store benchmark: appends, reads, rebuild, relay
	$(BIN)/python -m bench.eventstore $(ARGS)

bench-orders: install  ## orders/s from POST to PAID through the gateway, with p50/p95/p99
	$(BIN)/python -m bench.orders $(ARGS)

bench-rebuild: install  ## rebuild the real orders projection from a 400k-event log: events/s, peak memory (ARGS=--quick)
	$(BIN)/python -m bench.rebuild $(ARGS)

bench-floor: install  ## the plumbing an order needs, priced piece by piece, against its measured CPU (ARGS=--quick)
	$(BIN)/python -m bench.floor $(ARGS)

bench-soak: install  ## steady order load for 10 min, every process's memory sampled (ARGS=--minutes N)
	$(BIN)/python -m bench.soak $(ARGS)

clean:  ## remove the virtualenv, caches, and the React app's node_modules and build
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache $(WEB)/node_modules $(WEB)/dist
