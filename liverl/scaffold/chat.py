"""Both agent APIs -> one message list for the policy's chat template, and the policy's turn -> each API's reply.

The canonical form is Hugging Face's chat-template input: {"role", "content": str} messages, assistant
`tool_calls` as [{"type": "function", "function": {"name", "arguments": dict}}], tool results as role "tool",
and tools as [{"type": "function", "function": {"name", "description", "parameters"}}].
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from liverl.scaffold.toolcalls import Parsed


def _text_of(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif block.get("type") == "text":
            parts.append(block.get("text", ""))
        elif block.get("type") in ("image", "image_url"):
            parts.append("[image]")
    return "\n".join(parts)


def _call(name: str, arguments: Any) -> dict:
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments else {}
        except ValueError:
            arguments = {"_raw": arguments}
    return {"type": "function", "function": {"name": name, "arguments": arguments or {}}}


# ---------------------------------------------------------------- Anthropic messages
def anthropic_messages(body: dict) -> list[dict]:
    out: list[dict] = []
    system = _text_of(body.get("system"))
    if system:
        out.append({"role": "system", "content": system})
    for msg in body.get("messages", []):
        content = msg.get("content")
        if isinstance(content, str):
            out.append({"role": msg["role"], "content": content})
            continue
        if msg["role"] == "assistant":
            text = _text_of([b for b in content if b.get("type") == "text"])
            calls = [_call(b["name"], b.get("input")) for b in content if b.get("type") == "tool_use"]
            out.append({"role": "assistant", "content": text, **({"tool_calls": calls} if calls else {})})
            continue
        texts = []
        for block in content:
            if block.get("type") == "tool_result":
                out.append({"role": "tool", "content": _text_of(block.get("content"))})
            else:
                texts.append(block)
        if texts:  # claude-code sends its "# Environment" message as role system, as blocks or as a string
            out.append({"role": msg["role"], "content": _text_of(texts)})
    return out


def anthropic_tools(body: dict) -> list[dict]:
    return [
        {"type": "function", "function": {"name": t["name"], "description": t.get("description", ""),
                                          "parameters": t.get("input_schema", {})}}
        for t in body.get("tools") or [] if "name" in t
    ]


def anthropic_reply(parsed: Parsed, finish: str, model: str, usage: tuple[int, int]) -> dict:
    blocks: list[dict] = []
    if parsed.content:
        blocks.append({"type": "text", "text": parsed.content})
    for call in parsed.tool_calls:
        blocks.append({"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:24]}", "name": call.name,
                       "input": call.arguments})
    stop = "tool_use" if parsed.tool_calls else ("max_tokens" if finish == "length" else "end_turn")
    return {"id": f"msg_{uuid.uuid4().hex[:24]}", "type": "message", "role": "assistant", "model": model,
            "content": blocks, "stop_reason": stop, "stop_sequence": None,
            "usage": {"input_tokens": usage[0], "output_tokens": usage[1]}}


def _sse(event: str, data: dict) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def anthropic_stream(reply: dict) -> bytes:
    """The whole reply as Anthropic's server-sent events (the turn is generated before it is sent)."""
    start = dict(reply, content=[], stop_reason=None, usage={"input_tokens": reply["usage"]["input_tokens"],
                                                             "output_tokens": 0})
    chunks = [_sse("message_start", {"type": "message_start", "message": start})]
    for i, block in enumerate(reply["content"]):
        if block["type"] == "text":
            head, delta = {"type": "text", "text": ""}, {"type": "text_delta", "text": block["text"]}
        else:
            head = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
        chunks.append(_sse("content_block_start", {"type": "content_block_start", "index": i, "content_block": head}))
        chunks.append(_sse("content_block_delta", {"type": "content_block_delta", "index": i, "delta": delta}))
        chunks.append(_sse("content_block_stop", {"type": "content_block_stop", "index": i}))
    chunks.append(_sse("message_delta", {"type": "message_delta",
                                         "delta": {"stop_reason": reply["stop_reason"], "stop_sequence": None},
                                         "usage": {"output_tokens": reply["usage"]["output_tokens"]}}))
    chunks.append(_sse("message_stop", {"type": "message_stop"}))
    return b"".join(chunks)


def anthropic_error(kind: str, message: str) -> dict:
    return {"type": "error", "error": {"type": kind, "message": message}}


ANTHROPIC_KEEPALIVE = _sse("ping", {"type": "ping"})  # the Messages API's own keep-alive event


def anthropic_stream_error(error: dict) -> bytes:
    return _sse("error", error)


# ---------------------------------------------------------------- OpenAI chat completions
def openai_messages(body: dict) -> list[dict]:
    out: list[dict] = []
    for msg in body.get("messages", []):
        role = "system" if msg.get("role") == "developer" else msg.get("role")
        entry: dict[str, Any] = {"role": role, "content": _text_of(msg.get("content"))}
        calls = [_call(c["function"]["name"], c["function"].get("arguments")) for c in msg.get("tool_calls") or []]
        if calls:
            entry["tool_calls"] = calls
        out.append(entry)
    return out


def openai_tools(body: dict) -> list[dict]:
    return [t for t in body.get("tools") or [] if t.get("type") == "function"]


def openai_reply(parsed: Parsed, finish: str, model: str, usage: tuple[int, int]) -> dict:
    message: dict[str, Any] = {"role": "assistant", "content": parsed.content or None}
    if parsed.tool_calls:
        message["tool_calls"] = [
            {"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
             "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
            for c in parsed.tool_calls
        ]
    reason = "tool_calls" if parsed.tool_calls else ("length" if finish == "length" else "stop")
    return {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion", "created": int(time.time()),
            "model": model, "choices": [{"index": 0, "message": message, "finish_reason": reason}],
            "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}}


def openai_stream(reply: dict) -> bytes:
    choice = reply["choices"][0]
    delta = {"role": "assistant", "content": choice["message"]["content"]}
    if "tool_calls" in choice["message"]:
        delta["tool_calls"] = [dict(c, index=i) for i, c in enumerate(choice["message"]["tool_calls"])]
    base = {k: reply[k] for k in ("id", "created", "model")} | {"object": "chat.completion.chunk"}
    first = dict(base, choices=[{"index": 0, "delta": delta, "finish_reason": None}])
    last = dict(base, choices=[{"index": 0, "delta": {}, "finish_reason": choice["finish_reason"]}],
                usage=reply["usage"])
    return b"".join(f"data: {json.dumps(c)}\n\n".encode() for c in (first, last)) + b"data: [DONE]\n\n"


def openai_error(kind: str, message: str, code: str | None = None) -> dict:
    return {"error": {"type": kind, "message": message, "code": code}}


OPENAI_KEEPALIVE = b": keep-alive\n\n"  # an SSE comment line: clients skip it, the connection stays busy


def openai_stream_error(error: dict) -> bytes:
    return f"data: {json.dumps(error)}\n\n".encode()


def final_stop(reason: str) -> Parsed:
    """The reply that ends the agent's run when the session refuses a turn (context window full, turn cap): a plain
    answer with no tool call, which both APIs mark end_turn / stop, so the agent finishes as after any final answer
    instead of handling an API error (retrying, or compacting its history and asking again), which would spend
    sandbox time on tokens that cannot be trained."""
    return Parsed(content=f"[stopped: {reason}]", tool_calls=[])
