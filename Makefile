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
# a GPU host (nvidia-smi lists a GPU, or GPU=1) gets the GPU environment: .venv on Python 3.12 from requirements-gpu.lock
GPU ?= $(shell nvidia-smi -L 2>/dev/null | grep -q '^GPU ' && echo 1)
GPU_PYTHON ?= $(HARBOR_PYTHON)
# a folder from `make wheelhouse DIR=...`: install with no network
WHEELHOUSE ?=
WH := $(if $(WHEELHOUSE),$(abspath $(WHEELHOUSE)))
PIP_FROM := $(if $(WH),--no-index --find-links $(WH))
# install, wheelhouse: SCAFFOLD=0: no .venv-harbor, no claude-code CLI (a node that never runs the scaffold's trials);
# smoke: SCAFFOLD=claude_code|ohsdk: the agentic smoke. Unset: both installed, the single-turn smoke.
SCAFFOLD ?=
WANT_SCAFFOLD := $(if $(filter 0,$(SCAFFOLD)),0,1)
WITHOUT ?=
HAVE ?=

.PHONY: help install install-cpu install-gpu install-scaffold wheelhouse lock lock-check test lint validate goldens smoke bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

install: ## GPU host: .venv (Python 3.12, requirements-gpu.lock); else .venv (Python 3.11, CPU); both: .venv-harbor, the claude-code CLI (WHEELHOUSE=DIR: offline)
	$(MAKE) --no-print-directory $(if $(GPU),install-gpu,install-cpu)
	$(if $(filter 1,$(WANT_SCAFFOLD)),$(MAKE) --no-print-directory install-scaffold)

install-cpu: ## .venv: Python 3.11, CPU torch, LiveRL editable (requirements.lock)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --no-deps -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m pip check

install-gpu: ## .venv: Python 3.12, torch 2.11 (CUDA 13), vLLM 0.24, verl 0.9.1, VeOmni, Ray (requirements-gpu.lock)
	@[ -n "$(GPU_PYTHON)" ] || { echo 'make install: no Python 3.12 found for the GPU environment; set GPU_PYTHON=/path/to/python3.12' >&2; exit 2; }
	scripts/install_gpu.sh $(VENV) $(GPU_PYTHON) $(WH)

install-scaffold: ## .venv-harbor (Python 3.12: Harbor, OpenHands SDK), the claude-code CLI (pinned) in .npm-claude
	@[ -n "$(HARBOR_PYTHON)" ] || { echo 'make install: no Python >= 3.12 found for .venv-harbor (Harbor 0.25, OpenHands SDK); set HARBOR_PYTHON=/path/to/python3.12' >&2; exit 2; }
	scripts/mkvenv.sh $(HARBOR_PYTHON) $(HVENV) "$(WH)"
	$(HVENV)/bin/python -m pip install --quiet --no-deps $(PIP_FROM) -r requirements-harbor.lock
	$(HVENV)/bin/python -m pip check
	command -v tmux >/dev/null || $(if $(WH),echo 'make install: no tmux here (offline: install it with the OS packages)' >&2,(apt-get update -qq && apt-get install -y -qq tmux))
	scripts/install_claude.sh $(NPM_PREFIX) $(CLAUDE_CODE_VERSION) $(WH)

wheelhouse: ## DIR=...: every wheel of the GPU + Harbor locks and the claude-code package, for make install WHEELHOUSE=DIR (WITHOUT="torch optional", KEEP=tilelang, SCAFFOLD=0, HAVE=host-freeze.txt)
	@[ -n "$(DIR)" ] || { echo 'make wheelhouse: where? DIR=/path/to/wheelhouse' >&2; exit 2; }
	GPU_PYTHON=$(or $(GPU_PYTHON),python3.12) CLAUDE_CODE_VERSION=$(CLAUDE_CODE_VERSION) scripts/wheelhouse.sh $(DIR) "$(WITHOUT)" $(WANT_SCAFFOLD) "$(HAVE)" "$(KEEP)"

lock: ## re-resolve requirements-gpu.lock from requirements-gpu.in (registry; keeps the locked versions where they still fit)
	scripts/gpu_lock.sh lock

lock-check: ## the registry resolves requirements-gpu.lock to itself, every pin a CPython 3.12 manylinux x86-64 wheel
	scripts/gpu_lock.sh check

lint: ## ruff over the code; lint-imports: the layering in .importlinter (no cycles, no layer reaching up)
	$(VENV)/bin/ruff check liverl recipes tests benchmarks
	PYTHONPATH=$(CURDIR) $(VENV)/bin/lint-imports --config .importlinter

validate: ## every preset through every guardrail, structure-only (exit 1 = warnings only, which passes)
	$(PY) -m liverl.check --structure-only --all || [ $$? -eq 1 ]

# a GPU host runs the suite on half its cores (pytest-xdist, in the GPU lock; each file on one worker); CI, with no
# GPU, in one process as before. TEST_WORKERS=1: one process anywhere
TEST_WORKERS ?= $(if $(GPU),$(shell n=$$(nproc 2>/dev/null || echo 2); echo $$(( n > 3 ? n / 2 : 1 ))),1)
test: lint validate ## the whole suite (tests marked gpu run where a GPU is present; a GPU host: TEST_WORKERS workers)
	$(PY) -m pytest -q $(if $(filter-out 1,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile)

goldens: ## rewrite tests/golden/ and FAIL (review `git diff tests/golden`, commit the goldens alone); refused under CI
	LIVERL_UPDATE_GOLDEN=1 $(PY) -m pytest -q tests/test_matrix.py

# vLLM's sampler uses flashinfer unless told not to; a GPU environment without the optional kernels has none
NO_FLASHINFER = $(shell $(PY) -c 'import importlib.util as u; print(int(bool(u.find_spec("vllm")) and not u.find_spec("flashinfer")))' 2>/dev/null)

smoke: ## GPU host with vLLM: the tiny real smoke (train + resume; SCAFFOLD=claude_code|ohsdk: agentic; ARGS: more overrides); RAY_ADDRESS: the smoke batch for TOPOLOGY; else plans
	$(if $(filter 1,$(NO_FLASHINFER)),VLLM_USE_FLASHINFER_SAMPLER=0) $(PY) -m liverl.smoke $(if $(TOPOLOGY),topology=$(TOPOLOGY)) $(if $(filter-out 0 1,$(SCAFFOLD)),scaffold=$(SCAFFOLD)) $(ARGS)

bench: ## speed figures: plan latency, watch speed, launch latency (a local Ray head), proxy overhead
	$(PY) benchmarks/plan_latency.py
	$(PY) benchmarks/watch_speed.py
	$(PY) benchmarks/launch_latency.py
	$(PY) benchmarks/proxy_overhead.py

clean: ## remove run directories and caches
	rm -rf runs outputs multirun .pytest_cache .ruff_cache
