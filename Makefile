# Farloom: `make run` runs the pipeline, `make test` runs every check.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: install run test lint typecheck pytest bench audit services clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

# The benchmarks' own dependencies: the optional extra [bench] (the dev extra includes it).
$(BENCH_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[bench]"
	touch $(BENCH_STAMP)

install: $(STAMP)

services:
	./scripts/ensure-services

run: $(STAMP) services
	$(BIN)/farloom migrate
	./scripts/run-pipeline

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider $(PYTEST_ARGS)

test: lint typecheck pytest

# Every benchmark, each in its own throw-away database, Redis db and vhost, each
# rewriting its section of docs/benchmarks.md (about 20 minutes; run on a quiet machine).
bench: $(BENCH_STAMP) services
	$(BIN)/farloom bench publish --write-docs
	$(BIN)/farloom bench ingest --write-docs
	$(BIN)/farloom bench aggregate --write-docs
	$(BIN)/farloom bench api --write-docs

# Needs a machine that can reach a vulnerability database; not part of `make test`.
audit: $(STAMP)
	$(BIN)/pip install --quiet "pip-audit>=2.7,<3"
	$(BIN)/pip-audit --skip-editable

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
