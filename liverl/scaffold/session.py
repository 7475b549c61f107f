"""One trial's token record: every generation is token-in/token-out, and the trained tokens are the sampled ones.

A *chain* is a token sequence the policy really saw: the first request's rendered prompt, then per turn the
sampled tokens (mask 1, with their rollout log-probs) and the template's text between the end of that turn
and the next generation prompt (tool output, the next user message: mask 0). The next request extends a
chain when its messages start with the messages that chain encodes; its prompt is then the chain's own
tokens plus the new text, never a re-tokenisation of what the policy wrote.

History rewrites (the agent compacts, edits or drops earlier turns, or makes a side request): a request that
extends no chain opens a new chain whose prompt is the rendered new history; the re-rendered earlier turns
in it are prompt (never trained). At the end the trained chain is the one with the most turns (the latest
on a tie); the others are not trained, and the count of chains and of rewrites is reported. So a token with
mask 1 is always a token this session sampled, at the position where it was sampled.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from liverl.guardrails.verl_keys import MAX_TURNS_REACHED, OVERLONG
from liverl.scaffold.toolcalls import Parsed, parse


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


@dataclass
class Chain:
    prompt_ids: list[int]
    messages: list[dict]  # the request messages of the chain's last turn
    tokens: list[int] = field(default_factory=list)
    mask: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    turns: int = 0
    ends_with_stop: bool = True
    steps: list[int] = field(default_factory=list)


@dataclass
class Turn:
    parsed: Parsed
    finish: str  # "stop" | "length"
    usage: tuple[int, int]


class Session:
    """The token record of one trial; `turn` is called once per agent request by the proxy."""

    def __init__(self, *, tokenizer: Any, generate: Callable, sampling_params: dict, limits: Limits,
                 parser: str, chat_template_kwargs: dict | None = None):
        self.id = uuid.uuid4().hex
        self.tokenizer = tokenizer
        self.generate = generate
        self.sampling_params = dict(sampling_params)
        self.limits = limits
        self.parser = parser
        self.template_kwargs = chat_template_kwargs or {}
        self.chains: list[Chain] = []
        self.limit_reason: str | None = None
        self.generate_seconds = 0.0
        self.calls = 0
        stop = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")]
        self.stop_ids = {t for t in stop if isinstance(t, int) and t >= 0 and t != tokenizer.unk_token_id}

    # ------------------------------------------------------------------ prompt
    def render(self, messages: list[dict], tools: list[dict], gen: bool) -> str:
        return self.tokenizer.apply_chat_template(messages, tools=tools or None, add_generation_prompt=gen,
                                                  tokenize=False, **self.template_kwargs)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def _extension(self, chain: Chain, messages: list[dict], tools: list[dict], full: str) -> list[int] | None:
        """The mask-0 tokens that take `chain` to the prompt of `messages`, or None when it does not extend it."""
        n = len(chain.messages)
        if len(messages) <= n + 1 or messages[:n] != chain.messages or messages[n]["role"] != "assistant":
            return None
        prefix = self.render(messages[: n + 1], tools, gen=False)
        if not full.startswith(prefix):
            return None
        stop_text = self.tokenizer.decode([chain.tokens[-1]]) if chain.ends_with_stop else None
        cut = prefix.rfind(stop_text) + len(stop_text) if stop_text and stop_text in prefix else None
        if cut is None:  # the turn was cut by max_tokens: close it with the template's text, unsampled
            end = "<|im_end|>" if "<|im_end|>" in prefix else ""
            cut = prefix.rfind(end) if end else len(prefix)
        return self.encode(full[cut:])

    def _chain_for(self, messages: list[dict], tools: list[dict]) -> tuple[Chain, list[int]]:
        full = self.render(messages, tools, gen=True)
        for chain in reversed(self.chains):
            delta = self._extension(chain, messages, tools, full)
            if delta is not None:
                return chain, delta
        prompt = self.encode(full)
        if len(prompt) > self.limits.prompt_length:
            raise LimitReached(OVERLONG, f"prompt of {len(prompt)} tokens exceeds {self.limits.prompt_length}")
        chain = Chain(prompt_ids=prompt, messages=[])
        self.chains.append(chain)
        return chain, []

    # ------------------------------------------------------------------ one turn
    async def turn(self, messages: list[dict], tools: list[dict], max_tokens: int | None) -> Turn:
        if self.limit_reason:
            raise LimitReached(self.limit_reason, f"the session already ended: {self.limit_reason}")
        turns = sum(c.turns for c in self.chains)
        if turns >= self.limits.max_turns:
            self.limit_reason = MAX_TURNS_REACHED
            raise LimitReached(MAX_TURNS_REACHED, f"turn cap of {self.limits.max_turns} reached")
        try:
            chain, delta = self._chain_for(messages, tools)
        except LimitReached as e:
            self.limit_reason = e.reason
            raise
        budget = self.limits.response_length - len(chain.tokens) - len(delta)
        if budget <= 0:
            self.limit_reason = OVERLONG
            raise LimitReached(OVERLONG, f"response window of {self.limits.response_length} tokens is full")
        ids = chain.prompt_ids + chain.tokens + delta
        params = dict(self.sampling_params, max_tokens=min(budget, max_tokens or budget))
        t0 = time.perf_counter()
        out = await self.generate(request_id=self.id, prompt_ids=ids, sampling_params=params)
        self.generate_seconds += time.perf_counter() - t0
        self.calls += 1
        sampled = list(out.token_ids)
        logp = list(out.log_probs) if out.log_probs else [0.0] * len(sampled)
        chain.tokens += delta + sampled
        chain.mask += [0] * len(delta) + [1] * len(sampled)
        chain.logprobs += [0.0] * len(delta) + logp
        chain.messages = list(messages)
        chain.turns += 1
        chain.ends_with_stop = bool(sampled) and sampled[-1] in self.stop_ids
        chain.steps += [s for s in (out.extra_fields.get("min_global_steps"), out.extra_fields.get("max_global_steps"))
                        if s is not None]
        text = self.tokenizer.decode(sampled[:-1] if chain.ends_with_stop else sampled, skip_special_tokens=False)
        finish = "stop" if chain.ends_with_stop or len(sampled) < params["max_tokens"] else "length"
        return Turn(parse(text, self.parser), finish, (len(ids), len(sampled)))

    # ------------------------------------------------------------------ result
    def trained_chain(self) -> Chain | None:
        best = None
        for chain in self.chains:
            if chain.turns and (best is None or chain.turns >= best.turns):
                best = chain
        return best

    @property
    def rewrites(self) -> int:
        return max(0, len(self.chains) - 1)
