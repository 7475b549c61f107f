"""Whole-prompt tokenisation by message, with the messages every trial repeats encoded once per worker.

A chain's first request is rendered and tokenised whole (render.py). In one step most of that text is the same in
every trial: the agent's system prompt and tool definitions (claude-code's first request is ~30k tokens, nearly
all of it shared), and the task of each group's n samples. So the rendered text is cut before each
`<|im_start|>` and each piece's ids are kept in a per-worker LRU keyed by the piece's text.

Why the ids are exactly the whole text's: a tokenizer first splits its input at its added tokens and tokenises each
run between them on its own (`tokenizers`' AddedVocabulary; transformers' slow tokenizers split on the same trie),
so a cut right before an added token never joins or splits a token. Where that would not hold (the token strips
the whitespace before it, matches only as a single word or on normalised text, another added token contains it, a
probe disagrees), the text is encoded whole.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from typing import Any

MARK = "<|im_start|>"
MIN_CHARS = 8192  # shorter prompts are encoded whole (the cut and the lookups would cost more than they save)
MAX_TOKENS = 2_000_000  # cached ids per worker
_PROBE = (f"{MARK}system\nYou are a  coding agent.<|im_end|>\n{MARK}user\n  fix it \n\n<|im_end|>\n"
          f"{MARK}assistant\n\n")
_ENCODERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # tokenizer -> its PromptEncoder
_LOCK = threading.Lock()


def encoder_for(tokenizer: Any) -> PromptEncoder:
    """One encoder (and one cache) per tokenizer object: verl's agent-loop worker shares its tokenizer."""
    with _LOCK:
        enc = _ENCODERS.get(tokenizer)
        if enc is None:
            enc = _ENCODERS[tokenizer] = PromptEncoder(tokenizer)
        return enc


def _whole(tokenizer: Any, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False)


def cuts_exactly(tokenizer: Any) -> bool:
    """Whether cutting a text before each MARK gives the whole text's ids."""
    tid = tokenizer.convert_tokens_to_ids(MARK)
    if not isinstance(tid, int) or tid < 0 or tid == tokenizer.unk_token_id:
        return False
    added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    token = added.get(tid)
    # a marker that strips the whitespace before it, matches only as a whole word, or is matched on normalised text
    # would make a cut right before it join or split what the whole text's tokenisation does not
    if token is None or any(getattr(token, flag, False) for flag in ("lstrip", "single_word", "normalized")):
        return False
    if any(MARK in str(t) and str(t) != MARK for t in added.values()):
        return False
    pieces = _pieces(_PROBE)
    return [i for p in pieces for i in _whole(tokenizer, p)] == _whole(tokenizer, _PROBE)


def _pieces(text: str) -> list[str]:
    head, *rest = text.split(MARK)
    return ([head] if head else []) + [MARK + r for r in rest]


class PromptEncoder:
    def __init__(self, tokenizer: Any, max_tokens: int = MAX_TOKENS):
        self.tokenizer = tokenizer
        self.exact = cuts_exactly(tokenizer)
        self.max_tokens = max_tokens
        self.tokens = 0
        self.hits = self.misses = 0
        # tuples: a hit extends the prompt with the cached int objects themselves (an array would make new ones), and
        # the collector stops tracking a tuple of ints after one pass
        self._cache: OrderedDict[str, tuple[int, ...]] = OrderedDict()
        self._lock = threading.Lock()

    def encode(self, text: str) -> list[int]:
        if not self.exact or len(text) < MIN_CHARS:
            return _whole(self.tokenizer, text)
        pieces = _pieces(text)
        with self._lock:
            found = [self._get(p) for p in pieces]
        missing = list(dict.fromkeys(p for p, ids in zip(pieces, found, strict=True) if ids is None))
        fresh = {p: _whole(self.tokenizer, p) for p in missing}
        out: list[int] = []
        with self._lock:
            self.hits += len(pieces) - len(missing)
            self.misses += len(missing)
            for piece, ids in zip(pieces, found, strict=True):
                if ids is None:
                    ids = fresh[piece]
                    self._put(piece, ids)
                out.extend(ids)
        return out

    def _get(self, piece: str) -> tuple[int, ...] | None:
        ids = self._cache.get(piece)
        if ids is not None:
            self._cache.move_to_end(piece)
        return ids

    def _put(self, piece: str, ids: list[int]) -> None:
        if piece in self._cache or len(ids) > self.max_tokens // 4:
            return
        self._cache[piece] = tuple(ids)
        self.tokens += len(ids)
        while self.tokens > self.max_tokens:
            _, old = self._cache.popitem(last=False)
            self.tokens -= len(old)
