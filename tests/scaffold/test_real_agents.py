"""The real agents complete a Harbor trial through the proxy, configured as the scaffolds configure them.

claude-code: the pinned npm CLI (`make install` puts it in .npm-claude/), Harbor's registered `claude-code` agent,
Anthropic messages with streamed server-sent events; it runs offline against the proxy (ANTHROPIC_BASE_URL, a
dummy key, CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1; liverl/scaffold/trial.py).
OpenHands SDK: LiveRL's MountedOpenHandsSDK (scaffold=ohsdk: agent name null + import path) with the SDK runtime
pre-built at the mount path (here .venv-harbor, which holds openhands-sdk/-tools, linked at that path).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import REPO, harbor_settings, make_loop, run_sample
from policy_double import ScriptedPolicy, after_tool_output, tool_call
from tasks import write_task

# liverl/scaffold/harbor_agents.py's default (that module imports Harbor: 3.12 only)
DEFAULT_RUNTIME_ROOT = "/opt/liverl-agent-runtime/openhands-sdk"

pytestmark = [pytest.mark.harbor, pytest.mark.slow]
CLAUDE_BIN = REPO / ".npm-claude" / "node_modules" / ".bin"


def script_for(tool: str, param: str):
    def script(prompt: str) -> str:
        if "<tools>" not in prompt:  # a side request without tools
            return "OK"
        if after_tool_output(prompt):
            return "The file is written. Done."
        return "I will write the file.\n" + tool_call(tool, **{param: "echo 42 > answer.txt"})

    return script


def check_faithful(out, policy) -> None:
    trained = [t for t, m in zip(out.response_ids, out.response_mask, strict=True) if m == 1]
    sampled = {tuple(c.token_ids) for c in policy.calls}
    # the trained chain is a run of sampled turns, each exactly as sampled
    assert trained and len(trained) <= sum(len(c.token_ids) for c in policy.calls)
    assert any(tuple(trained[: len(c.token_ids)]) == tuple(c.token_ids) for c in policy.calls)
    assert all(tuple(c.token_ids) in sampled for c in policy.calls)


def test_claude_code_cli_completes_a_trial_through_the_proxy(tokenizer, tmp_path: Path) -> None:
    assert (CLAUDE_BIN / "claude").exists(), "the claude-code CLI is missing: run `make install`"
    policy = ScriptedPolicy(tokenizer, script_for("Bash", "command"))
    harbor = harbor_settings(tmp_path, agent_name="claude-code", agent_import_path=None,
                             model_api_format="anthropic_messages", agent_path_prepend=str(CLAUDE_BIN),
                             agent_timeout_sec=240)
    loop = make_loop(tokenizer, policy, harbor, prompt_length=400_000, response_length=400_000)
    out = run_sample(loop, write_task(tmp_path))
    assert out.reward_score == 1.0, out.extra_fields
    assert out.extra_fields["termination_reason"] == "agent_completed"
    assert out.extra_fields["model_calls"] >= 2
    check_faithful(out, policy)


def test_openhands_sdk_completes_a_trial_through_the_proxy(tokenizer, tmp_path: Path) -> None:
    policy = ScriptedPolicy(tokenizer, script_for("terminal", "command"))
    harbor = harbor_settings(
        tmp_path, agent_name=None, agent_import_path="liverl.scaffold.harbor_agents:MountedOpenHandsSDK",
        environment_kwargs={"links": {DEFAULT_RUNTIME_ROOT: str(REPO / ".venv-harbor")}}, agent_timeout_sec=240)
    loop = make_loop(tokenizer, policy, harbor, prompt_length=400_000, response_length=400_000)
    out = run_sample(loop, write_task(tmp_path))
    assert out.reward_score == 1.0, out.extra_fields
    assert out.extra_fields["termination_reason"] == "agent_completed"
    check_faithful(out, policy)


def test_ohsdk_without_a_prebuilt_runtime_never_installs_and_is_env_setup_failed(tokenizer, tmp_path: Path) -> None:
    policy = ScriptedPolicy(tokenizer, script_for("terminal", "command"))
    harbor = harbor_settings(tmp_path, agent_name=None, max_retries=0,
                             agent_import_path="liverl.scaffold.harbor_agents:MountedOpenHandsSDK")
    out = run_sample(make_loop(tokenizer, policy, harbor), write_task(tmp_path))
    assert out.extra_fields["termination_reason"] == "env_setup_failed" and policy.calls == []
