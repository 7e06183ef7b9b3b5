# Farloom: `make run` runs the pipeline, `make test` runs every check, `make check` the quick ones.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: install run test check lint typecheck pytest bench audit services clean

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

# Three pytest processes side by side (pytest-xdist); each has its own database, Redis db
# and vhost, the slowest scenarios start first, and the broker restart has its own node.
PYTEST_WORKERS ?= 3
pytest: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

# The whole suite: what CI runs.
test: lint typecheck pytest

# Lint, types and the tests not marked slow: a few minutes, for iterating.
check: lint typecheck
	$(BIN)/pytest -q -p no:cacheprovider -n $(PYTEST_WORKERS) -m "not slow" $(PYTEST_ARGS)

# Every benchmark, each in its own throw-away database, Redis db and vhost, each
# rewriting its section of docs/benchmarks.md (about 35 minutes; run on a quiet machine).
bench: $(BENCH_STAMP) services
	$(BIN)/farloom bench publish --write-docs
	$(BIN)/farloom bench ingest --write-docs
	$(BIN)/farloom bench aggregate --write-docs
	$(BIN)/farloom bench api --write-docs
	$(BIN)/farloom bench topologies --write-docs

# Needs a machine that can reach a vulnerability database; not part of `make test`.
audit: $(STAMP)
	$(BIN)/pip install --quiet "pip-audit>=2.7,<3"
	$(BIN)/pip-audit --skip-editable

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
