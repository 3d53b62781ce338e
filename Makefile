# cellbench: set-up, app and tests. Each target does all set-up on a fresh machine.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Data root: ../shared/data when present (development and CI), else ./data. Override with
# `make test CELLBENCH_DATA=/path/to/data`.
CELLBENCH_DATA ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),$(CURDIR)/data)
export CELLBENCH_DATA

.PHONY: install sysdeps app app-lan test lint clean reference

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

install: $(VENV)/.installed

app: install sysdeps
	$(BIN)/streamlit run app.py --server.headless true

# Serve the lab network (every interface) on purpose: paths typed into the app stay confined
# to the data root and workspace; put it behind an authenticating proxy (README).
app-lan: install sysdeps
	$(BIN)/streamlit run app.py --server.headless true --server.address 0.0.0.0

# Chromium + chromedriver (Debian) for figure export (kaleido) and the browser test. Installed
# with apt when missing and running as root; otherwise those tests skip and say why.
sysdeps:
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      chromium chromium-driver >/dev/null; \
	  else echo "note: chromium / chromium-driver missing: figure export and browser tests skip"; fi; \
	fi

lint: install
	$(BIN)/ruff check .

test: lint sysdeps
	$(BIN)/python -m pytest -q tests

# re-run the reference experiments (bundled checkpoints x local test sets) and export them
reference: install
	$(BIN)/cellbench reference

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
