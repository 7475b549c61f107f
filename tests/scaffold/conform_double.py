"""The conformance gate's double (`python -m liverl.conform conform.policy=double`): loaded by file path from here.

It stays under tests/ (a double never ships in liverl/): the gate imports this file with its folder on sys.path,
so `policy_double`, `tokenizer_fixture` and `tasks` come from the tests. It provides what a served model would:
  tokenizer(directory)        the tests' trained BPE tokenizer with its Qwen-style chat template
  policy(tokenizer, scaffold) the scripted policy (verl's server-manager interface): on each task it calls the
                              scaffold's shell tool once to write the answer, then says it is done
  tasks(root, k)              k tiny real Harbor tasks (write 42 into answer.txt; the verifier checks it)
  WINDOW                      (prompt, response) tokens a session may hold with this tokenizer
A request without tools (an agent's side request, e.g. a title) is answered "OK".
"""

from __future__ import annotations

from pathlib import Path

from policy_double import ScriptedPolicy, after_tool_output, tool_call
from tasks import write_task
from tokenizer_fixture import build_tokenizer

WINDOW = (400_000, 400_000)
# the shell tool of each harness and its command parameter (claude-code: Bash; OpenHands SDK: terminal)
SHELL = {"claude_code": ("Bash", "command"), "ohsdk": ("terminal", "command")}
TOOL_TURNS = 2  # per solved task: the tool call, then "done"


def tokenizer(directory: Path):
    return build_tokenizer(directory)


def script_for(scaffold: str):
    tool, param = SHELL.get(scaffold, ("bash", "command"))

    def script(prompt: str) -> str:
        if "<tools>" not in prompt:
            return "OK"
        if after_tool_output(prompt):
            return "The file is written. Done."
        return "I will write the file.\n" + tool_call(tool, **{param: "echo 42 > answer.txt"})

    return script


def policy(tok, scaffold: str) -> ScriptedPolicy:
    return ScriptedPolicy(tok, script_for(scaffold))


def tasks(root: Path, k: int) -> list[Path]:
    return [write_task(root, f"write-42-{i}") for i in range(k)]
