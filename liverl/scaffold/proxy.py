"""The in-process proxy: what the agents speak -> token-in/token-out generation on verl's rollout servers.

One aiohttp server per agent-loop worker process (it lives on the worker's event loop, next to verl's server
manager); one session per trial under /s/<session id>/:
  POST /s/<id>/v1/messages                Anthropic messages (claude-code; `stream: true` -> server-sent events)
  POST /s/<id>/v1/messages/count_tokens   Anthropic token count (rendered with the policy's chat template)
  POST /s/<id>/v1/chat/completions        OpenAI chat completions (OpenHands SDK via LiteLLM; stream or not)
  GET  /s/<id>/v1/models                  the served model name
A turn the session refuses (context window full, turn cap) is answered with the API's own error, so the agent
stops the way it stops on a real provider's limit, and the session keeps the reason for the termination.
"""

from __future__ import annotations

import asyncio
import time
import weakref

from aiohttp import web

from liverl.scaffold import chat
from liverl.scaffold.session import LimitReached, Session

MODEL_NAME = "policy"


class Proxy:
    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.host, self.port = host, port
        self.sessions: dict[str, Session] = {}
        self.overhead: list[float] = []  # seconds per turn spent in the proxy, generation excluded
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

    async def _turn(self, session: Session, messages: list[dict], tools: list[dict], max_tokens):
        t0 = time.perf_counter()
        gen0 = session.generate_seconds
        turn = await session.turn(messages, tools, max_tokens)
        self.overhead.append(time.perf_counter() - t0 - (session.generate_seconds - gen0))
        return turn

    async def _anthropic(self, request: web.Request) -> web.StreamResponse:
        session = self._session(request)
        body = await request.json()
        try:
            turn = await self._turn(session, chat.anthropic_messages(body), chat.anthropic_tools(body),
                                    body.get("max_tokens"))
        except LimitReached as e:
            return web.json_response(chat.anthropic_error("invalid_request_error", f"prompt is too long: {e}"),
                                     status=400)
        reply = chat.anthropic_reply(turn.parsed, turn.finish, body.get("model", MODEL_NAME), turn.usage)
        if body.get("stream"):
            return web.Response(body=chat.anthropic_stream(reply), content_type="text/event-stream")
        return web.json_response(reply)

    async def _count_tokens(self, request: web.Request) -> web.Response:
        session = self._session(request)
        body = await request.json()
        text = session.render(chat.anthropic_messages(body), chat.anthropic_tools(body), gen=True)
        return web.json_response({"input_tokens": len(session.encode(text))})

    async def _openai(self, request: web.Request) -> web.StreamResponse:
        session = self._session(request)
        body = await request.json()
        try:
            turn = await self._turn(session, chat.openai_messages(body), chat.openai_tools(body),
                                    body.get("max_completion_tokens") or body.get("max_tokens"))
        except LimitReached as e:
            return web.json_response(chat.openai_error("invalid_request_error", str(e), "context_length_exceeded"),
                                     status=400)
        reply = chat.openai_reply(turn.parsed, turn.finish, body.get("model", MODEL_NAME), turn.usage)
        if body.get("stream"):
            return web.Response(body=chat.openai_stream(reply), content_type="text/event-stream")
        return web.json_response(reply)

    async def _models(self, request: web.Request) -> web.Response:
        self._session(request)
        return web.json_response({"object": "list", "data": [{"id": MODEL_NAME, "object": "model"}]})


_PROXIES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # event loop -> its proxy


async def get_proxy(host: str = "127.0.0.1") -> Proxy:
    """The proxy of this process's running event loop (verl runs one loop per agent-loop worker)."""
    key = asyncio.get_running_loop()
    proxy = _PROXIES.get(key)
    if proxy is None:
        proxy = Proxy(host=host)
        await proxy.start()
        _PROXIES[key] = proxy
    return proxy
