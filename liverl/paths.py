"""Where LiveRL's own files are: the checkout (or installed tree), its `conf/` groups, and the Harbor environment.

Harbor 0.25 and the OpenHands SDK need Python >= 3.12, so they live in their own venv (`.venv-harbor`, built by
`make install`). The scaffold's agent loop runs each trial there (liverl/scaffold/trial.py); the guardrail
`scaffold-imports` checks, with the same interpreter and environment, that Harbor can load the plan's classes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

LIVERL_ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = LIVERL_ROOT / "conf"
HARBOR_PYTHON_ENV = "LIVERL_HARBOR_PYTHON"


def harbor_python(configured: str | None = None) -> str:
    """The 3.12 interpreter with Harbor: the setting, else $LIVERL_HARBOR_PYTHON, else the checkout's .venv-harbor."""
    return configured or os.environ.get(HARBOR_PYTHON_ENV) or str(LIVERL_ROOT / ".venv-harbor" / "bin" / "python")


def harbor_env(harbor: Mapping[str, Any]) -> dict[str, str]:
    """The environment of a process under Harbor's interpreter: LiveRL first on PYTHONPATH (Harbor loads LiveRL's
    agent classes by import path), Harbor's telemetry and LiteLLM's cost-map download off, `agent_path_prepend`
    (a folder with the agent's CLI, e.g. claude) first on PATH."""
    env = dict(os.environ)
    paths = [str(LIVERL_ROOT), *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env.setdefault("HARBOR_TELEMETRY", "0")
    env.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    extra_path = harbor.get("agent_path_prepend")
    if extra_path:
        env["PATH"] = os.pathsep.join([str(extra_path), env.get("PATH", "")])
    return env
