"""`python -m liverl.conform` end to end: real Harbor trials, real agents, the policy double, the real command line.

Each figure is checked against numbers known without the gate: the double's script (how many turns each agent
takes on a task), the token counts of its scripted replies in the double's tokenizer, and an agent that lingers a
known time after its last reply. The ledger is a temporary file (tests/conftest.py sets LIVERL_CONFORM_LEDGER).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from conform_double import SHELL, TOOL_TURNS, script_for
from harness import REPO
from tokenizer_fixture import CHAT_TEMPLATE

from liverl.conform.figures import KEYS
from liverl.tiny.agentic import make_task
from liverl.tiny.transcripts import first_request

pytestmark = [pytest.mark.harbor, pytest.mark.slow]
HERE = Path(__file__).resolve().parent


def conform(tmp_path: Path, *overrides: str) -> tuple[int, dict, list[dict], str]:
    ledger = tmp_path / "ledger.jsonl"
    env = dict(os.environ, LIVERL_CONFORM_LEDGER=str(ledger),
               PYTHONPATH=os.pathsep.join([str(REPO), str(HERE), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-m", "liverl.conform", *overrides], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    last = json.loads(proc.stdout.strip().splitlines()[-1])  # the last line of stdout is the JSON object
    assert set(KEYS) <= set(last), proc.stdout
    records = [json.loads(line) for line in ledger.read_text().splitlines()]
    return proc.returncode, last, records, proc.stdout + proc.stderr


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def reply_tokens(tokenizer, text: str) -> int:
    return len(tokenizer.encode(text, add_special_tokens=False)) + 1  # the double ends each reply with <|im_end|>


def test_a_compacting_agent_fails_the_gate_with_the_figures_of_its_script(tokenizer, tmp_path: Path) -> None:
    # MiniAgent rewrites its history after its first turn: turn 1 is a chain of its own; turns 2 (the tool call
    # again: the summary holds no tool result) and 3 ("done") extend a second chain, the one trained
    code, fig, records, out = conform(
        tmp_path, "scaffold=claude_code", "scaffold.harbor.agent_name=null",
        "scaffold.harbor.agent_import_path=mini_agent:MiniAgent",
        "scaffold.harbor.model_api_format=openai_chat_completions",
        "+scaffold.harbor.agent_kwargs.compact_after=1", "+scaffold.harbor.agent_kwargs.linger_sec=2",
        "conform.tasks=2", "conform.concurrency=2")
    assert code == 1, out
    tool = script_for("claude_code")("<tools>")  # the scripted first reply (tools offered, no tool result yet)
    call, done = reply_tokens(tokenizer, tool), reply_tokens(tokenizer, "The file is written. Done.")
    assert (fig["trials"], fig["turns"], fig["chains_per_trial"], fig["history_rewrites"]) == (2, 6, 2.0, 2)
    assert fig["trained_turn_fraction"] == round(2 / 3, 4)
    assert fig["trained_token_fraction"] == round((call + done) / (2 * call + done), 4)
    assert fig["parse_failures"] == 0 and fig["reward_mean"] == 1.0
    assert 2 * 2.0 <= fig["waste_s"] < 2 * 2.0 + 2 * 1.5  # each agent lingered 2 s after its trained last turn
    assert len(records) == 1 and records[0]["passed"] is False and records[0]["scaffold"] == "claude_code"
    assert "trained_turn_fraction 0.6667 < 0.95" in records[0]["missed"][0]
    assert records[0]["chat_template_sha256"] == sha(CHAT_TEMPLATE)  # the double's tokenizer's own template


def test_openhands_sdk_passes_the_gate(tmp_path: Path) -> None:
    held = tmp_path / "harness.json"  # a capture of the other harness is kept
    other = {"messages": [{"role": "user", "content": "x"}], "tools": [], "instruction": "x"}
    held.write_text(json.dumps({"claude_code": other}))
    code, fig, records, out = conform(tmp_path, "scaffold=ohsdk", "conform.policy=double", "conform.tasks=1",
                                      f"conform.capture={held}")
    assert code == 0, out
    # conform.capture: the SDK's own first request, which the agentic warm start turns into its toy prompts
    harness = json.loads(held.read_text())
    assert harness["claude_code"] == other and "captured ohsdk's first request" in out
    sdk = harness["ohsdk"]
    assert sdk["messages"][0]["role"] == "system" and len(sdk["messages"][0]["content"]) > 2000
    assert SHELL["ohsdk"][0] in {t["function"]["name"] for t in sdk["tools"]}
    toy = make_task("file", random.Random(0))
    messages, _ = first_request(toy, "ohsdk", harness, random.Random(0))
    assert toy.instruction in messages[-1]["content"] and sdk["instruction"] not in json.dumps(messages)
    assert SHELL["ohsdk"][0] == "terminal"  # the tool the double calls is the SDK's own
    assert (fig["trials"], fig["turns"], fig["chains_per_trial"], fig["history_rewrites"]) == (1, TOOL_TURNS, 1.0, 0)
    assert fig["trained_turn_fraction"] == 1.0 and fig["trained_token_fraction"] == 1.0
    assert fig["parse_failures"] == 0 and fig["reward_mean"] == 1.0
    assert records[-1]["passed"] is True and records[-1]["chat_template_sha256"] == sha(CHAT_TEMPLATE)


def test_claude_code_through_the_gate_with_a_given_chat_template(tmp_path: Path) -> None:
    template = tmp_path / "template.jinja"
    template.write_text(CHAT_TEMPLATE + "{#- the same template, another file #}")
    code, fig, records, out = conform(tmp_path, "scaffold=claude_code", "conform.policy=double",
                                      f"conform.chat_template={template}", "conform.tasks=1")
    # the real CLI takes the double's two turns; its first request carries its system blocks as a list and later
    # ones as a string (F14, once read as an extra user message that split the chain): one chain, every turn trained
    assert fig["turns"] == TOOL_TURNS and fig["reward_mean"] == 1.0, out
    assert fig["chains_per_trial"] == 1.0 and fig["history_rewrites"] == 0, out
    assert fig["trained_turn_fraction"] == 1.0 and fig["parse_failures"] == 0 and code == 0, out
    assert records[-1]["chat_template_sha256"] == sha(template.read_text()) != sha(CHAT_TEMPLATE)
    assert records[-1]["passed"] is True
