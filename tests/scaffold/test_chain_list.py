"""A chain's one token list (session.py): the list handed to the engine is extended before a generation and rolled
back when it fails, and a turn still generating is never part of the chain's tokens, so tokens, mask and log-probs
always line up (the agent loop may build its output while a turn is in flight: the proxy lets a turn run on when
its client goes away)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from harness import new_session
from policy_double import ScriptedPolicy, tool_call


def _next(messages: list[dict], turn) -> list[dict]:
    calls = [{"type": "function", "function": {"name": c.name, "arguments": c.arguments}}
             for c in turn.parsed.tool_calls]
    return [*messages, {"role": "assistant", "content": turn.parsed.content, "tool_calls": calls},
            {"role": "tool", "content": "exit code 0"}]


def _aligned(chain) -> bool:
    return len(chain.sequence) == chain.prompt_len + len(chain.mask) == chain.prompt_len + len(chain.logprobs)


def test_a_failed_generation_leaves_the_chain_as_it_was(tokenizer) -> None:
    policy = ScriptedPolicy(tokenizer, lambda prompt: tool_call("bash", command="ls"))
    fail = [False]

    async def generate(request_id, **kwargs):
        if fail[0]:
            fail[0] = False
            raise RuntimeError("the rollout server went away")
        return await policy.generate(request_id, **kwargs)

    session = new_session(tokenizer, SimpleNamespace(generate=generate))

    async def body():
        messages = [{"role": "user", "content": "go"}]
        messages = _next(messages, await session.turn(messages, [], None))
        fail[0] = True
        with pytest.raises(RuntimeError, match="went away"):
            await session.turn(messages, [], None)
        chain = session.chains[0]
        assert _aligned(chain) and chain.turns == 1
        await session.turn(messages, [], None)  # the agent asks again

    asyncio.run(body())
    chain = session.trained_chain()
    assert len(session.chains) == 1 and chain.turns == 2 and _aligned(chain)
    assert policy.calls[-1].prompt_ids == chain.sequence[:len(policy.calls[-1].prompt_ids)]
    assert [t for t, m in zip(chain.tokens, chain.mask, strict=True) if m] == [
        t for c in policy.calls for t in c.token_ids]


def test_a_turn_in_flight_is_not_in_the_chains_tokens(tokenizer) -> None:
    policy = ScriptedPolicy(tokenizer, lambda prompt: tool_call("bash", command="ls"))
    gate: list[asyncio.Event] = []

    async def generate(request_id, **kwargs):
        if gate:
            await gate[0].wait()
        return await policy.generate(request_id, **kwargs)

    session = new_session(tokenizer, SimpleNamespace(generate=generate))

    async def body():
        messages = [{"role": "user", "content": "go"}]
        messages = _next(messages, await session.turn(messages, [], None))
        chain = session.chains[0]
        before = (chain.prompt_ids, chain.tokens, list(chain.mask), list(chain.logprobs))
        gate.append(asyncio.Event())
        task = asyncio.ensure_future(session.turn(messages, [], None))
        await asyncio.sleep(0.05)
        assert len(chain.sequence) > chain.prompt_len + len(chain.mask)  # the turn's prompt part is appended
        assert (chain.prompt_ids, chain.tokens, list(chain.mask), list(chain.logprobs)) == before
        gate[0].set()
        await task
        assert _aligned(chain) and chain.turns == 2 and len(chain.tokens) > len(before[1])

    asyncio.run(body())
