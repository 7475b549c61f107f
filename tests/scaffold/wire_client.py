"""An agent's side of both wire formats, over real HTTP against LiveRL's proxy (a real aiohttp server on 127.0.0.1).

`Conversation` keeps an agent's history the way the harnesses do: it sends the history with the tools, reads the
reply (plain JSON or server-sent events), appends the assistant message as the API returned it, then one tool
result per tool call (Anthropic: `tool_result` blocks in one user message, optionally with a text block beside
them, as claude-code adds reminders; OpenAI: `tool` messages, optionally followed by a user message).
"""

from __future__ import annotations

import json

import aiohttp

from liverl.scaffold.proxy import Proxy
from liverl.scaffold.session import Session

SCHEMA = {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}


def tools_for(wire: str, names: tuple[str, ...] = ("bash",)) -> list[dict]:
    if wire == "anthropic":
        return [{"name": n, "description": f"run {n}", "input_schema": SCHEMA} for n in names]
    return [{"type": "function", "function": {"name": n, "description": f"run {n}", "parameters": SCHEMA}}
            for n in names]


def events(raw: bytes) -> list[tuple[str | None, dict | None]]:
    """Server-sent events -> (event name, data) pairs; comment lines and [DONE] come back as (None, None)."""
    out = []
    for block in raw.decode().split("\n\n"):
        if not block.strip():
            continue
        name, data = None, None
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: ") and line[6:] != "[DONE]":
                data = json.loads(line[6:])
        out.append((name, data))
    return out


def anthropic_from_stream(raw: bytes) -> dict:
    message, blocks = None, []
    for name, data in events(raw):
        if name == "message_start":
            message = data["message"]
        elif name == "content_block_start":
            blocks.append(dict(data["content_block"]))
        elif name == "content_block_delta":
            d = data["delta"]
            if d["type"] == "text_delta":
                blocks[data["index"]]["text"] += d["text"]
            else:
                blocks[data["index"]]["input"] = json.loads(d["partial_json"])
        elif name == "message_delta":
            message["stop_reason"] = data["delta"]["stop_reason"]
    message["content"] = blocks
    return message


def openai_from_stream(raw: bytes) -> dict:
    chunks = [d for _, d in events(raw) if d]
    delta = chunks[0]["choices"][0]["delta"]
    message = {"role": "assistant", "content": delta.get("content"),
               **({"tool_calls": [{k: v for k, v in c.items() if k != "index"} for c in delta["tool_calls"]]}
                  if delta.get("tool_calls") else {})}
    return {"choices": [{"message": message, "finish_reason": chunks[-1]["choices"][0]["finish_reason"]}]}


def read_reply(wire: str, stream: bool, raw: bytes) -> tuple[dict, dict]:
    """A reply -> (the assistant message an agent appends to its history, {"text", "calls", "stop", "ids"})."""
    if wire == "anthropic":
        reply = anthropic_from_stream(raw) if stream else json.loads(raw)
        message = {"role": "assistant", "content": reply["content"]}
        calls = [(b["id"], b["name"], b["input"]) for b in reply["content"] if b["type"] == "tool_use"]
        text = "".join(b.get("text", "") for b in reply["content"] if b["type"] == "text")
        stop = reply["stop_reason"]
    else:
        reply = openai_from_stream(raw) if stream else json.loads(raw)
        message, stop = reply["choices"][0]["message"], reply["choices"][0]["finish_reason"]
        calls = [(c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
                 for c in message.get("tool_calls") or []]
        text = message.get("content") or ""
    return message, {"text": text, "calls": [(n, a) for _, n, a in calls], "stop": stop,
                     "ids": [i for i, _, _ in calls]}


class Conversation:
    def __init__(self, http: aiohttp.ClientSession, proxy: Proxy, session: Session, wire: str, *,
                 stream: bool = False, extra_text: bool = False, tools: list[dict] | None = None):
        self.http, self.wire, self.stream, self.extra_text = http, wire, stream, extra_text
        self.url = proxy.base_url(session) + ("/v1/messages" if wire == "anthropic" else "/v1/chat/completions")
        self.tools = tools if tools is not None else tools_for(wire)
        first = {"role": "user", "content": "Write 42 into answer.txt."}
        self.system = "You are a coding agent."
        self.messages = [first] if wire == "anthropic" else [{"role": "system", "content": self.system}, first]

    def body(self, max_tokens: int = 1024) -> dict:
        body = {"model": "policy", "messages": self.messages, "tools": self.tools, "max_tokens": max_tokens,
                "stream": self.stream}
        return body | ({"system": [{"type": "text", "text": self.system}]} if self.wire == "anthropic" else {})

    async def post(self, body: dict) -> tuple[int, bytes]:
        async with self.http.post(self.url, json=body) as resp:
            return resp.status, await resp.read()

    async def ask(self, max_tokens: int = 1024) -> dict:
        """One request; returns {"text", "calls": [(name, args)], "stop", "ids"} and extends the history."""
        status, raw = await self.post(self.body(max_tokens))
        assert status == 200, raw
        message, reply = read_reply(self.wire, self.stream, raw)
        self.messages.append(message)
        return reply

    def tool_results(self, reply: dict, outputs: list[str]) -> None:
        if self.wire == "anthropic":
            pairs = zip(reply["ids"], outputs, strict=True)
            blocks = [{"type": "tool_result", "tool_use_id": i, "content": o} for i, o in pairs]
            if self.extra_text:
                blocks.append({"type": "text", "text": "<system-reminder>Keep going.</system-reminder>"})
            self.messages.append({"role": "user", "content": blocks})
        else:
            pairs = zip(reply["ids"], outputs, strict=True)
            self.messages += [{"role": "tool", "tool_call_id": i, "content": o} for i, o in pairs]
            if self.extra_text:
                self.messages.append({"role": "user", "content": "Keep going."})


async def with_proxy(session: Session, body, keepalive_sec: float | None = None):
    """Run `body(http, proxy)` against a started proxy (a real aiohttp server on 127.0.0.1) holding `session`."""
    proxy = Proxy()
    await proxy.start()
    if keepalive_sec is not None:
        proxy.keepalive_sec = keepalive_sec
    proxy.open(session)
    try:
        async with aiohttp.ClientSession() as http:
            return await body(http, proxy)
    finally:
        await proxy.close()
