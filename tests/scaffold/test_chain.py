"""The chain never re-renders what the policy sampled (issue 17, F2), over real HTTP through the real proxy.

Test chat templates that behave like Qwen3's and Qwen3.5's (tests/scaffold/templates: the think block only on the
last assistant turn, reasoning dropped once a later user query exists, tool results wrapped in a user turn) render a
past assistant turn differently once messages follow it. An agent conversation of four turns in each wire format,
with and without reasoning (and with thinking switched off), with and without a text block beside the tool results,
must stay one chain with every turn trained: the mask-1 tokens are exactly what the policy double sampled (it
records its calls itself), each generation saw exactly the chain up to that point, and no render after the first
request contains a sampled assistant message.
"""

from __future__ import annotations

import asyncio

import pytest
from harness import mask1, new_session
from policy_double import ScriptedPolicy, hermes_call, tool_call
from tokenizer_fixture import Recording, with_template
from wire_client import Conversation, tools_for, with_proxy

from liverl.scaffold.session import Session

PARSER = {"qwen3_like": "hermes", "qwen35_like": "qwen3_coder"}
CASES = [(t, reasoning, thinking) for t in PARSER for reasoning, thinking in ((True, True), (False, True),
                                                                             (False, False))]


def script_for(template: str, reasoning: bool, thinking: bool, calls: int = 3):
    """The policy's turns: `calls` tool calls, then a final answer. Qwen3.5's generation prompt opens <think>, so its
    policy writes only the rest of the block (an empty one without reasoning)."""
    turn = {"k": 0}

    def script(prompt: str) -> str:
        turn["k"] += 1
        k = turn["k"]
        if template == "qwen35_like" and thinking:
            head = f"I will run step {k}.\n</think>\n\n" if reasoning else "</think>\n\n"
        else:
            head = f"<think>\nI will run step {k}.\n</think>\n\n" if reasoning else ""
        if k > calls:
            return head + "Step done."
        call = (hermes_call if template == "qwen3_like" else tool_call)("bash", command=f"echo {k} >> log")
        return head + f"Step {k}.\n" + call

    return script


async def converse(session: Session, wire: str, *, stream: bool, extra_text: bool, turns: int = 4) -> list[dict]:
    async def body(http, proxy) -> list[dict]:
        conv = Conversation(http, proxy, session, wire, stream=stream, extra_text=extra_text)
        replies = []
        for _ in range(turns):
            reply = await conv.ask()
            replies.append(reply)
            if not reply["calls"]:
                break
            conv.tool_results(reply, [f"exit code 0\nline {len(replies)}" for _ in reply["calls"]])
        return replies

    return await with_proxy(session, body)


@pytest.mark.parametrize("extra_text", [False, True], ids=["tool-only", "extra-text"])
@pytest.mark.parametrize("wire", ["anthropic", "openai"])
@pytest.mark.parametrize("template,reasoning,thinking", CASES,
                         ids=[f"{t}-{'reasoning' if r else 'no-reasoning'}{'' if th else '-thinking-off'}"
                              for t, r, th in CASES])
def test_one_chain_all_turns_trained(tokenizer, wire, extra_text, template, reasoning, thinking) -> None:
    tok = Recording(with_template(tokenizer, template))
    policy = ScriptedPolicy(tok, script_for(template, reasoning, thinking))
    session = new_session(tok, policy, PARSER[template], None if thinking else {"enable_thinking": False})
    replies = asyncio.run(converse(session, wire, stream=wire == "anthropic", extra_text=extra_text))
    assert [len(r["calls"]) for r in replies] == [1, 1, 1, 0]  # the agent ran the policy's three calls, then stopped
    assert replies[0]["calls"] == [("bash", {"command": "echo 1 >> log"})]
    assert len(session.chains) == 1 and session.rewrites == 0
    chain = session.trained_chain()
    assert chain.turns == 4
    assert mask1(chain) == [t for c in policy.calls for t in c.token_ids]
    assert [lp for lp, m in zip(chain.logprobs, chain.mask, strict=True) if m] == [
        lp for c in policy.calls for lp in c.log_probs]
    sequence = chain.prompt_ids + chain.tokens
    for call in policy.calls:  # every generation saw exactly the chain up to that point
        assert call.prompt_ids == sequence[: len(call.prompt_ids)]
    # each sampled turn is closed as the template closes a turn: `<|im_end|>` then a newline (mask 0)
    assert "<|im_end|><|im_start|>" not in tok.decode(sequence)
    # the sampled turns were never rendered again (only the first request and the appended messages were)
    assert not [m for msgs in tok.rendered for m in msgs if "Step" in (m.get("content") or "")]
    # what the chain appends is the tool output as the template wraps it, in a user turn (mask 0)
    observed = tok.decode([t for t, m in zip(chain.tokens, chain.mask, strict=True) if m == 0])
    assert observed.count("<tool_response>\nexit code 0\nline 2\n</tool_response>") == 1
    assert ("Keep going." in observed) == extra_text


def test_a_rewritten_history_opens_a_counted_chain(tokenizer) -> None:
    """Compaction (the agent replaces its earlier turns by a summary) is a real rewrite: a new chain, counted."""
    tok = with_template(tokenizer, "qwen35_like")
    policy = ScriptedPolicy(tok, script_for("qwen35_like", True, True, calls=5))
    session = new_session(tok, policy)

    async def body(http, proxy) -> None:
        conv = Conversation(http, proxy, session, "openai")
        for _ in range(2):
            conv.tool_results(await conv.ask(), ["exit code 0"])
        conv.messages = [*conv.messages[:2], {"role": "user", "content": "Summary: two commands ran."}]
        await conv.ask()

    asyncio.run(with_proxy(session, body))
    assert len(session.chains) == 2 and session.rewrites == 1
    assert mask1(session.trained_chain()) == policy.calls[0].token_ids + policy.calls[1].token_ids
    assert session.sampled_tokens == sum(len(c.token_ids) for c in policy.calls)


def test_a_changed_tool_list_opens_a_counted_chain(tokenizer) -> None:
    """The chain's prompt holds the tool definitions it was sampled with: a request with other tools cannot extend
    it (the policy would answer against tools the agent no longer offers), so it opens a new chain, counted."""
    tok = with_template(tokenizer, "qwen35_like")
    policy = ScriptedPolicy(tok, script_for("qwen35_like", True, True, calls=5))
    session = new_session(tok, policy)

    async def body(http, proxy) -> None:
        conv = Conversation(http, proxy, session, "anthropic")
        conv.tool_results(await conv.ask(), ["exit code 0"])
        conv.tools = tools_for("anthropic", ("bash", "Read"))
        await conv.ask()

    asyncio.run(with_proxy(session, body))
    assert len(session.chains) == 2 and session.rewrites == 1
    assert "<name>Read</name>" in tok.decode(session.chains[1].prompt_ids)
    assert "<name>Read</name>" not in tok.decode(session.chains[0].prompt_ids + session.chains[0].tokens)


def test_a_non_standard_tokenisation_is_trained_as_sampled(tokenizer) -> None:
    """The policy may sample a split of the text that `encode` would never produce: the chain keeps those ids."""
    tok = with_template(tokenizer, "qwen35_like")
    policy = ScriptedPolicy(tok, script_for("qwen35_like", True, True), split=True)
    session = new_session(tok, policy)
    asyncio.run(converse(session, "openai", stream=False, extra_text=False))
    first = policy.calls[0].token_ids
    assert first[:-1] != tok.encode(tok.decode(first[:-1]), add_special_tokens=False)  # really non-standard
    chain = session.trained_chain()
    assert chain.turns == 4 and mask1(chain) == [t for c in policy.calls for t in c.token_ids]
    assert policy.calls[3].prompt_ids[: len(chain.prompt_ids) + len(first)] == chain.prompt_ids + first


def test_claude_codes_environment_message_keeps_one_chain(tokenizer) -> None:
    """claude-code (the real CLI, as recorded through the proxy) sends its "# Environment" message with role system:
    as a list of text blocks in its first request and as a string in the later ones (F14). Both are one message."""
    tok = with_template(tokenizer, "qwen35_like")
    policy = ScriptedPolicy(tok, script_for("qwen35_like", True, True, calls=2))
    session = new_session(tok, policy)
    environment = "# Environment\nYou have been invoked in the following environment:\n - Platform: linux"

    async def body(http, proxy) -> None:
        conv = Conversation(http, proxy, session, "anthropic", stream=True)
        task = [{"type": "text", "text": "<system-reminder>r</system-reminder>"},
                {"type": "text", "text": "Write 42 into answer.txt."}]
        conv.messages = [{"role": "user", "content": task},
                         {"role": "system", "content": [{"type": "text", "text": environment}]}]
        reply = await conv.ask()
        conv.messages[1] = {"role": "system", "content": environment}
        conv.tool_results(reply, ["exit code 0"])
        await conv.ask()

    asyncio.run(with_proxy(session, body))
    assert len(session.chains) == 1 and session.rewrites == 0 and session.trained_chain().turns == 2
