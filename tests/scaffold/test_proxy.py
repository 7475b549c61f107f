"""The proxy under the conditions a real run brings (issue 17: F6, F8, F9, F12, F13, keep-alive, truncation), over
real HTTP against the real aiohttp server, with the policy double behind verl's generate interface."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from harness import harbor_settings, make_loop, mask1, new_session
from policy_double import ScriptedPolicy, tool_call
from tokenizer_fixture import Recording, with_template
from wire_client import Conversation, events, read_reply, with_proxy

from liverl.scaffold.loop_metrics import trial_figures
from liverl.scaffold.proxy import Proxy
from liverl.scaffold.render import NotAppendable
from liverl.scaffold.session import INLINE_CHARS, Session


def calls_then_done(calls: int = 3):
    """Turn k (one more than the tool results in the prompt) calls `echo k`; after `calls` calls, a final answer."""

    def script(prompt: str) -> str:
        k = prompt.count("<tool_response>") + 1
        if k > calls:
            return "</think>\n\nAll done."
        return f"</think>\n\nStep {k}.\n" + tool_call("bash", command=f"echo {k}")

    return script


@pytest.fixture
def tok(tokenizer):
    return with_template(tokenizer, "qwen35_like")


# ---------------------------------------------------------------- F8: one turn at a time, retries answered once
@pytest.mark.parametrize("wire", ["anthropic", "openai"])
def test_a_retry_while_the_turn_generates_is_answered_from_it(tok, wire) -> None:
    policy = ScriptedPolicy(tok, calls_then_done(), delay_sec=0.3)
    session = new_session(tok, policy)

    async def body(http, proxy):
        conv = Conversation(http, proxy, session, wire)
        request = conv.body()
        first = asyncio.ensure_future(conv.post(request))
        await asyncio.sleep(0.1)  # the client gave up and sent the same request again
        return await asyncio.gather(first, conv.post(request))

    (s1, r1), (s2, r2) = asyncio.run(with_proxy(session, body))
    assert s1 == s2 == 200 and len(policy.calls) == 1 and session.retries == 1
    (_, a), (_, b) = read_reply(wire, False, r1), read_reply(wire, False, r2)
    assert a["calls"] == b["calls"] == [("bash", {"command": "echo 1"})] and a["text"] == b["text"]
    chain = session.trained_chain()
    assert chain.turns == 1 and mask1(chain) == policy.calls[0].token_ids


def test_two_different_requests_on_one_session_are_serialised(tok) -> None:
    policy = ScriptedPolicy(tok, calls_then_done(), delay_sec=0.2)
    session = new_session(tok, policy)

    async def body(http, proxy):
        a = Conversation(http, proxy, session, "openai")
        b = Conversation(http, proxy, session, "openai")
        b.messages[1] = {"role": "user", "content": "A side question."}
        return await asyncio.gather(a.post(a.body()), b.post(b.body()))

    asyncio.run(with_proxy(session, body))
    assert len(policy.calls) == 2 and policy.max_active == 1  # never two generations of one session at once
    for chain in session.chains:  # each chain holds only its own turn, sampled from its own prompt
        assert chain.turns == 1 and len(chain.tokens) == len(mask1(chain))
    assert {tuple(c.prompt_ids) for c in policy.calls} == {tuple(c.prompt_ids) for c in session.chains}


# ---------------------------------------------------------------- keep-alive while a turn generates
@pytest.mark.parametrize("wire,keepalive", [("anthropic", b"event: ping\n"), ("openai", b": keep-alive\n")])
def test_streams_send_keepalives_while_the_turn_generates(tok, wire, keepalive) -> None:
    policy = ScriptedPolicy(tok, calls_then_done(), delay_sec=0.5)
    session = new_session(tok, policy)

    async def body(http, proxy):
        conv = Conversation(http, proxy, session, wire, stream=True)
        t0, chunks = time.perf_counter(), []
        async with http.post(conv.url, json=conv.body()) as resp:
            async for chunk in resp.content.iter_any():
                chunks.append((time.perf_counter() - t0, chunk))
        return chunks

    chunks = asyncio.run(with_proxy(session, body, keepalive_sec=0.05))
    early = b"".join(c for t, c in chunks if t < 0.4)  # generation takes 0.5 s
    assert early.count(keepalive) >= 3 and b"tool" not in early
    stream = events(b"".join(c for _, c in chunks))
    data = [d for _, d in stream if d]
    if wire == "anthropic":
        assert next(n for n, _ in stream if n != "ping") == "message_start" and data[-1]["type"] == "message_stop"
        assert any(d.get("delta", {}).get("stop_reason") == "tool_use" for d in data)
    else:
        assert data[0]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"] == "bash"


# ---------------------------------------------------------------- F12: rendering and tokenising off the event loop
def test_whole_prompts_and_long_messages_render_off_the_event_loop(tok) -> None:
    """A whole prompt (a chain's first request, count_tokens) and appended messages over INLINE_CHARS render and
    tokenise on the session's thread; a turn's short tool results render on the loop (handing them over would
    cost more than rendering them)."""
    rec = Recording(tok)
    policy = ScriptedPolicy(tok, calls_then_done())
    session = new_session(rec, policy)
    long_output = "line of a long file\n" * (INLINE_CHARS // 20 + 10)

    async def body(http, proxy):
        loop_thread = threading.get_ident()
        conv = Conversation(http, proxy, session, "anthropic")
        for output in ["exit code 0", long_output, "exit code 0"]:
            reply = await conv.ask()
            conv.tool_results(reply, [output])
        await conv.ask()
        async with http.post(conv.url + "/count_tokens", json=conv.body()) as resp:
            count = (await resp.json())["input_tokens"]
        return loop_thread, count, conv.body()

    loop_thread, count, request = asyncio.run(with_proxy(session, body))
    assert session.chains and len(session.chains) == 1 and session.chains[0].turns == 4
    renders = list(zip(rec.rendered, rec.render_threads, strict=True))
    whole = [t for m, t in renders if m[0]["content"] != "continuation system"]
    appended = [(m[-1]["content"], t) for m, t in renders
                if m[0]["content"] == "continuation system" and m[-1]["role"] == "tool"]
    assert len(whole) == 2 and loop_thread not in whole  # the first request and count_tokens
    assert [t == loop_thread for c, t in appended] == [c != long_output for c, t in appended]
    assert len(appended) == 3
    from liverl.scaffold import chat

    text = tok.apply_chat_template(chat.anthropic_messages(request), tools=chat.anthropic_tools(request),
                                   add_generation_prompt=True, tokenize=False)
    assert count == len(tok.encode(text, add_special_tokens=False))


def test_messages_the_template_cannot_append_open_a_chain_rendered_off_the_loop(tok, monkeypatch) -> None:
    """verl's rule (continuous_token.py raises the same): messages the template renders differently behind the
    synthetic context cannot extend the chain; the request opens a counted new chain, rendered on the thread."""
    rec = Recording(tok)
    policy = ScriptedPolicy(tok, calls_then_done())
    session = new_session(rec, policy)
    appended = session.renderer.appended

    def refuse_once(*args):
        monkeypatch.setattr(session.renderer, "appended", appended)
        raise NotAppendable("renders differently")

    async def body(http, proxy):
        conv = Conversation(http, proxy, session, "openai")
        conv.tool_results(await conv.ask(), ["exit code 0"])
        monkeypatch.setattr(session.renderer, "appended", refuse_once)
        conv.tool_results(await conv.ask(), ["exit code 0"])
        await conv.ask()
        return threading.get_ident()

    loop_thread = asyncio.run(with_proxy(session, body))
    whole = [t for m, t in zip(rec.rendered, rec.render_threads, strict=True)
             if m[0]["content"] != "continuation system"]
    assert len(whole) == 2 and loop_thread not in whole  # the first request, and the refused one's whole prompt
    assert len(session.chains) == 2 and session.rewrites == 1 and session.trained_chain().turns == 2


# ---------------------------------------------------------------- F9: an aborted turn is generated again
def test_an_aborted_turn_is_generated_again_not_handed_over(tok, monkeypatch) -> None:
    monkeypatch.setattr(Session, "abort_retry_sec", 0.0)
    policy = ScriptedPolicy(tok, calls_then_done(), aborts=2)  # first abort: no tokens; second: half the turn
    session = new_session(tok, policy)

    async def body(http, proxy):
        return await Conversation(http, proxy, session, "anthropic").ask()

    reply = asyncio.run(with_proxy(session, body))
    assert len(policy.aborted[0].token_ids) == 0 and len(policy.aborted[1].token_ids) > 0
    assert reply["stop"] == "tool_use" and reply["calls"] == [("bash", {"command": "echo 1"})]
    assert session.aborts == 2 and session.calls == 1
    assert mask1(session.trained_chain()) == policy.calls[0].token_ids  # the aborted partial is not in the chain


# ---------------------------------------------------------------- truncation stops the agent
def final(reply: dict) -> bool:
    return reply["calls"] == [] and reply["stop"] in ("end_turn", "stop")


@pytest.mark.parametrize("wire", ["anthropic", "openai"])
def test_a_full_response_window_answers_a_final_stop(tok, wire) -> None:
    policy = ScriptedPolicy(tok, calls_then_done())
    first = len(tok.encode("</think>\n\nStep 1.\n" + tool_call("bash", command="echo 1"))) + 1
    session = new_session(tok, policy, response_length=first + 5)  # the tool output will not fit

    async def body(http, proxy):
        conv = Conversation(http, proxy, session, wire, stream=wire == "anthropic")
        r1 = await conv.ask()
        conv.tool_results(r1, ["exit code 0 and a long output " * 3])
        return r1, await conv.ask(), await conv.ask()

    r1, r2, r3 = asyncio.run(with_proxy(session, body))
    assert r1["calls"] and final(r2) and final(r3)
    assert session.limit_reason == "overlong" and len(policy.calls) == 1 and session.requests == 3
    assert mask1(session.trained_chain()) == policy.calls[0].token_ids


def test_a_turn_cut_by_the_response_window_stops_the_agent(tok) -> None:
    policy = ScriptedPolicy(tok, calls_then_done())
    session = new_session(tok, policy, response_length=6)

    async def body(http, proxy):
        return await Conversation(http, proxy, session, "openai").ask()

    reply = asyncio.run(with_proxy(session, body))
    assert final(reply) and session.limit_reason == "overlong"
    assert len(policy.calls[0].token_ids) == 6 and mask1(session.trained_chain()) == policy.calls[0].token_ids


def test_the_turn_cap_answers_a_final_stop(tok) -> None:
    policy = ScriptedPolicy(tok, calls_then_done(5))
    session = new_session(tok, policy, max_turns=2)

    async def body(http, proxy):
        conv = Conversation(http, proxy, session, "anthropic")
        replies = []
        for _ in range(3):
            replies.append(await conv.ask())
            if replies[-1]["calls"]:
                conv.tool_results(replies[-1], ["exit code 0"])
        return replies

    replies = asyncio.run(with_proxy(session, body))
    assert [bool(r["calls"]) for r in replies] == [True, True, False] and final(replies[2])
    assert session.limit_reason == "max_turns_reached" and len(policy.calls) == 2


def test_a_prompt_over_the_prompt_budget_answers_a_final_stop(tok) -> None:
    policy = ScriptedPolicy(tok, calls_then_done())
    session = new_session(tok, policy, prompt_length=10)

    async def body(http, proxy):
        return await Conversation(http, proxy, session, "openai", stream=True).ask()

    assert final(asyncio.run(with_proxy(session, body)))
    assert session.limit_reason == "overlong" and policy.calls == []


def test_a_turn_cut_by_the_agents_max_tokens_goes_on_in_the_same_chain(tok) -> None:
    policy = ScriptedPolicy(tok, calls_then_done())
    session = new_session(tok, policy)

    async def body(http, proxy):
        conv = Conversation(http, proxy, session, "anthropic")
        cut = await conv.ask(max_tokens=4)
        conv.messages.append({"role": "user", "content": "Go on."})
        return cut, await conv.ask()

    cut, nxt = asyncio.run(with_proxy(session, body))
    assert cut["stop"] == "max_tokens" and nxt["calls"] and session.limit_reason is None
    chain = session.trained_chain()
    assert len(session.chains) == 1 and chain.turns == 2
    assert mask1(chain) == policy.calls[0].token_ids + policy.calls[1].token_ids
    after = chain.tokens[len(policy.calls[0].token_ids):]  # the unsampled close of the cut turn, mask 0
    assert tok.decode(after[:2]) == "<|im_end|>\n" and list(chain.mask[4:6]) == [0, 0]


# ---------------------------------------------------------------- F13: other EOS tokens
def test_a_generation_config_eos_ends_a_turn_without_an_unsampled_im_end(tokenizer, tmp_path: Path) -> None:
    tok = with_template(tokenizer, "qwen35_like", tmp_path / "tok", generation_eos=["<|im_end|>", "<|endoftext|>"])
    policy = ScriptedPolicy(tok, calls_then_done(), stop_token="<|endoftext|>")
    session = new_session(tok, policy)

    async def body(http, proxy):
        conv = Conversation(http, proxy, session, "openai")
        r1 = await conv.ask()
        conv.tool_results(r1, ["exit code 0"])
        return r1, await conv.ask()

    r1, r2 = asyncio.run(with_proxy(session, body))
    assert r1["stop"] == "tool_calls" and "<|endoftext|>" not in r1["text"] + r2["text"]
    chain = session.trained_chain()
    end = len(policy.calls[0].token_ids)
    assert chain.tokens[end - 1] == tok.convert_tokens_to_ids("<|endoftext|>")
    assert tok.decode(chain.tokens[end:end + 1]) == "<|im_start|>"  # nothing unsampled closes the turn
    assert len(session.chains) == 1 and mask1(chain) == policy.calls[0].token_ids + policy.calls[1].token_ids


# ---------------------------------------------------------------- F6: routed experts reach verl
def test_routed_experts_of_the_trained_chain_reach_the_agent_loop_output(tokenizer, tok, tmp_path: Path) -> None:
    policy = ScriptedPolicy(tok, calls_then_done(), experts=(2, 3))
    session = new_session(tok, policy)

    async def body(http, proxy):
        conv = Conversation(http, proxy, session, "openai")
        conv.tool_results(await conv.ask(), ["exit code 0"])
        await conv.ask()

    asyncio.run(with_proxy(session, body))
    loop = make_loop(tok, policy, harbor_settings(tmp_path))
    out = loop._output({}, session, {"verifier_result": {"rewards": {"reward": 1.0}}}, "agent_completed", 1, 1.0)
    seq = len(out.prompt_ids) + len(out.response_ids)
    assert out.routed_experts is not None and np.asarray(out.routed_experts).shape == (seq, 2, 3)
    # the last turn's routing covers the whole chain (vLLM routes prompt and response tokens)
    assert np.array_equal(out.routed_experts, policy.calls[-1].routed_experts)


def test_proxy_keeps_a_bounded_overhead_record() -> None:
    assert Proxy().overhead.maxlen is not None


def test_turns_with_unparsed_tool_call_markup_are_counted(tok) -> None:
    policy = ScriptedPolicy(tok, lambda prompt: "</think>\n\n<tool_call>\n<function=bash>\n<parameter=command>\nls")
    session = new_session(tok, policy)

    async def body(http, proxy):
        return await Conversation(http, proxy, session, "openai").ask()

    reply = asyncio.run(with_proxy(session, body))
    assert reply["calls"] == [] and session.parse_failures == 1


# claude-code's Bash tool (its schema as the CLI sends it: a string command, a numeric timeout)
BASH_SCHEMA = {"type": "object", "properties": {"command": {"type": "string"}, "timeout": {"type": "number"},
                                                "description": {"type": "string"}}, "required": ["command"]}


@pytest.mark.parametrize("wire", ["anthropic", "openai"])
def test_tool_arguments_follow_the_request_schema_through_the_session(tok, wire) -> None:
    """qwen3_coder values are text: the session hands the parser the request's tools, so the numeric `timeout`
    reaches the agent as a number and the string `command` stays the string the policy wrote (`42`)."""
    def script(prompt: str) -> str:
        if "<tool_response>" in prompt:
            return "</think>\n\nDone."
        return "</think>\n\n" + tool_call("Bash", command="42", timeout="60000", description="true")

    policy = ScriptedPolicy(tok, script)
    session = new_session(tok, policy)
    tools = ([{"name": "Bash", "description": "run", "input_schema": BASH_SCHEMA}] if wire == "anthropic" else
             [{"type": "function", "function": {"name": "Bash", "description": "run", "parameters": BASH_SCHEMA}}])

    async def body(http, proxy):
        conv = Conversation(http, proxy, session, wire, tools=tools)
        first = await conv.ask()
        conv.tool_results(first, ["42"])
        return first, await conv.ask()

    first, second = asyncio.run(with_proxy(session, body))
    assert first["calls"] == [("Bash", {"command": "42", "timeout": 60000, "description": "true"})]
    assert isinstance(first["calls"][0][1]["timeout"], int) and second["calls"] == []
    # the agent's echo of the converted call still extends the chain
    assert len(session.chains) == 1 and session.trained_chain().turns == 2
    # the loop's per-trial figures read this real session: one chain, every sampled token trained, and the waste
    # measured on the clock Chain.ended_at is stamped with (a wall-clock stamp would read as 0 or hours here)
    figures = trial_figures(session, session.trained_chain(), trial_s=1.0)
    assert figures["trained_token_fraction"] == 1.0 and figures["parse_failures"] == 0
    assert 0.0 < figures["waste_s"] < 5.0
