"""A run directory: the names of its files, the Plan it holds, and run.json's status transitions.

Every step after planning (launchers, status, stop, health) reads a run directory through this module.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from liverl.atomic import write_atomic
from liverl.secrets import env_scrubber

# the files of a plan, relative to the run directory
LIVERL_YAML = "liverl.yaml"
VERL_YAML = "verl.yaml"
AGENT_LOOP_YAML = "agent_loop.yaml"
COMMAND_SH = "command.sh"
ENV_JSON = "env.json"
SUMMARY_TXT = "summary.txt"
CHECKS_JSON = "checks.json"
RUN_JSON = "run.json"
ERRORS_TXT = "errors.txt"
# where a plan's environment reaches the Ray workers (verl's ray.init runtime env)
RUNTIME_ENV_VARS = "ray_kwargs.ray_init.runtime_env.env_vars"


@dataclass(frozen=True)
class Plan:
    run_dir: Path
    recipe: str
    entrypoint: str
    gpus: dict[str, int]

    @classmethod
    def load(cls, run_dir: str | os.PathLike) -> Plan:
        run = json.loads((Path(run_dir) / RUN_JSON).read_text())
        return cls(Path(run_dir), run["recipe"], run["verl_entrypoint"], run["gpus"])

    def verl_config(self) -> DictConfig:
        return OmegaConf.load(self.run_dir / VERL_YAML)

    def env(self) -> dict[str, str]:
        """The environment the plan sets (secrets are never stored; they come from the caller's env)."""
        return json.loads((self.run_dir / ENV_JSON).read_text())


def set_status(run_dir: Path, status: str, **fields: Any) -> None:
    """Record a status transition in run.json (atomic replace)."""
    entry = {"status": status, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    update_run(run_dir, _transition=entry, **fields)


def update_run(run_dir: Path, _transition: dict[str, str] | None = None, **fields: Any) -> None:
    """Set fields in run.json (atomic replace; the launcher and a Ray job on a shared disk may both write)."""
    path = run_dir / RUN_JSON
    run = json.loads(path.read_text()) if path.is_file() else {}
    run.setdefault("history", [])
    run.update(fields)
    if _transition:
        run["status"] = _transition["status"]
        run["history"].append(_transition)
    write_atomic(path, env_scrubber().scrub(json.dumps(run, indent=2)) + "\n")  # a reason may quote a secret


def recorded_gpu(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """run.json's `gpu`: the GPU the plan was judged against ({"name", "device", "memory_bytes", "source": "plan"},
    from the `gpu` group), replaced at launch by what the node probe found ("source": "probe", the smallest GPU
    over the nodes, "planned": the group's name). None for a run directory written before LiveRL recorded it."""
    path = Path(run_dir) / RUN_JSON
    try:
        gpu = json.loads(path.read_text()).get("gpu")
    except (OSError, ValueError):
        return None
    return gpu if isinstance(gpu, dict) and gpu.get("memory_bytes") else None


def recorded_gpu_memory_gb(run_dir: str | os.PathLike) -> float | None:
    """The recorded GPU's memory in verl's "GB" (2**30 bytes: actor/perf/max_memory_allocated_gb divides by 1024**3,
    verl/workers/engine_workers.py:219), the unit liverl.advise compares peaks in; None if not recorded."""
    gpu = recorded_gpu(run_dir)
    return gpu["memory_bytes"] / 2**30 if gpu else None
