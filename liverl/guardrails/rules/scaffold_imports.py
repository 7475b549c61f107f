"""`scaffold-imports`: the plan's agent loop and Harbor agent class import where the trainer will run.

The agent loop (RUN_DIR/agent_loop.yaml `_target_`) is instantiated by verl's agent-loop workers in the trainer's
interpreter (verl/experimental/agent_loop/agent_loop.py:681-692); the Harbor agent class (the scaffold's
`agent_import_path`, or HARBOR_AGENT_IMPORT_PATH) and an environment class by import path are loaded by Harbor in
the Python 3.12 environment the agent loop drives (liverl/scaffold/trial.py). Checked with the interpreters this
machine would launch with, statically (importcheck.py: module files are read, never imported; Harbor's side runs
it as a subprocess under Harbor's interpreter), so a launch does not find out after the cluster is up.
SKIP in structure-only mode.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
from collections.abc import Iterable
from pathlib import Path

from liverl.errors import Problem
from liverl.guardrails import importcheck
from liverl.guardrails.framework import FATAL, SKIP, Ctx, finding, rule
from liverl.paths import LIVERL_ROOT, harbor_env, harbor_python

IMPORTCHECK = Path(importcheck.__file__)


def harbor_problems(harbor: dict, paths: list[str]) -> dict[str, str | None]:
    """{import path: None | why Harbor's interpreter cannot load it}."""
    return dict(_harbor_check(harbor_python(harbor.get("python")), tuple(paths), harbor.get("agent_path_prepend")))


@functools.lru_cache(maxsize=64)
def _harbor_check(python: str, paths: tuple[str, ...], path_prepend: str | None) -> tuple[tuple[str, str | None], ...]:
    """One interpreter start per (interpreter, paths) in a process: a multirun plans many runs alike."""
    if not Path(python).exists():
        return tuple((p, f"Harbor's Python 3.12 ({python}) does not exist; make install builds it") for p in paths)
    proc = subprocess.run([python, str(IMPORTCHECK), *paths], capture_output=True, text=True, timeout=60,
                          env=harbor_env({"agent_path_prepend": path_prepend}), cwd=LIVERL_ROOT)
    if proc.returncode != 0:
        return tuple((p, f"{python} failed: {proc.stderr.strip()[-300:]}") for p in paths)
    return tuple(json.loads(proc.stdout).items())


@rule("scaffold-imports", "the agent loop and the Harbor agent class import where the trainer runs")
def _scaffold_imports(c: Ctx) -> Iterable[Problem]:
    s = c.cfg.scaffold
    if c.structure_only:
        yield finding(SKIP, "scaffold.agent_loop.target", s.agent_loop.target,
                      "structure-only mode does not look at this machine's environments", "run without it")
        return
    reason = importcheck.problem(s.agent_loop.target)
    if reason:
        yield finding(FATAL, "scaffold.agent_loop.target", s.agent_loop.target,
                      f"verl's agent-loop workers cannot instantiate it: {reason}",
                      "make install (or set scaffold.agent_loop.target=<module.Class> to an agent loop that exists)")
    harbor = dict(s.harbor)
    agent = os.environ.get("HARBOR_AGENT_IMPORT_PATH") or harbor.get("agent_import_path")
    paths = [p for p in (agent, harbor.get("environment_import_path")) if p]
    for path, why in harbor_problems(harbor, paths).items() if paths else ():
        if why:
            key = "scaffold.harbor.agent_import_path" if path == agent else "scaffold.harbor.environment_import_path"
            yield finding(FATAL, key, path, f"Harbor cannot load it for the trials: {why}",
                          "make install (builds .venv-harbor), or name a class that Harbor's environment has")
