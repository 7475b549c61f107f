"""The policy's chat template, used the way verl's own multi-turn loop uses it: render a whole prompt once, then
render only the messages an agent appends (verl/utils/tokenizer/continuous_token.py:113-166, 547-579).

Why only the appended messages: Qwen3-family templates render a past assistant turn differently once later messages
follow (the think block only on the last assistant turn, reasoning dropped once a later user query exists), so the
render of a longer history is not an extension of the shorter one. verl renders each appended group behind a fixed
synthetic context and keeps the suffix: a run of tool results behind a synthetic assistant that called them (with
reasoning, so a Qwen3 template renders it the same with or without followers), any other message behind a synthetic
system + user. The generation prompt is fused into the last group's render (continuous_token.py:113-166,330-337).

Boundary (verl's QwenContinuousTokenBuilder, continuous_token.py:547-579): a ChatML template closes a turn with
`<|im_end|>\\n`; generation stops at `<|im_end|>`, so after a sampled `<|im_end|>` the continuation starts with the
`\\n` (mask 0). After another sampled EOS (generation_config's) verl inserts nothing, and so does LiveRL. A turn cut
by max_tokens (no stop token sampled) is closed with the template's `<|im_end|>\\n`, unsampled (mask 0).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from liverl.scaffold.encode import encoder_for

IM_END = "<|im_end|>"
_SYSTEM = {"role": "system", "content": "continuation system"}
_USER = {"role": "user", "content": "continuation user"}
_TOOL = "continuation_tool"


class NotAppendable(ValueError):
    """The template renders an appended group differently behind the synthetic context (verl raises the same)."""


class Renderer:
    def __init__(self, tokenizer: Any, template_kwargs: dict | None = None):
        self.tokenizer = tokenizer
        self.kwargs = dict(template_kwargs or {})
        self.im_end = _token_id(tokenizer, IM_END)
        self.stop_ids = stop_ids(tokenizer)
        self._heads: dict[tuple[int, str], tuple[list[dict], str]] = {}
        self._prompts = encoder_for(tokenizer)

    def render(self, messages: list[dict], tools: list[dict], gen: bool) -> str:
        return self.tokenizer.apply_chat_template(messages, tools=tools or None, add_generation_prompt=gen,
                                                  tokenize=False, **self.kwargs)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def prompt(self, messages: list[dict], tools: list[dict]) -> list[int]:
        """The whole rendered prompt (a chain's first request, and count_tokens): its messages that other trials of
        this worker sent too are tokenised once (encode.py)."""
        return self._prompts.encode(self.render(messages, tools, gen=True))

    def appended(self, last_token: int | None, new: list[dict], tools: list[dict]) -> list[int]:
        """The tokens (all mask 0) after a chain whose last token is `last_token` (None: none sampled) that take it
        to the generation prompt of the conversation extended by the `new` messages."""
        if last_token == self.im_end:
            text = "\n"
        elif last_token is not None and last_token in self.stop_ids:
            text = ""
        else:  # the turn was cut by max_tokens: close it as the template closes a turn
            text = f"{IM_END}\n" if self.im_end is not None else ""
        groups = _groups(new)
        for i, group in enumerate(groups):
            head = [_SYSTEM, _USER, _caller(group)] if group[0]["role"] == "tool" else [_SYSTEM, _USER]
            before = self._head(head, tools)
            after = self.render(head + group, tools, gen=i == len(groups) - 1)
            if not after.startswith(before):
                raise NotAppendable(f"the chat template renders appended {group[0]['role']!r} messages differently")
            text += after[len(before):]
        return self.encode(text)


    def _head(self, head: list[dict], tools: list[dict]) -> str:
        """The synthetic context's render, cached per tool list (a chain passes the same list every turn)."""
        key = (id(tools), json.dumps(head[2:]))
        hit = self._heads.get(key)
        if hit is None or hit[0] is not tools:
            if len(self._heads) > 64:
                self._heads.clear()
            hit = self._heads[key] = (tools, self.render(head, tools, gen=False))
        return hit[1]


def _groups(messages: list[dict]) -> list[list[dict]]:
    """Runs of tool results form one group, every other message is its own (continuous_token.py:376-390)."""
    groups: list[list[dict]] = []
    for m in messages:
        if m["role"] == "tool" and groups and groups[-1][0]["role"] == "tool":
            groups[-1].append(m)
        else:
            groups.append([m])
    return groups


def _caller(tools: list[dict]) -> dict:
    calls = [{"id": f"call_{i}", "type": "function", "function": {"name": m.get("name") or _TOOL, "arguments": {}}}
             for i, m in enumerate(tools)]
    return {"role": "assistant", "content": "", "reasoning_content": "reasoning", "tool_calls": calls}


def _token_id(tokenizer: Any, token: str) -> int | None:
    tid = tokenizer.convert_tokens_to_ids(token)
    return tid if isinstance(tid, int) and tid >= 0 and tid != tokenizer.unk_token_id else None


def stop_ids(tokenizer: Any) -> set[int]:
    """Tokens that end a turn: the tokenizer's EOS, `<|im_end|>`, and the model's generation_config EOS ids, which
    vLLM adds to every request's stop tokens (vllm SamplingParams.update_from_generation_config)."""
    ids = {tokenizer.eos_token_id, _token_id(tokenizer, IM_END)}
    config = Path(str(getattr(tokenizer, "name_or_path", "") or "")) / "generation_config.json"
    if config.is_file():
        eos = json.loads(config.read_text()).get("eos_token_id")
        ids.update(eos if isinstance(eos, list) else [eos])
    return {t for t in ids if isinstance(t, int) and t >= 0}
