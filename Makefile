# Two commands matter: `make demo` and `make test`. Both build .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit bench deploy-check clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

test: lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy
	$(BIN)/mypy bench/*.py scripts/*.py
	$(BIN)/mypy -p deploy

unit: $(STAMP)
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	for script in bench/*.py; do $(BIN)/python $$script || exit 1; done

# A live deployment (scheduler, dag-processor, triggerer, api-server on PostgreSQL) and the connection form
# in headless Chromium. Takes a few minutes; installs Debian's postgresql and chromium when missing.
deploy-check: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[deploy]'
	$(BIN)/python -m deploy.check

clean:
	rm -rf $(VENV) .venv-floor build dist *.egg-info .airflow-demo
