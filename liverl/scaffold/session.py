"""One trial's token record: every generation is token-in/token-out, and the trained tokens are the sampled ones.

A *chain* is a token sequence the policy really saw: the first request's rendered prompt, then per turn the
sampled tokens (mask 1, with their rollout log-probs) and the tokens of the messages the agent appended after that
turn (tool output, the next user message: mask 0). A request extends a chain when its history is the chain's
history plus the reply the chain sampled (as the agent echoes it), with the same tool list; only the appended
messages are rendered (liverl/scaffold/render.py, the way verl's loop does), so what the policy sampled is never
re-rendered and a template that renders past turns differently cannot split the chain.

A chain splits only when the agent really rewrites its history (compaction, an edited earlier turn, a changed tool
list, a sub-agent's fresh conversation): that request opens a new chain whose prompt is its rendered history (never
trained) and is counted in `rewrites`. At the end the trained chain is the one with the most turns (the latest on a
tie). So a token with mask 1 is always a token this session sampled, at the position where it was sampled.

Concurrency: one turn at a time per session (an asyncio lock); a request identical to the last one answered (a
client retry while or after a turn generated) gets that turn again, never a second generation. A whole prompt, and
appended messages or a reply too long to render or decode in about a millisecond, are rendered and tokenised off
the event loop, as verl's loops do (experimental/agent_loop/agent_loop.py:335,399), on one thread; a turn's small
appended messages are rendered on the loop, since handing them to the thread and back costs more than rendering
them (each hand-off waits for the GIL behind the loop's work: up to 5 ms, sys.getswitchinterval()).
"""

from __future__ import annotations

import asyncio
import gc
import time
import uuid
from array import array
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from liverl.guardrails.verl_keys import MAX_TURNS_REACHED, OVERLONG
from liverl.scaffold.render import NotAppendable, Renderer
from liverl.scaffold.toolcalls import Parsed, parse

# one thread renders and tokenises for all sessions of this worker: Jinja holds the GIL, so more threads take it from
# the event loop more often (benchmarks/proxy_overhead.py, 4 threads: stalls of 11-13 ms), and never-seen openings are
# bound by tokenising throughput (2 threads: no better); one thread also never tokenises the same message twice
_RENDER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="liverl-render")
INLINE_CHARS = 4096  # appended message text rendered on the loop (~1k tokens: well under a millisecond)
INLINE_TOKENS = 2048  # sampled tokens decoded on the loop
OLD_AT_ONCE = 8192  # a new chain's prompt this long goes to the collector's old generation at once
ABORTED = ("aborted", "abort")  # verl's stop reasons for a request aborted by a weight sync (llm_server.py:336-343)


class LimitReached(Exception):
    """The session refuses a turn: `reason` is OVERLONG (context window) or MAX_TURNS_REACHED
    (the termination reasons verl's trajectory filter knows, liverl/guardrails/verl_keys.py)."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass
class Limits:
    prompt_length: int
    response_length: int
    max_turns: int


@dataclass(eq=False)
class Chain:
    # the prompt, then each turn's appended (mask 0) and sampled (mask 1) tokens: the list each turn hands to the
    # engine, extended in place (verl's own loop builds a new list per turn, continuous_token.py:199; one list is safe
    # because verl's client serialises it at .remote(), llm_server.py:150, before the turn resumes, and the
    # fully-async client resumes from a new list, :293). One list per chain, the mask and log-probs in arrays, which
    # the garbage collector does not walk: 64 chains of 50k tokens in five lists made each full collection of a
    # worker walk 16M items (~40 ms with the rest of the heap frozen)
    sequence: list[int]
    prompt_len: int
    messages: list[dict]  # the request messages of the chain's last turn
    tools: list[dict] = field(default_factory=list)
    reply: Parsed | None = None  # what the last turn answered (the agent echoes it as the next assistant message)
    mask: array = field(default_factory=lambda: array("b"))  # per token after the prompt: 1 sampled, 0 appended
    logprobs: array = field(default_factory=lambda: array("d"))
    turns: int = 0
    steps: list[int] = field(default_factory=list)
    routed_experts: Any = None  # vLLM's routing of the whole sequence, from the latest turn (tool_agent_loop.py:286)
    ended_at: float | None = None  # time.perf_counter() when its last turn returned (loop_metrics.waste_s's clock)

    @property
    def prompt_ids(self) -> list[int]:
        return self.sequence[:self.prompt_len]

    @property
    def tokens(self) -> list[int]:
        """The tokens of the finished turns (a turn in flight has appended its prompt part to `sequence` only)."""
        return self.sequence[self.prompt_len:self.prompt_len + len(self.mask)]


@dataclass
class Turn:
    parsed: Parsed
    finish: str  # "stop" | "length"
    usage: tuple[int, int]


def _norm(text: str | None) -> str:
    return " ".join((text or "").split())


def _echoes(message: dict, reply: Parsed | None) -> bool:
    """Whether an assistant message is the agent's copy of `reply` (same calls; text up to whitespace)."""
    if reply is None or message.get("role") != "assistant":
        return False
    calls = [(c["function"]["name"], c["function"]["arguments"]) for c in message.get("tool_calls") or []]
    return calls == [(c.name, c.arguments) for c in reply.tool_calls] and _norm(message.get("content")) == _norm(
        reply.content)


def _chars(messages: list[dict]) -> int:
    return sum(len(m.get("content") or "") + len(str(m.get("tool_calls") or "")) for m in messages)


class Session:
    """The token record of one trial; `turn` is called once per agent request by the proxy."""

    abort_retry_sec = 1.0  # verl waits 1 s before resuming an aborted request (llm_server.py:345)

    def __init__(self, *, tokenizer: Any, generate: Callable, sampling_params: dict, limits: Limits,
                 parser: str, chat_template_kwargs: dict | None = None):
        self.id = uuid.uuid4().hex
        self.tokenizer = tokenizer
        self.renderer = Renderer(tokenizer, chat_template_kwargs)
        self.generate = generate
        self.sampling_params = dict(sampling_params)
        self.limits = limits
        self.parser = parser
        self.chains: list[Chain] = []
        self.limit_reason: str | None = None
        self.generate_seconds = 0.0
        self.calls = 0  # generations whose tokens were kept
        self.requests = 0  # agent requests answered (retries and final stops included)
        self.retries = 0  # requests answered from the recorded turn (a client retry)
        self.aborts = 0  # generations aborted by a weight sync and issued again
        self.parse_failures = 0
        self.sampled_tokens = 0
        self._rewrites = 0
        self._lock = asyncio.Lock()
        self._last: tuple[list[dict], list[dict], Any, Turn] | None = None
        # the agent's first request as it came (messages, tools): what `liverl.conform conform.capture=` records
        self.first_request: tuple[list[dict], list[dict]] | None = None

    @property
    def rewrites(self) -> int:
        """Chains opened by a request that extends no chain (the first chain is not one)."""
        return self._rewrites

    async def off_loop(self, fn: Callable, *args):
        return await asyncio.get_running_loop().run_in_executor(_RENDER, fn, *args)

    async def count_tokens(self, messages: list[dict], tools: list[dict]) -> int:
        return len(await self.off_loop(self.renderer.prompt, messages, tools))

    # ------------------------------------------------------------------ chains
    def _extends(self, chain: Chain, messages: list[dict], tools: list[dict]) -> bool:
        n = len(chain.messages)
        return (len(messages) > n + 1 and tools == chain.tools
                and messages[-1]["role"] != "assistant" and messages[:n] == chain.messages
                and _echoes(messages[n], chain.reply))

    def _extended(self, messages: list[dict], tools: list[dict]) -> Chain | None:
        """The latest chain this request extends (comparisons only: cheap on the loop)."""
        return next((c for c in reversed(self.chains) if self._extends(c, messages, tools)), None)

    def _appended(self, chain: Chain, messages: list[dict]) -> list[int]:
        """The mask-0 tokens that take `chain` to this request's generation prompt (NotAppendable: they cannot)."""
        last = chain.sequence[-1] if chain.mask and chain.mask[-1] == 1 else None
        return self.renderer.appended(last, messages[len(chain.messages) + 1:], chain.tools)

    def _chain_for(self, chain: Chain | None, messages: list[dict], tools: list[dict]) -> tuple[Chain, list[int]]:
        """`chain` (the one the request extends) and the mask-0 tokens it appends, or a new chain."""
        if chain is not None:
            try:
                return chain, self._appended(chain, messages)
            except NotAppendable:
                pass
        prompt = self.renderer.prompt(messages, tools)
        if len(prompt) > self.limits.prompt_length:
            raise LimitReached(OVERLONG, f"prompt of {len(prompt)} tokens exceeds {self.limits.prompt_length}")
        if len(prompt) >= OLD_AT_ONCE:
            # the chain's list lives as long as the trial: move it to the old generation now (a young collection,
            # ~1 ms), instead of the collector walking it again in the next one, together with the lists of every
            # other session opened meanwhile (64 sessions of 30k tokens opening within a second: 15-20 ms pauses)
            gc.collect(1)
        return Chain(sequence=prompt, prompt_len=len(prompt), messages=[], tools=list(tools)), []

    # ------------------------------------------------------------------ one turn
    async def turn(self, messages: list[dict], tools: list[dict], max_tokens: int | None) -> Turn:
        async with self._lock:
            self.requests += 1
            if self.first_request is None:
                self.first_request = (messages, tools)
            last = self._last
            if last is not None and last[0] == messages and last[1] == tools and last[2] == max_tokens:
                self.retries += 1
                return last[3]
            turn = await self._turn(messages, tools, max_tokens)
            self._last = (messages, tools, max_tokens, turn)
            return turn

    def _stop(self, reason: str, message: str) -> LimitReached:
        self.limit_reason = reason
        return LimitReached(reason, message)

    async def _turn(self, messages: list[dict], tools: list[dict], max_tokens: int | None) -> Turn:
        if self.limit_reason:
            raise LimitReached(self.limit_reason, f"the session already ended: {self.limit_reason}")
        if sum(c.turns for c in self.chains) >= self.limits.max_turns:
            raise self._stop(MAX_TURNS_REACHED, f"turn cap of {self.limits.max_turns} reached")
        try:
            chain, delta = self._extended(messages, tools), None
            if chain is not None and _chars(messages[len(chain.messages) + 1:]) <= INLINE_CHARS:
                try:
                    delta = self._appended(chain, messages)
                except NotAppendable:  # a new chain: its whole prompt renders on the thread
                    chain = None
            if delta is None:
                chain, delta = await self.off_loop(self._chain_for, chain, messages, tools)
        except LimitReached as e:
            raise self._stop(e.reason, str(e)) from None
        budget = self.limits.response_length - len(chain.mask) - len(delta)
        if budget <= 0:
            raise self._stop(OVERLONG, f"response window of {self.limits.response_length} tokens is full")
        start = len(chain.sequence)
        chain.sequence += delta
        want = min(budget, max_tokens or budget)
        try:
            out = await self._generate(chain.sequence, dict(self.sampling_params, max_tokens=want))
        except BaseException:
            del chain.sequence[start:]
            raise
        prompt_len = start + len(delta)
        if not chain.turns:  # a new chain: it joins (and counts as a rewrite after the first) once it holds a turn
            self._rewrites += bool(self.chains)
            self.chains.append(chain)
        sampled = list(out.token_ids)
        logp = list(out.log_probs) if out.log_probs else [0.0] * len(sampled)
        chain.sequence += sampled
        chain.mask.extend([0] * len(delta) + [1] * len(sampled))
        chain.logprobs.extend([0.0] * len(delta) + logp)
        chain.messages, chain.turns, chain.ended_at = list(messages), chain.turns + 1, time.perf_counter()
        if out.routed_experts is not None:
            chain.routed_experts = out.routed_experts
        chain.steps += [s for s in (out.extra_fields.get("min_global_steps"), out.extra_fields.get("max_global_steps"))
                        if s is not None]
        self.calls += 1
        self.sampled_tokens += len(sampled)
        stopped = bool(sampled) and sampled[-1] in self.renderer.stop_ids
        if not stopped and len(sampled) >= budget:  # the chain reached the response window: stop the agent
            raise self._stop(OVERLONG, f"response window of {self.limits.response_length} tokens is full")
        reply = sampled[:-1] if stopped else sampled
        text = self._decode(reply) if len(reply) <= INLINE_TOKENS else await self.off_loop(self._decode, reply)
        # the request's tools ([{"type": "function", "function": {..., "parameters": schema}}], chat.py's form for
        # both wire formats): qwen3_coder converts only the parameters the schema declares non-string
        chain.reply = parse(text, self.parser, chain.tools)
        self.parse_failures += bool(chain.reply.failures)  # turns with a <tool_call> block that became no call
        finish = "stop" if stopped or len(sampled) < want else "length"
        return Turn(chain.reply, finish, (prompt_len, len(sampled)))

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False)

    async def _generate(self, ids: list[int], params: dict):
        """One generation; a request aborted by a weight sync (stop_reason "aborted", possibly no tokens;
        vllm_async_server.py:693-699) is issued again from the same prompt and its partial tokens are discarded, so
        a turn is never handed to the agent half-done and each turn is sampled by one policy version (verl resumes
        instead only with async_training.partial_rollout, llm_server.py:336-343, and then never returns "aborted")."""
        while True:
            t0 = time.perf_counter()
            out = await self.generate(request_id=self.id, prompt_ids=ids, sampling_params=dict(params))
            self.generate_seconds += time.perf_counter() - t0
            if out.stop_reason not in ABORTED:
                return out
            self.aborts += 1
            await asyncio.sleep(self.abort_retry_sec)

    # ------------------------------------------------------------------ result
    def trained_chain(self) -> Chain | None:
        best = None
        for chain in self.chains:
            if chain.turns and (best is None or chain.turns >= best.turns):
                best = chain
        return best


def routed_experts_of(chain: Chain | None, length: int):
    """The chain's routing cut to `length` rows (prompt + response window), as tool_agent_loop.py:205-209 cuts it."""
    return None if chain is None or chain.routed_experts is None else np.asarray(chain.routed_experts)[:length]
