"""The agent loop's side of a Harbor trial: build the TrialConfig, run it in `.venv-harbor`, read the result.

Python versions: Harbor 0.25 and the OpenHands SDK need Python >= 3.12; verl's agent-loop workers run in the
trainer's 3.11 interpreter. Each trial runs `trial_runner.py` under `.venv-harbor/bin/python` as a subprocess
(measured: ~1.5-2.5 s to import Harbor and start, against trials of minutes; docs/scaffold.md). The proxy stays
in the worker, next to verl's server manager.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from liverl.paths import harbor_env, harbor_python
from liverl.scaffold import reach
from liverl.scaffold.trial_runner import MARKER

DEADLINE = "RunnerDeadlineExceeded"  # termination.py classes it a timeout (never retried)
RUNNER = Path(__file__).with_name("trial_runner.py")
DUMMY_KEY = "sk-liverl-proxy"  # the proxy takes no key; agents insist on having one


TEARDOWN_GRACE_SEC = 60.0  # SIGTERM -> SIGKILL: time for Harbor's environment teardown (docker compose down)


def agent_section(harbor: dict[str, Any], base_url: str, timeout_sec: float) -> dict[str, Any]:
    """Harbor's AgentConfig for the scaffold, pointed at this trial's proxy session."""
    fmt = harbor.get("model_api_format") or "openai_chat_completions"
    env = {str(k): str(v) for k, v in (harbor.get("agent_env") or {}).items()}
    if fmt == "anthropic_messages":
        env |= {"ANTHROPIC_BASE_URL": base_url, "ANTHROPIC_API_KEY": DUMMY_KEY,
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1"}
        model, url = "anthropic/policy", base_url
    else:
        env |= {"LLM_BASE_URL": f"{base_url}/v1", "LLM_API_KEY": DUMMY_KEY, "OPENAI_API_KEY": DUMMY_KEY}
        model, url = "openai/policy", f"{base_url}/v1"
    name = os.environ.get("HARBOR_AGENT_NAME", harbor.get("agent_name"))
    import_path = os.environ.get("HARBOR_AGENT_IMPORT_PATH", harbor.get("agent_import_path"))
    return {"name": None if name in (None, "", "null") else name, "import_path": import_path, "model_name": model,
            "base_url": url, "model_api_format": fmt, "override_timeout_sec": timeout_sec, "env": env,
            # Harbor's agent set-up (install) timeout (models/trial/config.py:117 -> trial/trial.py:1717-1725)
            "override_setup_timeout_sec": _float_or_none(harbor.get("setup_timeout_sec")),
            "kwargs": dict(harbor.get("agent_kwargs") or {})}


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def environment_section(harbor: dict[str, Any]) -> dict[str, Any]:
    """The task environment: Harbor's docker type, or an environment class by import path (type null)."""
    import_path = harbor.get("environment_import_path")
    section: dict[str, Any] = {"type": None if import_path else (harbor.get("environment_type") or "docker"),
                               "import_path": import_path, "kwargs": dict(harbor.get("environment_kwargs") or {})}
    for key in ("override_cpus", "override_memory_mb", "override_storage_mb", "override_gpus"):
        if harbor.get(key) is not None:
            section[key] = harbor[key]
    overlay = reach.docker_overlay(harbor)  # the agent in a container reaches the proxy on this host
    if overlay:
        section["extra_docker_compose"] = [*(harbor.get("extra_docker_compose") or []), overlay]
    return section


def trial_spec(harbor: dict[str, Any], *, task_path: str, trial_name: str, base_url: str,
               validate: bool) -> dict[str, Any]:
    timeout = float(harbor["val_agent_timeout_sec"] if validate else harbor["agent_timeout_sec"])
    spec: dict[str, Any] = {
        "task": {"path": task_path},
        "trial_name": trial_name,
        "trials_dir": str(harbor.get("trials_dir") or "trials"),
        "agent": agent_section(harbor, base_url, timeout),
        "environment": environment_section(harbor),
    }
    if harbor.get("verifier_timeout_sec") is not None:
        spec["verifier"] = {"override_timeout_sec": float(harbor["verifier_timeout_sec"])}
    return spec


async def run_trial(spec: dict[str, Any], harbor: dict[str, Any], deadline_sec: float) -> dict[str, Any]:
    """One trial in the 3.12 environment; a runner that dies or outlives the deadline is a failed trial.

    The runner leads its own process group (start_new_session): at the deadline, and when this task is
    cancelled, the whole group gets SIGTERM (the runner then cancels Harbor's Trial.run, whose `finally` tears the
    environment down: harbor/trial/trial.py:622-630,660-664), and SIGKILL after `teardown_grace_sec`."""
    proc = await asyncio.create_subprocess_exec(
        harbor_python(harbor.get("python")), str(RUNNER), stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=harbor_env(harbor),
        start_new_session=True,
    )
    grace = float(harbor.get("teardown_grace_sec") or TEARDOWN_GRACE_SEC)
    try:
        out, err = await asyncio.wait_for(proc.communicate(json.dumps(spec).encode()), deadline_sec)
    except TimeoutError:
        await stop_group(proc, grace)
        return _failure(DEADLINE, f"the trial runner outlived its {deadline_sec:.0f} s deadline")
    except asyncio.CancelledError:
        await asyncio.shield(stop_group(proc, grace))
        raise
    for line in reversed(out.decode(errors="replace").splitlines()):
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER):])
    tail = err.decode(errors="replace")[-2000:]
    return _failure("RunnerFailed", f"{harbor_python(harbor.get('python'))} exited {proc.returncode}: {tail}")


async def stop_group(proc: asyncio.subprocess.Process, grace_sec: float) -> None:
    """SIGTERM the runner's process group, give the runner up to `grace_sec` to finish its teardown, then SIGKILL
    whatever of the group is left. The runner's exit is read from its return code: `proc.wait()` also waits for
    its pipes, which a leftover process of the group may hold open."""
    _signal_group(proc.pid, signal.SIGTERM)
    end = time.monotonic() + grace_sec
    while proc.returncode is None and time.monotonic() < end:
        await asyncio.sleep(0.1)
    _signal_group(proc.pid, signal.SIGKILL)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(proc.wait(), 10)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # the group is already gone
        os.killpg(pgid, sig)


def _failure(kind: str, message: str) -> dict[str, Any]:
    print(f"liverl.scaffold: trial runner failure: {kind}: {message}", file=sys.stderr)
    return {"exception_info": {"exception_type": kind, "exception_message": message}, "verifier_result": None}
