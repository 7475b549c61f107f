"""Real Harbor trials (Harbor 0.25 in .venv-harbor) around the loop's edges: the loop as verl builds it
(hydra.utils.instantiate, nested settings as DictConfig: F5), a deadline and a cancellation that must leave no
process behind and run Harbor's environment teardown (F11), and the docker trial spec Harbor accepts (F3)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from pathlib import Path

import hydra
import pytest
from conform_double import script_for
from harness import HARBOR_PYTHON, HERE, SAMPLING, harbor_settings, make_loop, run_sample
from omegaconf import OmegaConf
from policy_double import ScriptedPolicy, after_tool_output, tool_call
from tasks import write_task
from verl.experimental.agent_loop.agent_loop import DictConfigWrap, ToolListWrap
from verl.utils.dataset.rl_dataset import RLHFDataset

from liverl.scaffold import reach
from liverl.scaffold.agent_loop import HarborAgentLoop
from liverl.scaffold.trial import RUNNER, trial_spec

pytestmark = pytest.mark.harbor
DEFAULT_RUNTIME_ROOT = "/opt/liverl-agent-runtime/openhands-sdk"  # liverl/scaffold/harbor_agents.py (imports Harbor)


def solver(prompt: str) -> str:
    if after_tool_output(prompt):
        return "Done."
    return tool_call("bash", command="echo 42 > answer.txt")


def verl_built_loop(tokenizer, policy, harbor: dict) -> HarborAgentLoop:
    """The agent_loop.yaml entry instantiated the way verl's AgentLoopWorker does (agent_loop.py:681-692)."""
    config = OmegaConf.create({"actor_rollout_ref": {"rollout": {"prompt_length": 4096, "response_length": 4096}},
                               "data": {"apply_chat_template_kwargs": {}}})
    entry = OmegaConf.create({"name": "liverl_harbor", "_target_": "liverl.scaffold.agent_loop.HarborAgentLoop",
                              "scaffold": "test", "tool_call_parser": "qwen3_coder", "harbor": harbor,
                              "trajectory_filter": {"filter": "liverl", "drop_reasons": ["timeout"]}})
    return hydra.utils.instantiate(config=entry, trainer_config=DictConfigWrap(config), server_manager=policy,
                                   tokenizer=tokenizer, processor=None, hf_model_type=None, dataset_cls=RLHFDataset,
                                   data_config=DictConfigWrap(config.data), tools=ToolListWrap([]))


def test_nested_harbor_settings_from_hydra_reach_harbor(tokenizer, tmp_path: Path) -> None:
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    harbor = harbor_settings(tmp_path, environment_kwargs={"links": {"/opt/tool-runtime": str(runtime)}},
                             agent_kwargs={"compact_after": 99}, agent_env={"EXTRA": "1"})
    policy = ScriptedPolicy(tokenizer, solver)
    loop = verl_built_loop(tokenizer, policy, harbor)
    assert isinstance(loop.harbor["environment_kwargs"]["links"], dict)
    out = run_sample(loop, write_task(tmp_path))
    assert out.reward_score == 1.0 and out.extra_fields["termination_reason"] == "agent_completed"
    assert out.num_turns == 4  # user, assistant, tool, assistant: the system message is not a turn


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def _runners() -> list[int]:
    """Live trial runners of this test process: under pytest-xdist (a GPU host's make test) other workers run
    trials at the same time, and a runner inherits its worker's PYTEST_XDIST_WORKER (liverl.paths.harbor_env)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    out = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
                if str(RUNNER) not in cmdline:
                    continue
                if worker and f"PYTEST_XDIST_WORKER={worker}".encode() not in (proc / "environ").read_bytes().split(
                        b"\0"):
                    continue
            except OSError:
                continue
            out.append(int(proc.name))
    return [p for p in out if _alive(p)]


def _hanging(tmp_path: Path, **overrides) -> dict:
    return harbor_settings(tmp_path, environment_import_path="odd_envs:HangingEnvironment",
                           environment_kwargs={"pid_file": str(tmp_path / "pids")}, max_retries=2,
                           teardown_grace_sec=20, **overrides)


def _assert_nothing_left(tmp_path: Path) -> None:
    pids = [int(p) for p in (tmp_path / "pids").read_text().split()]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (_runners() or any(_alive(p) for p in pids)):
        time.sleep(0.2)
    assert not _runners(), "a trial runner outlived its trial"
    container, helper = pids
    assert not _alive(container), "Harbor's environment teardown did not run (the container stand-in is alive)"
    assert not _alive(helper), "a process of the runner's group outlived the trial"


def test_a_deadline_is_a_timeout_that_stops_the_runner_group(tokenizer, tmp_path: Path) -> None:
    # deadline = agent + verifier + set-up = 1 + 1 + 8 s; the environment never finishes starting
    harbor = _hanging(tmp_path, agent_timeout_sec=1, verifier_timeout_sec=1, setup_timeout_sec=8)
    assert not _runners()
    loop = verl_built_loop(tokenizer, ScriptedPolicy(tokenizer, solver), harbor)
    out = run_sample(loop, write_task(tmp_path))
    assert out.extra_fields["termination_reason"] == "timeout"
    assert out.extra_fields["trial_exception"] == "RunnerDeadlineExceeded"
    assert out.extra_fields["trial_attempts"] == 1  # a deadline is never retried
    _assert_nothing_left(tmp_path)


def test_cancelling_a_sample_stops_the_runner_group(tokenizer, tmp_path: Path) -> None:
    harbor = _hanging(tmp_path, agent_timeout_sec=600, verifier_timeout_sec=60, setup_timeout_sec=600)
    loop = verl_built_loop(tokenizer, ScriptedPolicy(tokenizer, solver), harbor)
    os.environ["PYTHONPATH"] = os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])
    sample = {"raw_prompt": [{"role": "user", "content": "task"}],
              "extra_info": {"harbor_task_path": str(write_task(tmp_path))}}

    async def run_then_cancel() -> None:
        task = asyncio.create_task(loop.run(dict(SAMPLING), **sample))
        for _ in range(300):  # the environment is up (its stand-in processes are running)
            if (tmp_path / "pids").exists():
                break
            await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run_then_cancel())
    _assert_nothing_left(tmp_path)


def test_the_docker_trial_gets_an_address_its_container_reaches(tmp_path: Path) -> None:
    harbor = harbor_settings(tmp_path, environment_type="docker", environment_import_path=None,
                             proxy_bind_host="auto", setup_timeout_sec=900)
    host = reach.advertise_host(harbor, reach.bind_host(harbor))
    assert host == reach.DOCKER_HOST
    spec = trial_spec(harbor, task_path=str(write_task(tmp_path)), trial_name="t", validate=False,
                      base_url=f"http://{host}:1234/s/x")
    assert spec["agent"]["override_setup_timeout_sec"] == 900.0
    # Harbor validates the spec and keeps the overlay; the overlay maps the host on Harbor's `main` service
    code = ("import json, sys; from harbor.models.trial.config import TrialConfig; "
            "c = TrialConfig.model_validate(json.load(sys.stdin)); "
            "print(json.dumps([str(p) for p in c.environment.extra_docker_compose]), "
            "c.agent.override_setup_timeout_sec)")
    out = subprocess.run([str(HARBOR_PYTHON), "-c", code], input=json.dumps(spec), capture_output=True, text=True,
                         check=True, timeout=120).stdout.split()
    overlays = json.loads(out[0])
    assert len(overlays) == 1 and out[1] == "900.0"
    overlay = OmegaConf.load(overlays[0])
    assert list(overlay.services.main.extra_hosts) == [f"{reach.DOCKER_HOST}:host-gateway"]
    compose = subprocess.run([str(HARBOR_PYTHON), "-c", "from harbor.environments.docker import COMPOSE_PREBUILT_PATH "
                              "as p; print(p.read_text())"], capture_output=True, text=True, check=True).stdout
    assert "main" in OmegaConf.create(compose).services  # the service Harbor's docker environment runs


def test_a_remote_environment_gets_this_nodes_address(tmp_path: Path) -> None:
    harbor = harbor_settings(tmp_path, environment_import_path="my_k8s.env:Pods", proxy_bind_host="auto")
    assert reach.bind_host(harbor) == reach.ALL_INTERFACES
    assert reach.advertise_host(harbor, "0.0.0.0") not in ("0.0.0.0", "127.0.0.1", "localhost")
    assert reach.docker_overlay(harbor) is None


def test_openhands_on_an_image_without_coreutils_fails_at_set_up(tokenizer, tmp_path: Path) -> None:
    """Harbor's OpenHands run command pipes through `stdbuf -oL tee` (openhands_sdk.py:413)."""
    policy = ScriptedPolicy(tokenizer, solver)
    harbor = harbor_settings(
        tmp_path, agent_name=None, agent_import_path="liverl.scaffold.harbor_agents:MountedOpenHandsSDK",
        environment_import_path="odd_envs:NoCoreutilsEnvironment", max_retries=0,
        environment_kwargs={"links": {DEFAULT_RUNTIME_ROOT: str(HARBOR_PYTHON.parents[1])}})
    out = run_sample(verl_built_loop(tokenizer, policy, harbor), write_task(tmp_path))
    assert out.extra_fields["termination_reason"] == "env_setup_failed" and policy.calls == []
    results = [json.loads(p.read_text()) for p in (tmp_path / "trials").glob("*/result.json")]
    messages = [(r.get("exception_info") or {}).get("exception_message") or "" for r in results]
    assert any("stdbuf" in m and "coreutils" in m for m in messages), messages


def test_openhands_set_up_imports_the_sdk_once_and_records_its_version(tokenizer, tmp_path: Path) -> None:
    """MountedOpenHandsSDK's runtime check reads the SDK's version in the same import, so Harbor's set-up runs no
    version command of its own (harbor/agents/installed/base.py:1142): one whole SDK import per trial, not two
    (on the GPU host set-up was 62 s of a 124 s trial, 32 trials at once on 16 cores)."""
    log = tmp_path / "commands.jsonl"
    harbor = harbor_settings(
        tmp_path, agent_name=None, agent_import_path="liverl.scaffold.harbor_agents:MountedOpenHandsSDK",
        environment_import_path="odd_envs:RecordingEnvironment", max_retries=0,
        environment_kwargs={"links": {DEFAULT_RUNTIME_ROOT: str(HARBOR_PYTHON.parents[1])},
                            "log_file": str(log)})
    loop = make_loop(tokenizer, ScriptedPolicy(tokenizer, script_for("ohsdk")), harbor, prompt_length=400_000)
    out = run_sample(loop, write_task(tmp_path))
    assert out.extra_fields["termination_reason"] == "agent_completed" and out.reward_score == 1.0
    commands = [json.loads(line) for line in log.read_text().splitlines()]
    assert sum("import openhands.sdk" in c for c in commands) == 1, commands
    installed = subprocess.run([str(HARBOR_PYTHON), "-c", "import importlib.metadata as m; "
                                "print(m.version('openhands-sdk'))"], capture_output=True, text=True,
                               check=True).stdout.strip()
    results = [json.loads(p.read_text()) for p in (tmp_path / "trials").glob("*/result.json")]
    assert [r["agent_info"]["version"] for r in results] == [installed]
