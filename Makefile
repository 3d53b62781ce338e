# cellbench: set-up, app and tests. Each target does all set-up on a fresh machine.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Data root: ../shared/data when present (development and CI), else ./data. Override with
# `make test CELLBENCH_DATA=/path/to/data`.
CELLBENCH_DATA ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),$(CURDIR)/data)
export CELLBENCH_DATA

.PHONY: install app test lint clean

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

install: $(VENV)/.installed

app: install
	$(BIN)/streamlit run app.py --server.headless true

lint: install
	$(BIN)/ruff check .

test: lint
	$(BIN)/python -m pytest -q tests

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
