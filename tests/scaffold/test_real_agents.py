"""The real agents complete a Harbor trial through the proxy, configured as the scaffolds configure them.

claude-code: the pinned npm CLI (`make install` puts it in .npm-claude/), Harbor's registered `claude-code` agent,
Anthropic messages with streamed server-sent events; it runs offline against the proxy (ANTHROPIC_BASE_URL, a
dummy key, CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1; liverl/scaffold/trial.py).
OpenHands SDK: LiveRL's MountedOpenHandsSDK (scaffold=ohsdk: agent name null + import path) with the SDK runtime
pre-built at the mount path (here .venv-harbor, which holds openhands-sdk/-tools, linked at that path).
The policy's chat template is the Qwen3.5-like test template, so a normal trial is one chain only if no sampled turn
is rendered again (issue 17, F2), and only if the session sees claude-code's requests as one history (F14).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import REPO, harbor_settings, make_loop, run_sample
from policy_double import ScriptedPolicy, after_tool_output, tool_call
from tasks import write_task
from tokenizer_fixture import with_template

from liverl.scaffold.proxy import Proxy
from liverl.scaffold.session import Session

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
    """A normal trial is one chain: no history rewrite, and the trained tokens (mask 1) are exactly the tokens the
    policy double sampled (it records its own calls), every call in order, with their log-probs."""
    assert out.extra_fields["history_rewrites"] == 0
    trained = [t for t, m in zip(out.response_ids, out.response_mask, strict=True) if m == 1]
    assert trained == [t for call in policy.calls for t in call.token_ids]
    logp = [lp for lp, m in zip(out.response_logprobs, out.response_mask, strict=True) if m == 1]
    assert logp == [lp for call in policy.calls for lp in call.log_probs]
    seq = out.prompt_ids + out.response_ids
    assert all(call.prompt_ids == seq[: len(call.prompt_ids)] for call in policy.calls)


@pytest.fixture(autouse=True)
def keepalives(monkeypatch):
    """Turns take longer than the keep-alive interval, so the real clients read keep-alive events on every stream."""
    monkeypatch.setattr(Proxy, "keepalive_sec", 0.1, raising=False)


@pytest.fixture
def requests(monkeypatch) -> list[int]:
    """The number of requests each session answered (final stops included), in session order."""
    seen: dict[str, int] = {}
    turn = Session.turn

    async def counting(self, *args, **kwargs):
        seen[self.id] = seen.get(self.id, 0) + 1
        return await turn(self, *args, **kwargs)

    monkeypatch.setattr(Session, "turn", counting)
    return seen


@pytest.fixture
def qwen35(tokenizer):
    """The test tokenizer with the Qwen3.5-like template (tests/scaffold/templates): it renders a past assistant turn
    without reasoning differently once messages follow it, as the real one does (F2)."""
    return with_template(tokenizer, "qwen35_like")


def test_claude_code_cli_completes_a_trial_through_the_proxy(qwen35, tmp_path: Path) -> None:
    tokenizer = qwen35
    assert (CLAUDE_BIN / "claude").exists(), "the claude-code CLI is missing: run `make install`"
    policy = ScriptedPolicy(tokenizer, script_for("Bash", "command"), delay_sec=0.4)
    loop = make_loop(tokenizer, policy, claude_code(tmp_path), prompt_length=400_000, response_length=400_000)
    out = run_sample(loop, write_task(tmp_path))
    assert out.reward_score == 1.0, out.extra_fields
    assert out.extra_fields["termination_reason"] == "agent_completed"
    assert out.extra_fields["model_calls"] >= 2
    check_faithful(out, policy)


def test_openhands_sdk_completes_a_trial_through_the_proxy(qwen35, tmp_path: Path) -> None:
    tokenizer = qwen35
    policy = ScriptedPolicy(tokenizer, script_for("terminal", "command"), delay_sec=0.4)
    loop = make_loop(tokenizer, policy, openhands(tmp_path), prompt_length=400_000, response_length=400_000)
    out = run_sample(loop, write_task(tmp_path))
    assert out.reward_score == 1.0, out.extra_fields
    assert out.extra_fields["termination_reason"] == "agent_completed"
    check_faithful(out, policy)


def claude_code(tmp_path: Path) -> dict:
    return harbor_settings(tmp_path, agent_name="claude-code", agent_import_path=None,
                           model_api_format="anthropic_messages", agent_path_prepend=str(CLAUDE_BIN),
                           agent_timeout_sec=240)


def openhands(tmp_path: Path) -> dict:
    return harbor_settings(
        tmp_path, agent_name=None, agent_import_path="liverl.scaffold.harbor_agents:MountedOpenHandsSDK",
        environment_kwargs={"links": {DEFAULT_RUNTIME_ROOT: str(REPO / ".venv-harbor")}}, agent_timeout_sec=240)


@pytest.mark.parametrize("agent", ["claude_code", "openhands"])
def test_a_full_response_window_stops_the_real_agent(qwen35, tmp_path: Path, requests, agent) -> None:
    tokenizer = qwen35
    """After the first turn the window is full: the proxy answers a final stop and the agent ends its run at once
    (one more request, no retry, no compaction), the trial is `overlong` and the first turn is trained."""
    policy = ScriptedPolicy(tokenizer, script_for("Bash" if agent == "claude_code" else "terminal", "command"))
    first = len(tokenizer.encode(policy.script("<tools>"), add_special_tokens=False)) + 1
    harbor = claude_code(tmp_path) if agent == "claude_code" else openhands(tmp_path)
    loop = make_loop(tokenizer, policy, harbor, prompt_length=400_000, response_length=first + 8)
    out = run_sample(loop, write_task(tmp_path))
    assert out.extra_fields["termination_reason"] == "overlong", out.extra_fields
    assert out.reward_score == 1.0  # the first turn's call wrote the answer; the verifier still ran
    assert len(policy.calls) == 1 and list(requests.values()) == [2]
    check_faithful(out, policy)


def test_ohsdk_without_a_prebuilt_runtime_never_installs_and_is_env_setup_failed(tokenizer, tmp_path: Path) -> None:
    policy = ScriptedPolicy(tokenizer, script_for("terminal", "command"))
    harbor = harbor_settings(tmp_path, agent_name=None, max_retries=0,
                             agent_import_path="liverl.scaffold.harbor_agents:MountedOpenHandsSDK")
    out = run_sample(make_loop(tokenizer, policy, harbor), write_task(tmp_path))
    assert out.extra_fields["termination_reason"] == "env_setup_failed" and policy.calls == []
