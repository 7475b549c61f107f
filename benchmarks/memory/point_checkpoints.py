"""The memory points' checkpoints: a supported architecture at its real width (hidden, MLP, every expert) and its
real vocabulary, with LAYERS layers and random bf16 weights, and a tokenizer trained on the tiny workload's text and
padded with filler tokens to that vocabulary (so vLLM can detokenize every id a random policy samples).
verl_points.py builds them; `python point_checkpoints.py _weights DIR` writes the weights in a process of its own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ARCHS = ROOT / "liverl" / "memory" / "archs"
LAYERS = 2
# shape: (bundled config, model group, changes to its text config); dense7b is Qwen2.5-7B's width (untied)
SHAPES = {
    "dense7b": ("qwen25_0p5b", "qwen25_0p5b", {"hidden_size": 3584, "intermediate_size": 18944,
                                               "num_attention_heads": 28, "num_key_value_heads": 4,
                                               "tie_word_embeddings": False}),
    "moe30b": ("qwen3_30b_a3b", "qwen3_30b_a3b", {}),
    "moe35b": ("qwen35_35b_a3b", "qwen35", {"mtp_num_hidden_layers": 0}),
}


def text_config(shape: str, vocab: int) -> dict:
    arch, _, changes = SHAPES[shape]
    raw = json.loads((ARCHS / f"{arch}.json").read_text())
    text = raw.get("text_config", raw)
    text.update(changes)
    n = text["num_hidden_layers"]
    if "layer_types" in text:  # keep the full-attention share, one full layer at least (liverl.memory.arch)
        full = max(1, round(LAYERS * text["layer_types"].count("full_attention") / n))
        text["layer_types"] = ["linear_attention"] * (LAYERS - full) + ["full_attention"] * full
    text["num_hidden_layers"] = LAYERS
    text["vocab_size"] = vocab
    if "tie_word_embeddings" in changes:
        raw["tie_word_embeddings"] = changes["tie_word_embeddings"]
    return raw


# a multimodal config's placeholder ids (Qwen3.5: 248053/248054/248056/248057): vLLM's Qwen3-VL processor matches
# these strings in the tokenizer against these ids in the config (vllm/model_executor/models/qwen3_vl.py, v0.24.0)
VISION_TOKENS = {"vision_start_token_id": "<|vision_start|>", "vision_end_token_id": "<|vision_end|>",
                 "image_token_id": "<|image_pad|>", "video_token_id": "<|video_pad|>"}


def tokenizer(out: Path, vocab: int, named: dict[int, str] | None = None) -> int:
    """The tiny workload's tokenizer padded with filler tokens to `vocab` ids, `named` ({id: token}) special tokens in
    place of the fillers at those ids; returns the eos id."""
    from tokenizers import AddedToken

    from liverl.tiny.generate import SPECIALS, save_tokenizer, train_tokenizer

    tok = train_tokenizer(512)
    base, named = tok.get_vocab_size(), named or {}
    tok.add_tokens([AddedToken(named[i], special=True, normalized=False) if i in named else f"<|f{i - base}|>"
                    for i in range(base, vocab)])
    assert tok.get_vocab_size() == vocab, (tok.get_vocab_size(), vocab)
    assert all(tok.token_to_id(t) == i for i, t in named.items()), named
    save_tokenizer(tok, out)
    return SPECIALS.index("<|im_end|>")


def processors(out: Path, vision: dict) -> None:
    """A Qwen3-VL-family checkpoint's image and video processors (preprocessor_config.json,
    video_preprocessor_config.json: vLLM loads both at start for a *ForConditionalGeneration), at the vision tower's
    patching and a released Qwen3.5's pixel bounds and normalization."""
    from transformers import Qwen2VLImageProcessor  # the PIL backend without torchvision; the same saved type
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor  # not the lazy stub

    patching = {"patch_size": vision["patch_size"], "temporal_patch_size": vision["temporal_patch_size"],
                "merge_size": vision["spatial_merge_size"], "image_mean": [0.5] * 3, "image_std": [0.5] * 3}
    Qwen2VLImageProcessor(size={"shortest_edge": 65536, "longest_edge": 16777216}, **patching).save_pretrained(out)
    Qwen3VLVideoProcessor(size={"shortest_edge": 4096, "longest_edge": 25165824}, **patching).save_pretrained(out)


def checkpoint(shape: str, out: Path, weights: bool) -> Path:
    """OUT/config.json (+ random bf16 weights when `weights`) and the padded tokenizer; reused when there."""
    arch = json.loads((ARCHS / f"{SHAPES[shape][0]}.json").read_text())
    done = "preprocessor_config.json" if "vision_config" in arch else "config.json"
    if (out / done).is_file() and (not weights or list(out.glob("*.safetensors"))):
        return out
    out.mkdir(parents=True, exist_ok=True)
    vocab = arch.get("text_config", arch)["vocab_size"]
    eos = tokenizer(out, vocab, {arch[k]: t for k, t in VISION_TOKENS.items() if k in arch})
    raw = text_config(shape, vocab)
    for cfg in (raw, raw.get("text_config") or {}):
        cfg.update({"eos_token_id": eos, "pad_token_id": 0, "bos_token_id": None})
    (out / "config.json").write_text(json.dumps(raw, indent=1))
    if "vision_config" in raw:
        processors(out, raw["vision_config"])
    if weights:  # in a subprocess: its CUDA context is gone before the runs start
        subprocess.run([sys.executable, __file__, "_weights", str(out)], check=True)
    return out


def _weights(out: Path) -> None:
    import torch
    import transformers

    cfg = transformers.AutoConfig.from_pretrained(out)
    cls = getattr(transformers, cfg.architectures[0])
    torch.manual_seed(0)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = cls._from_config(cfg, dtype=torch.bfloat16)
    model.save_pretrained(out, safe_serialization=True)
    counts = {"params": sum(p.numel() for p in model.parameters())}
    visual = getattr(getattr(model, "model", model), "visual", None)  # Qwen3.5's vision tower: not in the model
    counts["params_vision"] = sum(p.numel() for p in visual.parameters()) if visual is not None else 0
    (out / "params.json").write_text(json.dumps(counts))
    transformers.GenerationConfig(eos_token_id=cfg.eos_token_id, pad_token_id=0).save_pretrained(out)


if __name__ == "__main__":
    if sys.argv[1:2] != ["_weights"] or len(sys.argv) != 3:
        sys.exit("usage: point_checkpoints.py _weights DIR")
    _weights(Path(sys.argv[2]))
