"""The in-process proxy: what the agents speak -> token-in/token-out generation on verl's rollout servers.

One aiohttp server per agent-loop worker process (it lives on the worker's event loop, next to verl's server
manager); one session per trial under /s/<session id>/:
  POST /s/<id>/v1/messages                Anthropic messages (claude-code; `stream: true` -> server-sent events)
  POST /s/<id>/v1/messages/count_tokens   Anthropic token count (rendered with the policy's chat template)
  POST /s/<id>/v1/chat/completions        OpenAI chat completions (OpenHands SDK via LiteLLM; stream or not)
  GET  /s/<id>/v1/models                  the served model name
A turn the session refuses (context window full, turn cap) is answered with a final reply (no tool call, end_turn /
stop: chat.final_stop), so the agent stops at once, and the session keeps the reason for the termination.

Streaming requests get their response headers at once and a keep-alive event every `keepalive_sec` while the turn
generates (Anthropic's `ping` event, an SSE comment line for OpenAI), so no client times out and retries a long turn;
a retry that still comes is answered from the recorded turn (session.py).

The first proxy of a worker process freezes the heap the worker built before it (gc.freeze): verl's worker holds
~0.5M long-lived objects (modules, torch, Ray), and each full garbage collection walked all of them, holding the
event loop ~150-270 ms every few hundred turns (benchmarks/proxy_overhead.py); frozen, they are never walked again
(and never freed: they live as long as the worker anyway).
"""

from __future__ import annotations

import asyncio
import gc
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from aiohttp import web

from liverl.scaffold import chat
from liverl.scaffold.session import LimitReached, Session

MODEL_NAME = "policy"


@dataclass(frozen=True)
class Api:
    messages: Callable
    tools: Callable
    reply: Callable
    stream: Callable
    stream_error: Callable
    error: Callable
    keepalive: bytes


ANTHROPIC = Api(chat.anthropic_messages, chat.anthropic_tools, chat.anthropic_reply, chat.anthropic_stream,
                chat.anthropic_stream_error, lambda m: chat.anthropic_error("api_error", m), chat.ANTHROPIC_KEEPALIVE)
OPENAI = Api(chat.openai_messages, chat.openai_tools, chat.openai_reply, chat.openai_stream, chat.openai_stream_error,
             lambda m: chat.openai_error("api_error", m), chat.OPENAI_KEEPALIVE)


class Proxy:
    keepalive_sec = 10.0  # below the read timeouts of the agents' HTTP clients (minutes)

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.host, self.port = host, port
        self.sessions: dict[str, Session] = {}
        # seconds per turn spent in the proxy, generation excluded (the latest turns only: a worker lives for days)
        self.overhead: deque[float] = deque(maxlen=4096)
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_post("/s/{sid}/v1/messages", self._anthropic)
        app.router.add_post("/s/{sid}/v1/messages/count_tokens", self._count_tokens)
        app.router.add_post("/s/{sid}/v1/chat/completions", self._openai)
        app.router.add_get("/s/{sid}/v1/models", self._models)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def base_url(self, session: Session, host: str | None = None) -> str:
        return f"http://{host or self.host}:{self.port}/s/{session.id}"

    def open(self, session: Session) -> Session:
        self.sessions[session.id] = session
        return session

    def close_session(self, session: Session) -> None:
        self.sessions.pop(session.id, None)

    def _session(self, request: web.Request) -> Session:
        session = self.sessions.get(request.match_info["sid"])
        if session is None:
            raise web.HTTPNotFound(text="unknown or closed session")
        return session

    async def _reply(self, session: Session, body: dict, api: Api) -> tuple[dict, int]:
        """The API reply to one request and its HTTP status."""
        t0, gen0 = time.perf_counter(), session.generate_seconds
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
        try:
            turn = await session.turn(api.messages(body), api.tools(body), max_tokens)
            parsed, finish, usage = turn.parsed, turn.finish, turn.usage
        except LimitReached as e:
            parsed, finish, usage = chat.final_stop(str(e)), "stop", (0, 0)
        except Exception as e:  # the agent gets the API's error, the worker keeps serving
            return api.error(f"{type(e).__name__}: {e}"), 500
        self.overhead.append(time.perf_counter() - t0 - (session.generate_seconds - gen0))
        return api.reply(parsed, finish, body.get("model", MODEL_NAME), usage), 200

    async def _serve(self, request: web.Request, api: Api) -> web.StreamResponse:
        session = self._session(request)
        body = orjson.loads(await request.read())
        task = asyncio.ensure_future(self._reply(session, body, api))  # runs on if the client goes away
        if not body.get("stream"):
            reply, status = await task
            return web.json_response(reply, status=status)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        while not (await asyncio.wait({task}, timeout=self.keepalive_sec))[0]:
            await response.write(api.keepalive)
        reply, status = task.result()
        await response.write(api.stream(reply) if status == 200 else api.stream_error(reply))
        await response.write_eof()
        return response

    async def _anthropic(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, ANTHROPIC)

    async def _openai(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, OPENAI)

    async def _count_tokens(self, request: web.Request) -> web.Response:
        session = self._session(request)
        body = orjson.loads(await request.read())
        count = await session.count_tokens(chat.anthropic_messages(body), chat.anthropic_tools(body))
        return web.json_response({"input_tokens": count})

    async def _models(self, request: web.Request) -> web.Response:
        self._session(request)
        return web.json_response({"object": "list", "data": [{"id": MODEL_NAME, "object": "model"}]})


_PROXIES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # event loop -> (its proxy, its start)
_FROZEN: list[bool] = []  # whether this process froze its heap (get_proxy)


async def get_proxy(host: str = "127.0.0.1") -> Proxy:
    """The proxy of this process's running event loop (verl runs one loop per agent-loop worker). The first samples
    of a step ask for it at once: all of them wait for the one proxy the first started."""
    key = asyncio.get_running_loop()
    entry = _PROXIES.get(key)
    if entry is None:
        if not _FROZEN:  # once per process: a later freeze would also pin garbage cycles still waiting for collection
            gc.collect()  # nor is any pinned now: one pause, before any session exists
            gc.freeze()
            _FROZEN.append(True)
        proxy = Proxy(host=host)
        entry = _PROXIES[key] = (proxy, asyncio.ensure_future(proxy.start()))
    await asyncio.shield(entry[1])
    return entry[0]
