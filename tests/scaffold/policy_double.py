"""ScriptedPolicy: a test double for verl's server manager (`LLMServerClient.generate`, llm_server.py:99-110).

It stands in for vLLM, which cannot run here: `generate(request_id, *, prompt_ids, sampling_params, **kw)`
returns verl's TokenOutput with real token ids of the test tokenizer (the scripted reply's text encoded, then the
stop token <|im_end|>) and log-probs, honours `max_tokens`, and records every call. The script sees the decoded
prompt and returns the assistant text for the turn.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from verl.workers.rollout.replica import TokenOutput


@dataclass
class Call:
    request_id: str
    prompt_ids: list[int]
    token_ids: list[int]
    log_probs: list[float]
    routed_experts: Any = None


class ScriptedPolicy:
    """A plain class, like verl's LLMServerClient (hydra.utils.instantiate would turn a dataclass into a config)."""

    def __init__(self, tokenizer, script: Callable[[str], str], delay_sec: float = 0.0, global_steps: int = 3, *,
                 split: bool = False, stop_token: str | None = None, aborts: int = 0,
                 experts: tuple[int, int] | None = None):
        """split: sample each character as its own token(s), a tokenisation `encode` would never produce;
        stop_token: the token that ends each turn (default the tokenizer's EOS); aborts: the first N calls come back
        "aborted" (verl's stop reason after a weight sync: the first with no tokens, the others half the turn);
        experts: (layers, top-k) of vLLM's routed_experts, one row per prompt and response token."""
        self.tokenizer, self.script, self.delay_sec, self.global_steps = tokenizer, script, delay_sec, global_steps
        self.split, self.aborts, self.experts = split, aborts, experts
        self.stop_id = tokenizer.convert_tokens_to_ids(stop_token) if stop_token else tokenizer.eos_token_id
        self.calls: list[Call] = []  # the completed generations, in order
        self.aborted: list[Call] = []
        self.active = self.max_active = 0

    def _encode(self, text: str) -> list[int]:
        if self.split:
            return [t for ch in text for t in self.tokenizer.encode(ch, add_special_tokens=False)]
        return self.tokenizer.encode(text, add_special_tokens=False)

    async def generate(self, request_id, *, prompt_ids, sampling_params, **kwargs) -> TokenOutput:
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            if self.delay_sec:
                await asyncio.sleep(self.delay_sec)
        finally:
            self.active -= 1
        prompt = self.tokenizer.decode(prompt_ids, skip_special_tokens=False)
        text = self.script(prompt)
        ids = [*self._encode(text), self.stop_id]
        ids = ids[: int(sampling_params.get("max_tokens", len(ids)))]
        aborted = len(self.aborted) < self.aborts
        if aborted:
            ids = ids[: len(ids) // 2] if self.aborted else []
        logp = [-0.001 * (len(self.calls) + 1) * (i % 7 + 1) for i in range(len(ids))]
        call = Call(request_id, list(prompt_ids), ids, logp)
        (self.aborted if aborted else self.calls).append(call)
        routed = None
        if self.experts:
            routed = np.full((len(prompt_ids) + len(ids), *self.experts), len(self.calls) % 100, dtype=np.int16)
            call.routed_experts = routed
        return TokenOutput(token_ids=ids, log_probs=logp or None, routed_experts=routed,
                           stop_reason="aborted" if aborted else "completed",
                           extra_fields={"global_steps": self.global_steps, "min_global_steps": self.global_steps,
                                         "max_global_steps": self.global_steps})


def tool_call(name: str, **params: str) -> str:
    """The qwen3_coder XML of one tool call, as a Qwen3-Coder policy writes it."""
    body = "".join(f"\n<parameter={k}>\n{v}\n</parameter>" for k, v in params.items())
    return f"<tool_call>\n<function={name}>{body}\n</function>\n</tool_call>"


def after_tool_output(prompt: str) -> bool:
    """True once the latest turn of the prompt holds a tool result."""
    last_user = prompt.rfind("<|im_start|>user")
    return "<tool_response>" in prompt[last_user:]


def hermes_call(name: str, **arguments: str) -> str:
    """The hermes JSON of one tool call (Qwen2.5's format; model=qwen25_0p5b configures the `hermes` parser)."""
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"
