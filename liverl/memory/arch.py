"""Architecture facts the memory model needs, read from a Hugging Face `config.json` (the text part of a
multimodal config). Pure Python: no torch, no transformers.

Parameter counts follow the module shapes of transformers' Qwen2 / Qwen3-MoE / Qwen3.5-MoE classes
(`models/qwen2`, `models/qwen3_moe`, `models/qwen3_5_moe` in transformers 5.10-5.17); the measured
counts of benchmarks/memory/results_h200.json are reproduced exactly by tests/test_memory.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

ARCH_DIR = Path(__file__).resolve().parent / "archs"
FULL, LINEAR = "full_attention", "linear_attention"


class ArchError(ValueError):
    """A config.json the memory model cannot read (missing key, unknown layout)."""


@dataclass(frozen=True)
class Arch:
    name: str
    vocab: int
    hidden: int
    layer_types: tuple[str, ...]
    heads: int
    kv_heads: int
    head_dim: int
    tied: bool
    qkv_bias: bool = False
    qk_norm: bool = False
    attn_gate: bool = False  # Qwen3.5: q_proj also emits an output gate (2 x heads x head_dim)
    intermediate: int = 0  # dense MLP width (0 when every layer is MoE)
    experts: int = 0
    top_k: int = 0
    moe_intermediate: int = 0
    shared_intermediate: int = 0
    lin_k_heads: int = 0
    lin_v_heads: int = 0
    lin_k_dim: int = 0
    lin_v_dim: int = 0
    conv_kernel: int = 0
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def layers(self) -> int:
        return len(self.layer_types)

    @property
    def moe(self) -> bool:
        return self.experts > 0

    @property
    def full_layers(self) -> int:
        return self.layer_types.count(FULL)

    @property
    def linear_layers(self) -> int:
        return self.layer_types.count(LINEAR)

    # ---- parameter counts -------------------------------------------------------------------------
    def attn_params(self) -> int:
        h, q, kv = self.hidden, self.heads * self.head_dim, self.kv_heads * self.head_dim
        n = h * q * (2 if self.attn_gate else 1) + 2 * h * kv + q * h
        if self.qkv_bias:
            n += q + 2 * kv
        if self.qk_norm:
            n += 2 * self.head_dim
        return n

    def linear_attn_params(self) -> int:
        h, kd, vd = self.hidden, self.lin_k_heads * self.lin_k_dim, self.lin_v_heads * self.lin_v_dim
        conv = 2 * kd + vd
        return h * conv + h * vd + 2 * h * self.lin_v_heads + conv * self.conv_kernel \
            + 2 * self.lin_v_heads + self.lin_v_dim + vd * h

    def mlp_params(self) -> int:
        if not self.moe:
            return 3 * self.hidden * self.intermediate
        n = self.experts * self.hidden + 3 * self.experts * self.hidden * self.moe_intermediate
        if self.shared_intermediate:
            n += 3 * self.hidden * self.shared_intermediate + self.hidden
        return n

    def layer_params(self, kind: str) -> int:
        mixer = self.attn_params() if kind == FULL else self.linear_attn_params()
        return mixer + self.mlp_params() + 2 * self.hidden

    def embed_params(self) -> int:
        return self.vocab * self.hidden

    def root_params(self) -> int:
        """What verl's FSDP2 leaves in the root unit: final norm, plus the LM head when it is its own matrix."""
        return self.hidden + (0 if self.tied else self.vocab * self.hidden)

    def total_params(self) -> int:
        layers = sum(self.layer_params(k) for k in self.layer_types)
        return layers + self.embed_params() + self.root_params()

    def expert_params(self) -> int:
        return self.layers * 3 * self.experts * self.hidden * self.moe_intermediate

    # ---- depth ------------------------------------------------------------------------------------
    def with_layers(self, layers: int) -> Arch:
        if layers < 1:
            raise ArchError(f"num_layers: must be at least 1 (got: {layers})")
        return replace(self, layer_types=tuple(reduced_layer_types(list(self.layer_types), layers)))


def reduced_layer_types(types: list[str], layers: int) -> list[str]:
    """Layer mix at another depth: keep the full-attention share, with at least one full layer when the model has
    any (benchmarks/memory/measure.py builds its reduced-depth models with the same rule)."""
    if layers == len(types):
        return list(types)
    frac = types.count(FULL) / len(types)
    n_full = max(1, round(layers * frac)) if frac else 0
    return [LINEAR] * (layers - n_full) + [FULL] * n_full


def _need(cfg: dict, key: str, source: str):
    if key not in cfg or cfg[key] is None:
        raise ArchError(f"{source}: config has no '{key}' (got keys: {', '.join(sorted(cfg)[:12])}...)")
    return cfg[key]


def text_config(raw: dict) -> dict:
    """The language-model part of a config (multimodal configs keep it under `text_config`)."""
    text = dict(raw.get("text_config") or raw)
    if "tie_word_embeddings" not in text and "tie_word_embeddings" in raw:
        text["tie_word_embeddings"] = raw["tie_word_embeddings"]
    return text


def from_config(raw: dict, name: str = "config.json") -> Arch:
    cfg = text_config(raw)
    n = int(_need(cfg, "num_hidden_layers", name))
    hidden, heads = int(_need(cfg, "hidden_size", name)), int(_need(cfg, "num_attention_heads", name))
    types = cfg.get("layer_types") or [FULL] * n
    types = [FULL if t in (FULL, "attention", "sliding_attention") else t for t in types][:n]
    if any(t not in (FULL, LINEAR) for t in types):
        raise ArchError(f"{name}: layer_types has an unknown kind (got: {sorted(set(types))})")
    model_type = str(cfg.get("model_type", ""))
    experts = int(cfg.get("num_experts") or cfg.get("n_routed_experts") or 0)
    return Arch(
        name=name, vocab=int(_need(cfg, "vocab_size", name)), hidden=hidden, layer_types=tuple(types),
        heads=heads, kv_heads=int(cfg.get("num_key_value_heads") or heads),
        head_dim=int(cfg.get("head_dim") or hidden // heads), tied=bool(cfg.get("tie_word_embeddings", False)),
        qkv_bias=model_type.startswith("qwen2"), qk_norm=model_type.startswith("qwen3"),
        attn_gate=bool(cfg.get("attn_output_gate", model_type.startswith("qwen3_5"))),
        intermediate=0 if experts else int(_need(cfg, "intermediate_size", name)),
        experts=experts, top_k=int(cfg.get("num_experts_per_tok") or 0),
        moe_intermediate=int(cfg.get("moe_intermediate_size") or 0),
        shared_intermediate=int(cfg.get("shared_expert_intermediate_size") or 0),
        lin_k_heads=int(cfg.get("linear_num_key_heads") or 0), lin_v_heads=int(cfg.get("linear_num_value_heads") or 0),
        lin_k_dim=int(cfg.get("linear_key_head_dim") or 0), lin_v_dim=int(cfg.get("linear_value_head_dim") or 0),
        conv_kernel=int(cfg.get("linear_conv_kernel_dim") or 0),
        extra={"model_type": model_type, "max_position_embeddings": cfg.get("max_position_embeddings")},
    )


def load(path: str | Path) -> Arch:
    p = Path(path)
    if p.is_dir():
        p = p / "config.json"
    try:
        raw = json.loads(p.read_text())
    except FileNotFoundError as exc:
        raise ArchError(f"hf-config: no such file (got: {p})") from exc
    except json.JSONDecodeError as exc:
        raise ArchError(f"hf-config: not valid JSON: {exc.msg} at line {exc.lineno} (got: {p})") from exc
    if not isinstance(raw, dict):
        raise ArchError(f"hf-config: expected a JSON object (got: {type(raw).__name__} in {p})")
    return from_config(raw, str(p))


def bundled(name: str) -> Path:
    """The config.json shipped for a model group (liverl/memory/archs/<name>.json)."""
    return ARCH_DIR / f"{name}.json"
