"""Chat transcripts of the toy agentic tasks (liverl.tiny.agentic) solved through a scaffold's shell tool, in the
`hermes` tool-call format, and the tool-aware ChatML template the tiny model renders them with.

The tool call is what LiveRL's `hermes` parser reads (liverl/scaffold/toolcalls.py: `<tool_call>{"name": ...,
"arguments": {...}}</tool_call>`, the parser conf/model/tiny_qwen2.yaml names for both scaffolds). The shell tool
is the one each harness exposes (claude-code: `Bash`, OpenHands SDK: `terminal`, both with a `command` string, as
tests/scaffold/conform_double.py drives them). Without a captured harness prompt the system prompt is a short
stand-in; the harnesses' own are far longer (measured with this tokenizer: about 29.6k prompt tokens for
claude-code's first request, 19.7k for the OpenHands SDK's). `harness`: {scaffold: {"messages", "tools",
"instruction"}}, a harness's real first request captured through LiveRL's proxy (liverl.conform's conform.capture=FILE);
its messages, with the captured task's instruction replaced by the toy task's, become the transcript's prompt.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import platform
import random
import re

from liverl.tiny.agentic import KINDS, ToyTask, make_task

# ChatML; with tools, a system turn lists them (one JSON object a line) after the system message's text; an
# assistant turn's tool calls follow its text as hermes blocks; a tool result is a `tool` turn. Without tools or
# tool calls it renders exactly as liverl.tiny.generate.CHAT_TEMPLATE (the single-turn smoke is unchanged).
AGENT_CHAT_TEMPLATE = (
    "{% set ns = namespace(skip=false) %}"
    "{% if tools %}<|im_start|>system\n"
    "{% if messages and messages[0]['role'] == 'system' %}{{ messages[0]['content'] }}\n\n{% set ns.skip = true %}"
    "{% endif %}# Tools\n<tools>\n{% for t in tools %}{{ t | tojson }}\n{% endfor %}</tools>\n"
    'Call a tool as <tool_call>{"name": NAME, "arguments": ARGS}</tool_call><|im_end|>\n{% endif %}'
    "{% for message in messages %}{% if not (loop.first and ns.skip) %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] or '' }}"
    "{% for call in message['tool_calls'] or [] %}"
    '<tool_call>{"name": {{ call["function"]["name"] | tojson }}, '
    '"arguments": {{ call["function"]["arguments"] | tojson }}}</tool_call>'
    "{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

SHELL = {"claude_code": "Bash", "ohsdk": "terminal"}
# the local environment's temporary directory: tempfile.mkdtemp(prefix=...) in liverl/scaffold/local_env.py, 8 more
# characters (tests/test_tiny_warm_start.py holds the two equal)
WORKDIR_PREFIX = "liverl-localenv-"
SYSTEM = "You are a coding agent working in a shell. Use the tools to complete the task, then say Done."


# what a harness writes about the machine and the moment into its first request: claude-code's "# Environment" turn
# names the kernel (`os.release()`) and the day, the OpenHands SDK's system prompt the date and time to the minute.
# A capture holds the capturing machine's; a trial's request holds its host's (the GPU host: "6.18.44-fc-v1272-gpu"
# where the capture said "6.18.44-fc-v1252"), and a policy warm-started on the one and served the other acted far
# less (claude-code: 31% of first turns with a tool call against 48%, judged as served on the GPU host).
HOST_FIELDS = {
    "os_release": r"(?<=OS Version: Linux )[^\s\"\\]+",
    "date": r"(?<=Today's date is )\d{4}-\d{2}-\d{2}",
    "datetime": r"(?<=The current date and time is: )\d{4}-\d{2}-\d{2}T\d{2}:\d{2}",
}


def this_host(now: datetime.datetime | None = None) -> dict[str, str]:
    """HOST_FIELDS' values on this machine, now."""
    now = now or datetime.datetime.now()
    return {"os_release": platform.release(), "date": now.date().isoformat(),
            "datetime": now.strftime("%Y-%m-%dT%H:%M")}


def as_host(harness: dict | None, host: dict[str, str]) -> dict | None:
    """The captured requests as `host` would send them: each HOST_FIELDS value in their messages replaced."""
    if not harness:
        return harness
    return _rewrite(harness, [(pattern, host[field]) for field, pattern in HOST_FIELDS.items()])


def _rewrite(obj, subs: list[tuple[str, str]]):
    """`obj` (captured messages and tools) with each regex `pattern` in its JSON text replaced by `value`: the one way
    a capture's machine- or trial-specific strings are swapped (as_host, first_request's trial directory)."""
    text = json.dumps(obj)
    for pattern, value in subs:
        text = re.sub(pattern, value, text)
    return json.loads(text)


def shell_tool(name: str) -> dict:
    return {"type": "function", "function": {
        "name": name, "description": "Run a bash command in the working directory.",
        "parameters": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}}}


def _assistant(content: str, tool: str | None = None, command: str | None = None) -> dict:
    msg: dict = {"role": "assistant", "content": content}
    if tool is not None:
        msg["tool_calls"] = [{"type": "function", "function": {"name": tool, "arguments": {"command": command}}}]
    return msg


def first_request(task: ToyTask, scaffold: str, harness: dict | None,
                  workdir: random.Random | None = None) -> tuple[list[dict], list[dict]]:
    """The episode's first request: the captured harness request with the toy instruction, else the stand-in. With
    `workdir`, the local environment's temporary directory in it gets a fresh name, as every trial's does (claude-code
    names it three times, the SDK in a tool's description)."""
    captured = (harness or {}).get(scaffold)
    if not captured:
        return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": task.instruction}], \
            [shell_tool(SHELL[scaffold])]
    old = captured["instruction"].strip()
    if not any(old in (m.get("content") or "") for m in captured["messages"]):
        raise ValueError(f"harness.{scaffold}.instruction: not in the captured messages (got: {old[:60]!r}); "
                         "capture again with python -m liverl.conform conform.capture=FILE")
    messages = [dict(m, content=(m.get("content") or "").replace(old, task.instruction)) for m in captured["messages"]]
    tools = list(captured["tools"])
    if workdir is not None:
        name = WORKDIR_PREFIX + "".join(workdir.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(8))
        trial_dir = re.escape(WORKDIR_PREFIX) + r"[A-Za-z0-9_-]{8}"
        fresh = _rewrite({"messages": messages, "tools": tools}, [(trial_dir, name)])
        messages, tools = fresh["messages"], fresh["tools"]
    return messages, tools


def transcript(task: ToyTask, scaffold: str, rng: random.Random, noise: float = 0.2,
               harness: dict | None = None) -> dict:
    """{"messages", "tools"} of one episode: the instruction, one shell call that writes the file (with probability
    `noise` a wrong content, so the warm-started policy is often but not always right), its output, a final text."""
    tool = SHELL[scaffold]
    content = task.content
    if rng.random() < noise:
        content = content.replace("return ", "return 1") if task.kind == "func" else content.split()[0]
    command = dataclasses.replace(task, content=content).solve_command
    thought = rng.choice(["", "I will write the file.\n", f"Writing {task.name}.\n"])
    prompt, tools = first_request(task, scaffold, harness)
    messages = [*prompt, _assistant(thought, tool, command), {"role": "tool", "content": ""}]
    if rng.random() < 0.3:  # sometimes look at the result first: a 2-call episode
        messages += [_assistant("", tool, f"cat {task.name}"), {"role": "tool", "content": content + "\n"}]
    messages.append(_assistant("Done."))
    return {"messages": messages, "tools": tools, "task": task}


def transcripts(n: int, seed: int = 0, noise: float = 0.2, harness: dict | None = None,
                scaffolds: tuple[str, ...] | None = None) -> list[dict]:
    rng = random.Random(f"transcripts-{seed}")
    scaffolds = tuple(scaffolds or sorted(SHELL))
    return [transcript(make_task(KINDS[i % len(KINDS)], rng), scaffolds[i % len(scaffolds)], rng, noise, harness)
            for i in range(n)]


def corpus(n: int = 200, seed: int = 0) -> list[str]:
    """Text for the tokenizer trainer: rendered transcripts (as plain strings; the template's own words)."""
    out = []
    for t in transcripts(n, seed):
        out.append(json.dumps(t["tools"][0]))
        for m in t["messages"]:
            out.append(m["content"])
            for call in m.get("tool_calls") or []:
                out.append(f'<tool_call>{{"name": "{call["function"]["name"]}", "arguments": '
                           f'{json.dumps(call["function"]["arguments"])}}}</tool_call>')
    return [*out, "# Tools", "<tools>", "</tools>", "tool", "system", "assistant", "user"]
