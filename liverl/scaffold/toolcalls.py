"""Tool-call parsers: the policy's generated text -> (content, tool calls).

The parser is the one the model group configures (`model.tool_call_parser.<scaffold>`, the same name vLLM's
`--tool-call-parser` takes): `qwen3_coder` (XML: <tool_call><function=NAME><parameter=P>V</parameter>...)
and `hermes` (JSON: <tool_call>{"name": ..., "arguments": {...}}</tool_call>). A block that does not parse
stays in the text content: the agent sees what the policy wrote, never an invented call.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

TOOL_CALL_RE = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)
FUNCTION_RE = re.compile(r"<function=([^>\s]+)>(.*?)</function>", re.DOTALL)
PARAMETER_RE = re.compile(r"<parameter=([^>\s]+)>(.*?)</parameter>", re.DOTALL)


@dataclass
class ToolCall:
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass
class Parsed:
    content: str
    tool_calls: list[ToolCall]


def _param_value(raw: str) -> Any:
    text = raw.strip("\n")
    try:
        return json.loads(text)
    except ValueError:
        return text


def _qwen3_coder_block(body: str) -> ToolCall | None:
    m = FUNCTION_RE.search(body)
    if m is None:
        return None
    args = {p.group(1): _param_value(p.group(2)) for p in PARAMETER_RE.finditer(m.group(2))}
    return ToolCall(name=m.group(1), arguments=args)


def _hermes_block(body: str) -> ToolCall | None:
    try:
        obj = json.loads(body.strip())
    except ValueError:
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        return None
    args = obj.get("arguments", {})
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except ValueError:
            return None
    return ToolCall(name=obj["name"], arguments=args if isinstance(args, dict) else {})


PARSERS = {"qwen3_coder": _qwen3_coder_block, "hermes": _hermes_block}


def parse(text: str, parser: str) -> Parsed:
    """Split generated text into its content and the tool calls the configured parser recognises."""
    if parser not in PARSERS:
        raise ValueError(f"tool_call_parser: unknown parser (got: {parser}); known: {sorted(PARSERS)}")
    block = PARSERS[parser]
    calls: list[ToolCall] = []
    kept: list[str] = []
    pos = 0
    for m in TOOL_CALL_RE.finditer(text):
        call = block(m.group(1))
        if call is None:
            continue
        kept.append(text[pos : m.start()])
        pos = m.end()
        calls.append(call)
    kept.append(text[pos:])
    return Parsed(content="".join(kept).strip(), tool_calls=calls)
