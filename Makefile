# Set-up is part of every target: a fresh clone needs only python3 (>= 3.11) and make.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The shared log's own environment (docs/scale-out.md): DuckDB 1.5.5 and DuckLake.
LAKE_VENV ?= .venv-lake
LAKE_STAMP := $(LAKE_VENV)/.installed

.PHONY: serve test lint bench bench-shared lake-env clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade 'pip>=24,<27'
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

$(LAKE_STAMP): packaging/lake-requirements.txt
	$(PYTHON) -m venv $(LAKE_VENV)
	$(LAKE_VENV)/bin/pip install --quiet --upgrade 'pip>=24,<27'
	$(LAKE_VENV)/bin/pip install --quiet -r packaging/lake-requirements.txt
	touch $(LAKE_STAMP)

lake-env: $(LAKE_STAMP)

## Run the server on its embedded defaults (local disk + DuckDB log under ./data).
serve: $(STAMP)
	$(BIN)/s3facade serve $(ARGS)

## Run the whole test suite (unit, integration with real clients, lint and types).
test: $(STAMP) $(LAKE_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## s3facade beside moto, nginx and its upstreams (not part of the tests; several minutes).
bench: $(STAMP)
	$(BIN)/python -m bench.compare $(ARGS)

## 1, 2 and 4 gateways over one shared log (PostgreSQL + Ceph RGW from ../shared/services).
bench-shared: $(STAMP) $(LAKE_STAMP)
	$(BIN)/python -m bench.shared_log $(ARGS)

clean:
	rm -rf $(VENV) $(LAKE_VENV) .pytest_cache .mypy_cache .ruff_cache
