# `make run` and `make test` do all set-up on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-fast lint bench schema clean

$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null || { echo "error: $(PY) not found; install Python 3.11 or newer" >&2; exit 1; }
	@echo "==> creating $(VENV) and installing capos-playground[dev]"
	@test -d $(VENV) || $(PY) -m venv $(VENV)
	@$(BIN)/pip install --quiet --upgrade pip
	@$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/capos-playground shell

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Unit tests only: the fast loop for development (under 2 minutes).
test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not native" tests

test: $(STAMP) lint
	$(BIN)/pytest -q tests

bench: $(STAMP)
	$(BIN)/capos-playground bench kernel --json bench/results/kernel.json

schema: $(STAMP)
	$(BIN)/capos-playground schema build

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
