"""Fast checks of the scaffold's pieces: parsers, termination mapping, API round trips, LiveRL without Harbor."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from liverl.scaffold import chat, termination
from liverl.scaffold.toolcalls import parse


def test_qwen3_coder_and_hermes_parsers_split_content_and_calls() -> None:
    xml = "Let me look.\n<tool_call>\n<function=Bash>\n<parameter=command>\nls -la\n</parameter>\n" \
          "<parameter=timeout>\n30\n</parameter>\n</function>\n</tool_call>"
    bash = {"type": "function", "function": {"name": "Bash", "parameters": {"properties": {
        "command": {"type": "string"}, "timeout": {"type": "number"}}}}}
    p = parse(xml, "qwen3_coder", [bash])
    assert p.content == "Let me look." and p.tool_calls[0].name == "Bash"
    assert p.tool_calls[0].arguments == {"command": "ls -la", "timeout": 30}
    p = parse('ok <tool_call>\n{"name": "bash", "arguments": {"command": "pwd"}}\n</tool_call>', "hermes")
    assert p.content == "ok" and p.tool_calls[0].arguments == {"command": "pwd"}
    broken = "<tool_call>{not json</tool_call>"
    assert parse(broken, "hermes").tool_calls == [] and parse(broken, "hermes").content == broken
    with pytest.raises(ValueError, match="tool_call_parser: unknown parser"):
        parse("x", "mistral")


@pytest.mark.parametrize("result,calls,limit,reason", [
    ({"exception_info": {"exception_type": "AgentTimeoutError"}, "verifier_result": {"rewards": {"reward": 0}}},
     3, None, "timeout"),
    ({"exception_info": {"exception_type": "VerifierTimeoutError"}}, 3, None, "timeout"),
    ({"exception_info": {"exception_type": "RuntimeError"}}, 0, None, "env_setup_failed"),
    ({"exception_info": {"exception_type": "AgentSetupTimeoutError"}}, 0, None, "env_setup_failed"),
    ({"verifier_result": {"rewards": {"reward": 1}}}, 0, None, "env_setup_failed"),  # no model call captured
    ({"verifier_result": {"rewards": {"reward": 0}}}, 4, "overlong", "overlong"),
    ({"verifier_result": {"rewards": {"reward": 0}}}, 4, "max_turns_reached", "max_turns_reached"),
    ({"verifier_result": {"rewards": {"reward": 1}}}, 4, None, "agent_completed"),
])
def test_termination_reasons(result, calls, limit, reason) -> None:
    assert termination.reason_of(result, model_calls=calls, session_limit=limit) == reason


def test_retry_only_without_a_verifier_result_and_never_after_a_timeout() -> None:
    assert termination.should_retry({"verifier_result": None}, "env_setup_failed")
    assert not termination.should_retry({"verifier_result": None}, "timeout")
    assert not termination.should_retry({"verifier_result": {"rewards": {"reward": 0}}}, "agent_completed")


def test_anthropic_history_normalises_like_openai() -> None:
    anthropic = {"system": [{"type": "text", "text": "sys"}], "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "text", "text": "run"},
                                          {"type": "tool_use", "id": "t1", "name": "bash", "input": {"c": "ls"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "out"}]}]}
    openai = {"messages": [
        {"role": "system", "content": "sys"}, {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "run",
         "tool_calls": [{"id": "x", "type": "function", "function": {"name": "bash", "arguments": '{"c": "ls"}'}}]},
        {"role": "tool", "tool_call_id": "x", "content": "out"}]}
    assert chat.anthropic_messages(anthropic) == chat.openai_messages(openai)


def test_streamed_anthropic_reply_carries_the_tool_call() -> None:
    reply = chat.anthropic_reply(parse('<tool_call>{"name": "Bash", "arguments": {"command": "ls"}}</tool_call>',
                                       "hermes"), "stop", "policy", (10, 5))
    events = [json.loads(line[6:]) for line in chat.anthropic_stream(reply).decode().splitlines()
              if line.startswith("data: ")]
    assert events[0]["type"] == "message_start" and events[-1]["type"] == "message_stop"
    delta = next(e for e in events if e["type"] == "content_block_delta")["delta"]
    assert json.loads(delta["partial_json"]) == {"command": "ls"}
    assert next(e for e in events if e["type"] == "message_delta")["delta"]["stop_reason"] == "tool_use"


def test_liverl_imports_without_harbor_in_the_trainer_environment() -> None:
    code = ("import sys, liverl.scaffold.agent_loop, liverl.scaffold.traj_filter, "
            "liverl.guardrails.rules.scaffold_imports, liverl.train\n"
            "assert not [m for m in sys.modules if m.split('.')[0] == 'harbor'], 'harbor imported'\n"
            "import importlib.util; print('harbor spec:', importlib.util.find_spec('harbor'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    # Harbor is not in the trainer's environment at all; the last line, since imports may print (the GPU host's
    # VeOmni logs "attention patches applied" to stdout when it is imported)
    assert out.stdout.strip().splitlines()[-1] == "harbor spec: None", out.stdout[-2000:]


def test_planning_judges_the_scaffold_without_importing_it() -> None:
    """scaffold-imports reads liverl/scaffold/ as files (the scaffold is the top layer: nothing imports it)."""
    code = ("import sys\nfrom liverl.errors import ConfigError\nfrom liverl.recipe.build import build\n"
            "from liverl.recipe.compose import compose_liverl\n"
            "try:\n    build(compose_liverl(['scaffold.agent_loop.target=liverl.scaffold.agent_loop.NoSuchLoop']))\n"
            "except ConfigError as e:\n    print(e)\n"
            "print('scaffold modules:', [m for m in sys.modules if m.startswith('liverl.scaffold')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert "[scaffold-imports] scaffold.agent_loop.target" in out.stdout and "defines no NoSuchLoop" in out.stdout
    assert out.stdout.strip().endswith("scaffold modules: []")
