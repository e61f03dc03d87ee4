# Targets the README names. `make run` and `make test` work from a fresh clone.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
DATA ?= ../shared/data/diabetes130/diabetic_data.csv.gz
STAMP := .make

.PHONY: install install-dev system-deps run test lint typecheck model bench clean

$(STAMP)/installed: pyproject.toml
	@mkdir -p $(STAMP)
	$(PIP) install -q -e .
	@touch $@

$(STAMP)/installed-dev: pyproject.toml
	@mkdir -p $(STAMP)
	$(PIP) install -q -e ".[dev]"
	@touch $@

install: $(STAMP)/installed

install-dev: $(STAMP)/installed-dev

# Debian packages the tests and benchmarks drive: PostgreSQL, Chromium, Prometheus, wrk, HAProxy.
system-deps:
	bash .ci/system-deps

# Start the service on SQLite with the shipped model.
run: install
	triage db upgrade
	triage serve --host $${TRIAGE_HOST:-127.0.0.1} --port $${TRIAGE_PORT:-8000}

test: install-dev system-deps
	$(PYTHON) -m pytest

lint:
	ruff check app tests bench
	ruff format --check app tests bench

typecheck:
	mypy

# Rebuild the shipped model from the data (one command).
model: install-dev
	triage train --data $(DATA)

bench: install-dev
	$(PYTHON) bench/mc_engine.py

clean:
	rm -rf $(STAMP) .pytest_cache .mypy_cache .ruff_cache triage.db
