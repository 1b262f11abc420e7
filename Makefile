# The two commands of the README: `make run` (the embedded demo) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/pip install --quiet --disable-pip-version-check

.PHONY: run test lint install bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip

# What `dagwatch up` needs (no test tools, no torch).
$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(PIP) -e .
	touch $@

# Plus what the tests need: torch (the machine's CPU build) and Lightning for the EarlyStopping
# replay, aiosmtpd, psycopg, …
$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(PIP) -e '.[test]'
	touch $@ $(VENV)/.installed-run

install: $(VENV)/.installed-run

run: $(VENV)/.installed-run
	$(BIN)/dagwatch up

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# ruff's checks and its formatter, configured in pyproject.toml ([tool.ruff]).
lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(VENV)/.installed-test
	$(BIN)/python bench/runner_overhead.py
	$(BIN)/python bench/checks.py
	$(BIN)/python bench/router_vs_alertmanager.py

clean:
	rm -rf $(VENV) data
