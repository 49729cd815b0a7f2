# AER: two commands do all the set-up on a fresh machine.
#   make demo   create .venv, install, run the end-to-end demo (SQLite, loopback)
#   make test   create .venv, install, then ruff + mypy --strict + pytest
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]' 2> $(VENV)/pip.log || { cat $(VENV)/pip.log; exit 1; }
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	bash docs/demo.sh

lint: $(STAMP)
	$(BIN)/ruff check attest log_server verifier predicates tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest -q

test: lint typecheck pytest

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
