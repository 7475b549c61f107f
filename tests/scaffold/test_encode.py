"""Whole prompts tokenised by message with a per-worker cache (liverl/scaffold/encode.py): the ids are always the
whole text's, for any message text the chat templates render, and the cache is shared and bounded."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizer_fixture import ADDED, SPECIAL, with_template
from tokenizers import AddedToken
from transformers import PreTrainedTokenizerFast

from liverl.scaffold import encode
from liverl.scaffold.encode import PromptEncoder, cuts_exactly, encoder_for

# text an agent sends: code, whitespace runs, unicode, and the template's own markers inside message content
PIECES = ["def f(x):\n    return x\n", "  \n\n\t ", "é中文🙂", "<|im_start|>", "<|im_end|>", "<tool_call>",
          "</tool_response>", "<|im_start", "|>", "\n", " ", "im_start", "a" * 40, "\u0301", "A\u030a", "\r\n",
          "\u1100\u1161\u11a8", "'s", "42"]  # combining marks and jamo: what an NFC normaliser changes
TEXT = st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=30)), max_size=12).map("".join)
MESSAGES = st.lists(st.tuples(st.sampled_from(["user", "assistant", "tool"]), TEXT), min_size=1, max_size=8)


def qwen2_pipeline(tokenizer) -> PreTrainedTokenizerFast:
    """The fixture's vocabulary in transformers' Qwen2 tokenizer: Qwen's NFC normaliser and pre-tokenizer regex."""
    from transformers.models.qwen2.tokenization_qwen2 import Qwen2Tokenizer

    model = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    qwen = Qwen2Tokenizer(vocab=model["vocab"], merges=merges)
    qwen.add_special_tokens({"additional_special_tokens": [AddedToken(t, special=True) for t in SPECIAL]})
    qwen.add_tokens([AddedToken(t, special=False) for t in ADDED])
    qwen.chat_template = tokenizer.chat_template
    assert "NFC" in str(qwen.backend_tokenizer.normalizer)
    return qwen


@pytest.fixture(scope="module", params=["qwen3_like", "qwen35_like", None, "qwen2_pipeline"])
def tok(request, tokenizer):
    if request.param == "qwen2_pipeline":
        return qwen2_pipeline(tokenizer)
    return tokenizer if request.param is None else with_template(tokenizer, request.param)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(system=TEXT, messages=MESSAGES)
def test_cut_encoding_is_the_whole_texts(tok, monkeypatch, system, messages) -> None:
    monkeypatch.setattr(encode, "MIN_CHARS", 0)  # every prompt goes through the cut and the cache
    chat = [{"role": "system", "content": system}] + [{"role": r, "content": c} for r, c in messages]
    text = tok.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    enc = PromptEncoder(tok)
    assert enc.exact
    whole = tok.encode(text, add_special_tokens=False)
    assert enc.encode(text) == whole
    assert enc.encode(text) == whole and enc.hits >= text.count("<|im_start|>")  # the second time from the cache


def test_a_marker_that_strips_the_space_before_it_is_encoded_whole(tokenizer, tmp_path, monkeypatch) -> None:
    """A tokenizer whose <|im_start|> strips the whitespace before it joins the text across the cut: no cutting."""
    monkeypatch.setattr(encode, "MIN_CHARS", 0)
    tokenizer.save_pretrained(tmp_path)
    tok = PreTrainedTokenizerFast.from_pretrained(tmp_path)
    tok.add_special_tokens({"additional_special_tokens": [AddedToken("<|im_start|>", lstrip=True, special=True)]})
    assert not cuts_exactly(tok)
    text = "a  \n<|im_start|>user\nhi<|im_end|>\n  <|im_start|>assistant\n"
    enc = PromptEncoder(tok)
    assert enc.encode(text) == tok.encode(text, add_special_tokens=False) and enc.hits == enc.misses == 0


@pytest.mark.parametrize("flag", ["single_word", "normalized"])
def test_a_marker_matched_as_a_word_or_on_normalised_text_is_not_cut(tokenizer, tmp_path, flag) -> None:
    tokenizer.save_pretrained(tmp_path)
    tok = PreTrainedTokenizerFast.from_pretrained(tmp_path)
    tok.add_special_tokens({"additional_special_tokens": [AddedToken("<|im_start|>", special=True, **{flag: True})]})
    assert not cuts_exactly(tok)


def test_no_marker_token_no_cutting(tokenizer) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, additional_special_tokens=[t for t in SPECIAL + ADDED
                                                                                   if t != "<|im_start|>"])
    assert not cuts_exactly(tok)


def test_one_cache_per_tokenizer_and_bounded(tokenizer, monkeypatch) -> None:
    monkeypatch.setattr(encode, "MIN_CHARS", 0)
    assert encoder_for(tokenizer) is encoder_for(tokenizer)
    enc = PromptEncoder(tokenizer, max_tokens=400)
    texts = [f"<|im_start|>user\n{'word ' * 30} {i}<|im_end|>\n" for i in range(40)]
    for text in texts:
        assert enc.encode(text) == tokenizer.encode(text, add_special_tokens=False)
    assert 0 < enc.tokens <= 400 and len(enc._cache) < len(texts)
    assert enc.encode(texts[-1]) and enc.hits == 1  # the newest stays cached
