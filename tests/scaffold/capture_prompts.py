"""`python tests/scaffold/capture_prompts.py TOKENIZER_DIR OUT.json [claude_code|ohsdk ...]`: each harness's real
first request (messages and tools, as LiveRL's proxy hands them to the policy), captured from a real trial of the
tiny test task, for the agentic warm start (liverl.tiny.warm_start --harness OUT.json).

The policy is the scripted double (policy_double.ScriptedPolicy, hermes tool calls): a tool that runs where no
model is served. Run with PYTHONPATH=$PWD:tests/scaffold:tests from the repository root (the claude CLI and the
OpenHands runtime installed, as for tests/scaffold/test_real_agents.py). Not committed output: the file holds the
harnesses' own prompts.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from harness import make_loop, run_sample
from policy_double import ScriptedPolicy, hermes_call
from tasks import write_task
from test_real_agents import claude_code, openhands

from liverl.scaffold.session import Session
from liverl.tiny.transcripts import SHELL

SETTINGS = {"claude_code": claude_code, "ohsdk": openhands}


def capture(tokenizer, scaffold: str, tmp: Path) -> dict:
    seen: list[tuple[list[dict], list[dict]]] = []
    turn = Session.turn

    async def recording(self, messages, tools, max_tokens):
        seen.append((messages, tools))
        return await turn(self, messages, tools, max_tokens)

    def script(prompt: str) -> str:
        return "Done." if len(seen) > 1 else hermes_call(SHELL[scaffold], command="echo 42 > answer.txt")

    Session.turn = recording
    try:
        task = write_task(tmp)
        loop = make_loop(tokenizer, ScriptedPolicy(tokenizer, script), SETTINGS[scaffold](tmp), parser="hermes",
                         prompt_length=400_000, response_length=400_000)
        out = run_sample(loop, task)
    finally:
        Session.turn = turn
    if not seen:
        raise RuntimeError(f"{scaffold}: the harness sent no request ({out.extra_fields})")
    messages, tools = seen[0]
    return {"messages": messages, "tools": tools, "instruction": (task / "instruction.md").read_text().strip()}


def main(argv: list[str]) -> int:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(argv[0])
    scaffolds = argv[2:] or sorted(SETTINGS)
    with tempfile.TemporaryDirectory() as tmp:
        out = {s: capture(tokenizer, s, Path(tmp) / s) for s in scaffolds}
    Path(argv[1]).write_text(json.dumps(out))
    for s, c in out.items():
        ids = tokenizer.encode(tokenizer.apply_chat_template(c["messages"], tools=c["tools"], tokenize=False,
                                                             add_generation_prompt=True), add_special_tokens=False)
        print(f"{s}: {len(c['messages'])} messages, {len(c['tools'])} tools, {len(ids)} prompt tokens")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
