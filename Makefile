# LiveRL. Set up: `make install`, then `make test`. `make help` lists the targets.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
TOPOLOGY ?=

.PHONY: help install test lint validate smoke bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

install: ## create .venv (Python 3.11) with the exactly pinned dependencies and LiveRL (editable)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --no-deps -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m pip check

lint: ## ruff over the code; lint-imports: the layering in .importlinter (no cycles, no layer reaching up)
	$(VENV)/bin/ruff check liverl recipes tests benchmarks
	PYTHONPATH=$(CURDIR) $(VENV)/bin/lint-imports --config .importlinter

validate: ## every preset through every guardrail, structure-only (exit 1 = warnings only, which passes)
	$(PY) -m liverl.check --structure-only --all || [ $$? -eq 1 ]

test: lint validate ## the whole suite, CPU only
	$(PY) -m pytest -q

smoke: ## GPU host with vLLM: the tiny real smoke (train + resume); RAY_ADDRESS: the smoke batch for TOPOLOGY; else plans every topology
	$(PY) -m liverl.smoke $(if $(TOPOLOGY),topology=$(TOPOLOGY))

bench: ## speed figures: plan latency, watch speed, launch latency (a local Ray head)
	$(PY) benchmarks/plan_latency.py
	$(PY) benchmarks/watch_speed.py
	$(PY) benchmarks/launch_latency.py

clean: ## remove run directories and caches
	rm -rf runs outputs multirun .pytest_cache .ruff_cache
