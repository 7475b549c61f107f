"""Test-only interpreter hook. Python imports it at start-up in every process whose PYTHONPATH holds tests/ (the
Ray heads and Slurm nodes the tests and benchmarks start set it); nothing in liverl/ or recipes/ knows about it.

With LIVERL_TASK_RUNNER_DOUBLE=module:Class (see doubles.py) set, verl's `run_ppo` runs that test double instead
of the TaskRunner a recipe passes (the real one needs GPUs, vLLM and a model): the recipe, the plan and the Ray
job are the real ones. Unset, this file does nothing.
"""

from __future__ import annotations

import os

if os.environ.get("LIVERL_TASK_RUNNER_DOUBLE"):
    import task_runner_double

    task_runner_double.install()
