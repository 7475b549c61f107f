# LiveRL. Set up: `make install`, then `make test`. `make help` lists the targets.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
# Harbor 0.25 and the OpenHands SDK need Python >= 3.12: they live in their own venv, driven per trial by the agent
# loop (liverl/scaffold/trial.py); the claude-code CLI (npm, pinned) in a repo-local prefix
# the first Python >= 3.12 that really runs (pyenv's shim answers `command -v` even where no 3.12 is selected)
HARBOR_PYTHON ?= $(shell for p in $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3.12) $$(command -v python3.12); do \
	$$p -c 'import sys; assert sys.version_info >= (3, 12)' 2>/dev/null && echo $$p && break; done)
HVENV ?= .venv-harbor
CLAUDE_CODE_VERSION ?= 2.1.332
NPM_PREFIX ?= .npm-claude
TOPOLOGY ?=

.PHONY: help install test lint validate goldens smoke bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

install: ## .venv (Python 3.11, LiveRL editable), .venv-harbor (Python 3.12: Harbor, OpenHands SDK), the claude-code CLI
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --no-deps -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m pip check
	@[ -n "$(HARBOR_PYTHON)" ] || { echo 'make install: no Python >= 3.12 found for .venv-harbor (Harbor 0.25, OpenHands SDK); set HARBOR_PYTHON=/path/to/python3.12' >&2; exit 2; }
	$(HARBOR_PYTHON) -m venv $(HVENV)
	$(HVENV)/bin/python -m pip install --quiet --no-deps -r requirements-harbor.lock
	$(HVENV)/bin/python -m pip check
	command -v tmux >/dev/null || (apt-get update -qq && apt-get install -y -qq tmux)
	npm install --prefix $(NPM_PREFIX) --no-audit --no-fund --no-save --loglevel=error \
		@anthropic-ai/claude-code@$(CLAUDE_CODE_VERSION)
	$(NPM_PREFIX)/node_modules/.bin/claude --version

lint: ## ruff over the code; lint-imports: the layering in .importlinter (no cycles, no layer reaching up)
	$(VENV)/bin/ruff check liverl recipes tests benchmarks
	PYTHONPATH=$(CURDIR) $(VENV)/bin/lint-imports --config .importlinter

validate: ## every preset through every guardrail, structure-only (exit 1 = warnings only, which passes)
	$(PY) -m liverl.check --structure-only --all || [ $$? -eq 1 ]

test: lint validate ## the whole suite, CPU only
	$(PY) -m pytest -q

goldens: ## rewrite tests/golden/ and FAIL (review `git diff tests/golden`, commit the goldens alone); refused under CI
	LIVERL_UPDATE_GOLDEN=1 $(PY) -m pytest -q tests/test_matrix.py

smoke: ## GPU host with vLLM: the tiny real smoke (train + resume); RAY_ADDRESS: the smoke batch for TOPOLOGY; else plans every topology
	$(PY) -m liverl.smoke $(if $(TOPOLOGY),topology=$(TOPOLOGY))

bench: ## speed figures: plan latency, watch speed, launch latency (a local Ray head), proxy overhead
	$(PY) benchmarks/plan_latency.py
	$(PY) benchmarks/watch_speed.py
	$(PY) benchmarks/launch_latency.py
	$(PY) benchmarks/proxy_overhead.py

clean: ## remove run directories and caches
	rm -rf runs outputs multirun .pytest_cache .ruff_cache
