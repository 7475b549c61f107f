"""Tool-call parsers: the policy's generated text -> (content, tool calls, blocks that did not parse).

The parser is the one the model group configures (`model.tool_call_parser`, the same name vLLM's
`--tool-call-parser` takes): `qwen3_coder` (XML: <tool_call><function=NAME><parameter=P>V</parameter>...)
and `hermes` (JSON: <tool_call>{"name": ..., "arguments": {...}}</tool_call>). A block that does not parse
stays in the text content (the agent sees what the policy wrote, never an invented call) and is counted in
`Parsed.failures`.

`qwen3_coder` parameter values are text; like verl's parser (experimental/agent_loop/tool_parser.py:224-236,
322-326) exactly one leading and one trailing newline are removed and the value is converted only by the type
the tool's JSON schema declares for that parameter: a string-typed (or undeclared) parameter stays the string
the policy wrote, so `true`, `42` or `{"a": 1}` written into a file's content reach the tool unchanged.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from typing import Any

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_RE = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)
FUNCTION_RE = re.compile(r"<function=([^>\s]+)>(.*?)</function>", re.DOTALL)
PARAMETER_RE = re.compile(r"<parameter=([^>\s]+)>(.*?)</parameter>", re.DOTALL)
STRING_TYPES = {"string", "str", "text", "varchar", "char", "enum"}
INT_PREFIXES = ("int", "uint", "long", "short", "unsigned")


@dataclass
class ToolCall:
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass
class Parsed:
    content: str
    tool_calls: list[ToolCall]
    failures: int = 0  # <tool_call> blocks the parser could not turn into a call (left in content)


def _schema_types(tools: list[dict] | None, name: str) -> dict[str, str]:
    """{parameter: declared JSON-schema type} of the tool `name` ([{"type": "function", "function": {...}}])."""
    for tool in tools or []:
        fn = tool.get("function") or {}
        if fn.get("name") == name:
            props = (fn.get("parameters") or {}).get("properties") or {}
            return {k: _type_of(v) for k, v in props.items()}
    return {}


def _type_of(prop: Any) -> str:
    kind = prop.get("type", "string") if isinstance(prop, dict) else "string"
    if isinstance(kind, list):  # ["string", "null"]: a string when it may be one
        kind = "string" if "string" in kind else next((k for k in kind if k != "null"), "string")
    return str(kind).strip().lower()


def _convert(text: str, kind: str | None) -> Any:
    """verl's conversion (tool_parser.py:224-300): by the declared type; undeclared or unconvertible -> the text."""
    if text.lower() == "null":
        return None
    if kind is None or kind in STRING_TYPES:
        return text
    try:
        if kind.startswith(INT_PREFIXES):
            return int(text)
        if kind.startswith(("num", "float")):
            value = float(text)
            return int(value) if value.is_integer() else value
        if kind in ("boolean", "bool", "binary"):
            return text.lower() == "true"
        if kind == "object" or kind.startswith("dict"):
            try:
                return json.loads(text)
            except ValueError:
                pass
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def _strip_one_newline(text: str) -> str:
    text = text[1:] if text.startswith("\n") else text
    return text[:-1] if text.endswith("\n") else text


def _qwen3_coder_block(body: str, tools: list[dict] | None) -> ToolCall | None:
    m = FUNCTION_RE.search(body)
    if m is None:
        return None
    types = _schema_types(tools, m.group(1))
    args = {p.group(1): _convert(_strip_one_newline(p.group(2)), types.get(p.group(1)))
            for p in PARAMETER_RE.finditer(m.group(2))}
    return ToolCall(name=m.group(1), arguments=args)


def _hermes_block(body: str, tools: list[dict] | None) -> ToolCall | None:
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


def parse(text: str, parser: str, tools: list[dict] | None = None) -> Parsed:
    """Split generated text into its content and the tool calls the configured parser recognises; `tools` (the
    request's tool definitions, OpenAI form) give the parameter types `qwen3_coder` converts to."""
    if parser not in PARSERS:
        raise ValueError(f"tool_call_parser: unknown parser (got: {parser}); known: {sorted(PARSERS)}")
    block = PARSERS[parser]
    calls: list[ToolCall] = []
    kept: list[str] = []
    pos = 0
    for m in TOOL_CALL_RE.finditer(text):
        call = block(m.group(1), tools)
        if call is None:
            continue
        kept.append(text[pos : m.start()])
        pos = m.end()
        calls.append(call)
    kept.append(text[pos:])
    # every opened block that did not become a call: unparsable bodies and a block the turn never closed
    failures = max(0, text.count(TOOL_CALL_OPEN) - len(calls))
    return Parsed(content="".join(kept).strip(), tool_calls=calls, failures=failures)
