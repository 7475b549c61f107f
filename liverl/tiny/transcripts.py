"""Chat transcripts of the toy agentic tasks (liverl.tiny.agentic) solved through a scaffold's shell tool, in the
`hermes` tool-call format, and the tool-aware ChatML template the tiny model renders them with.

The tool call is what LiveRL's `hermes` parser reads (liverl/scaffold/toolcalls.py: `<tool_call>{"name": ...,
"arguments": {...}}</tool_call>`, the parser conf/model/tiny_qwen2.yaml names for both scaffolds). The shell tool
is the one each harness exposes (claude-code: `Bash`, OpenHands SDK: `terminal`, both with a `command` string, as
tests/scaffold/conform_double.py drives them). The system prompt here is a short stand-in: the harnesses' own
system prompts and full tool lists are longer and are what the proxy renders on the GPU host.
"""

from __future__ import annotations

import json
import random

from liverl.tiny.agentic import KINDS, ToyTask, make_task, shell_quote

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
SYSTEM = "You are a coding agent working in a shell. Use the tools to complete the task, then say Done."


def shell_tool(name: str) -> dict:
    return {"type": "function", "function": {
        "name": name, "description": "Run a bash command in the working directory.",
        "parameters": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}}}


def _assistant(content: str, tool: str | None = None, command: str | None = None) -> dict:
    msg: dict = {"role": "assistant", "content": content}
    if tool is not None:
        msg["tool_calls"] = [{"type": "function", "function": {"name": tool, "arguments": {"command": command}}}]
    return msg


def transcript(task: ToyTask, scaffold: str, rng: random.Random, noise: float = 0.2) -> dict:
    """{"messages", "tools"} of one episode: the instruction, one shell call that writes the file (with probability
    `noise` a wrong content, so the warm-started policy is often but not always right), its output, a final text."""
    tool = SHELL[scaffold]
    content = task.content
    if rng.random() < noise:
        content = content.replace("return ", "return 1") if task.kind == "func" else content.split()[0]
    command = f"printf '%s\\n' {shell_quote(content)} > {task.name}"
    thought = rng.choice(["", "I will write the file.\n", f"Writing {task.name}.\n"])
    messages = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": task.instruction},
        _assistant(thought, tool, command),
        {"role": "tool", "content": ""},
    ]
    if rng.random() < 0.3:  # sometimes look at the result first: a 2-call episode
        messages += [_assistant("", tool, f"cat {task.name}"), {"role": "tool", "content": content + "\n"}]
    messages.append(_assistant("Done."))
    return {"messages": messages, "tools": [shell_tool(tool)]}


def transcripts(n: int, seed: int = 0, noise: float = 0.2) -> list[dict]:
    rng = random.Random(f"transcripts-{seed}")
    scaffolds = sorted(SHELL)
    return [transcript(make_task(KINDS[i % len(KINDS)], rng), scaffolds[i % len(scaffolds)], rng, noise)
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
