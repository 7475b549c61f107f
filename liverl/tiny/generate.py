"""`python -m liverl.tiny.generate OUT_DIR`: the tiny smoke workload, built offline.

OUT_DIR/model: a Qwen2 (Qwen2ForCausalLM) checkpoint with random weights and a few layers, and a byte-level BPE
tokenizer trained here with `tokenizers`, saved with a ChatML chat template (what verl's RLHFDataset and the
vLLM server apply). OUT_DIR/data/{train,val}.parquet: single-turn "repeat the word" prompts in verl's dataset
format (prompt messages, data_source, reward_model.ground_truth), scored by liverl.tiny.reward.

Runs on CPU (the tests build it at small sizes) and on a GPU host (no download: everything is generated).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import pandas as pd
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

DATA_SOURCE = "liverl_tiny_copy"
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
WORDS = (
    "apple", "river", "stone", "cloud", "green", "seven", "table", "light", "north", "paper", "horse",
    "music", "bread", "water", "tiger", "candle", "silver", "forest", "orange", "window", "garden", "rocket",
    "planet", "winter", "summer", "yellow", "purple", "island", "bridge", "castle",
)


def prompt_text(word: str) -> str:
    return f"Repeat this word once and stop: {word}"


def train_tokenizer(vocab_size: int, extra: list[str] | None = None) -> Tokenizer:
    """A byte-level BPE tokenizer trained on the task's own text (so prompts are short and words are tokens);
    `extra`: more text (the agentic transcripts, liverl.tiny.transcripts.corpus)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    corpus = [prompt_text(w) for w in WORDS] + list(WORDS) + ["user assistant system", "Repeat this word once and stop"]
    tok.train_from_iterator((corpus + list(extra or [])) * 20, trainer=trainer)
    return tok


def save_tokenizer(tok: Tokenizer, out: Path, chat_template: str = CHAT_TEMPLATE) -> object:
    from transformers import PreTrainedTokenizerFast

    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", chat_template=chat_template
    )
    hf.save_pretrained(out)
    return hf


def save_model(out: Path, vocab: int, layers: int, hidden: int, heads: int, seed: int, tied: bool = True,
               max_positions: int = 4096) -> None:
    """Random weights (std 0.02) in Qwen2's real architecture; bf16 safetensors. `tied=False` gives the LM head its
    own matrix (tie_word_embeddings false, as Qwen2.5-7B and the MoE models): verl's FSDP2 then wraps lm_head as its
    own unit (verl/utils/fsdp_utils.py:558-559), the case liverl/recipe/fused_kernels.py decides for."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    eos, pad = SPECIALS.index("<|im_end|>"), SPECIALS.index("<|endoftext|>")
    config = Qwen2Config(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=max(1, heads // 2),
        max_position_embeddings=max_positions,
        tie_word_embeddings=tied,
        eos_token_id=eos,
        pad_token_id=pad,
        bos_token_id=None,
    )
    model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(out, safe_serialization=True)
    GenerationConfig(eos_token_id=eos, pad_token_id=pad).save_pretrained(out)


def dataset(n: int, split: str, seed: int) -> pd.DataFrame:
    rng = random.Random(f"{seed}-{split}")
    rows = []
    for i in range(n):
        word = rng.choice(WORDS)
        rows.append(
            {
                "data_source": DATA_SOURCE,
                "prompt": [{"role": "user", "content": prompt_text(word)}],
                "ability": "copy",
                "reward_model": {"style": "rule", "ground_truth": word},
                "extra_info": {"split": split, "index": i},
            }
        )
    return pd.DataFrame(rows)


def generate(out: Path, layers: int = 2, hidden: int = 256, heads: int = 4, vocab: int = 512,
             train: int = 256, val: int = 32, seed: int = 0, tied: bool = True,
             agentic: bool = False, max_positions: int = 4096) -> dict[str, str]:
    """Write OUT/model and OUT/data; returns the paths (also written to OUT/tiny.json). `agentic`: the tokenizer
    also learns the toy agentic transcripts and renders tools and hermes tool calls (liverl.tiny.transcripts)."""
    model_dir, data_dir = out / "model", out / "data"
    model_dir.mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    template = CHAT_TEMPLATE
    extra: list[str] = []
    if agentic:
        from liverl.tiny import transcripts

        template, extra = transcripts.AGENT_CHAT_TEMPLATE, transcripts.corpus()
    tok = train_tokenizer(vocab, extra)
    save_tokenizer(tok, model_dir, template)
    # exactly the tokenizer's ids. With 448 rows (425 rounded up to a multiple of 64) every step on the GPU host showed
    # a rollout-vs-training KL of ~0.06, close to ln(448/425) = 0.053: what one side normalising over the tokenizer's
    # ids only would give when random weights put real mass on the padded rows (likely; not re-run on a GPU yet)
    save_model(model_dir, tok.get_vocab_size(), layers, hidden, heads, seed, tied, max_positions)
    paths = {"model": str(model_dir), "train": str(data_dir / "train.parquet"), "val": str(data_dir / "val.parquet")}
    dataset(train, "train", seed).to_parquet(paths["train"])
    dataset(val, "val", seed).to_parquet(paths["val"])
    (out / "tiny.json").write_text(json.dumps(paths, indent=2) + "\n")
    return paths


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m liverl.tiny.generate", description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path, help="output folder (model/ and data/ are written under it)")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--vocab", type=int, default=512)
    p.add_argument("--train", type=int, default=256, help="training prompts")
    p.add_argument("--val", type=int, default=32, help="validation prompts")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--untied", action="store_true", help="an LM head of its own (tie_word_embeddings false)")
    p.add_argument("--agentic", action="store_true",
                   help="a tokenizer and chat template for the toy agentic tasks (tools, hermes tool calls)")
    a = p.parse_args(argv)
    paths = generate(a.out, a.layers, a.hidden, a.heads, a.vocab, a.train, a.val, a.seed, tied=not a.untied,
                     agentic=a.agentic)
    print(json.dumps(paths))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
