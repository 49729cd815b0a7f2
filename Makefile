# AER: two commands do all the set-up on a fresh machine.
#   make demo   create .venv, install, run the end-to-end demo (SQLite, loopback)
#   make test   create .venv, install, then ruff + mypy --strict + pytest
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# sigstore-js for the interop test (tests/verifier/test_sigstore_interop.py), pinned by
# tests/verifier/js/package-lock.json and installed with npm ci into .venv/node.
JS_DIR := tests/verifier/js
NODE_DIR := $(VENV)/node
NODE_STAMP := $(NODE_DIR)/.installed

.PHONY: demo test lint typecheck pytest install node-deps clean fuzz contract soak
FUZZ_SECONDS ?= 60
CONTRACT_EXAMPLES ?= 200
CONTRACT_SEED ?= 16
SOAK_MINUTES ?= 10
SOAK_RATE ?= 5

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]' 2> $(VENV)/pip.log || { cat $(VENV)/pip.log; exit 1; }
	touch $(STAMP)

install: $(STAMP)

$(NODE_STAMP): $(JS_DIR)/package.json $(JS_DIR)/package-lock.json
	@if command -v node >/dev/null 2>&1; then \
		mkdir -p $(NODE_DIR) && cp $(JS_DIR)/package.json $(JS_DIR)/package-lock.json $(NODE_DIR)/ && \
		npm ci --prefix $(NODE_DIR) --no-audit --no-fund --ignore-scripts --loglevel=error && \
		touch $@; \
	else echo "make: no node binary: the sigstore-js interop test will be skipped"; fi

node-deps: $(NODE_STAMP)

demo: $(STAMP)
	bash docs/demo.sh

lint: $(STAMP)
	$(BIN)/ruff check attest log_server verifier predicates tests bench fuzz

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) $(NODE_STAMP)
	$(BIN)/pytest -q

test: lint typecheck pytest

# Coverage-guided fuzzing of every parser that reads outside bytes (fuzz/targets.py),
# FUZZ_SECONDS per target; results in docs/robustness.md.
fuzz: $(STAMP)
	$(BIN)/python -m pip install --quiet atheris
	cd fuzz && ../$(BIN)/python run.py --seconds $(FUZZ_SECONDS)

# The OpenAPI documents as a contract: schemathesis (every check and phase) against the
# real log and the real admission webhook on loopback, CONTRACT_EXAMPLES per operation
# (make test runs the same with 12, in tests/contract/); results in docs/robustness.md.
contract: $(STAMP)
	$(BIN)/python -m tests.contract.run --examples $(CONTRACT_EXAMPLES) --seed $(CONTRACT_SEED)

# A bounded soak of the real log: SOAK_RATE submissions/s (plus 2x proof reads and 1x
# records queries) for SOAK_MINUTES; memory, fds and p99 per interval, entries lost;
# bench/results/soak.json and docs/soak-*.png; results in docs/robustness.md.
soak: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python bench/soak.py --minutes $(SOAK_MINUTES) --rate $(SOAK_RATE)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
