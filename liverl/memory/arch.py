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
    layer_types: tuple[str, ...]  # per layer, its mixer: FULL or LINEAR
    heads: int
    kv_heads: int
    head_dim: int
    tied: bool
    qkv_bias: bool = False
    o_bias: bool = False
    qk_norm: bool = False
    attn_gate: bool = False  # Qwen3.5: q_proj also emits an output gate (2 x heads x head_dim)
    intermediate: int = 0  # dense MLP width (0 when every layer is MoE)
    mlp_types: tuple[str, ...] = ()  # per layer, "moe" or "dense" (empty: every layer MoE when experts, else dense)
    experts: int = 0
    top_k: int = 0
    moe_intermediate: int = 0
    shared_intermediate: int = 0
    shared_gate: bool = True  # the shared expert's sigmoid gate (hidden x 1)
    lin_k_heads: int = 0
    lin_v_heads: int = 0
    lin_k_dim: int = 0
    lin_v_dim: int = 0
    conv_kernel: int = 0
    # a multimodal checkpoint's vision tower (verl trains the whole model it loads): vision_tower_tensors
    vision_tensors: tuple[tuple[int, int, int], ...] = ()
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def layers(self) -> int:
        return len(self.layer_types)

    @property
    def moe(self) -> bool:
        return self.experts > 0

    @property
    def mlps(self) -> tuple[str, ...]:
        return self.mlp_types or (("moe" if self.moe else "dense"),) * self.layers

    @property
    def moe_layers(self) -> int:
        return self.mlps.count("moe")

    def kinds(self) -> tuple[tuple[str, str], ...]:
        """Per layer, (mixer, MLP kind)."""
        return tuple(zip(self.layer_types, self.mlps, strict=True))

    @property
    def full_layers(self) -> int:
        return self.layer_types.count(FULL)

    @property
    def linear_layers(self) -> int:
        return self.layer_types.count(LINEAR)

    # ---- parameter counts -------------------------------------------------------------------------
    def attn_params(self) -> int:
        h, q, kv = self.hidden, self.heads * self.head_dim, self.kv_heads * self.head_dim
        gate = 2 if self.attn_gate else 1
        n = h * q * gate + 2 * h * kv + q * h
        if self.qkv_bias:
            n += q * gate + 2 * kv
        if self.o_bias:
            n += h
        if self.qk_norm:
            n += 2 * self.head_dim
        return n

    def linear_attn_params(self) -> int:
        h, kd, vd = self.hidden, self.lin_k_heads * self.lin_k_dim, self.lin_v_heads * self.lin_v_dim
        conv = 2 * kd + vd
        return h * conv + h * vd + 2 * h * self.lin_v_heads + conv * self.conv_kernel \
            + 2 * self.lin_v_heads + self.lin_v_dim + vd * h

    def mlp_params(self, kind: str = "") -> int:
        if (kind or ("moe" if self.moe else "dense")) == "dense":
            return 3 * self.hidden * self.intermediate
        n = self.experts * self.hidden + 3 * self.experts * self.hidden * self.moe_intermediate
        if self.shared_intermediate:
            n += 3 * self.hidden * self.shared_intermediate + (self.hidden if self.shared_gate else 0)
        return n

    def layer_params(self, kind: str, mlp: str = "") -> int:
        mixer = self.attn_params() if kind == FULL else self.linear_attn_params()
        return mixer + self.mlp_params(mlp) + 2 * self.hidden

    def embed_params(self) -> int:
        return self.vocab * self.hidden

    def root_params(self) -> int:
        """What verl's FSDP2 leaves in the root unit: final norm, plus the LM head when it is its own matrix."""
        return self.hidden + (0 if self.tied else self.vocab * self.hidden)

    def total_params(self) -> int:
        layers = sum(self.layer_params(k, m) for k, m in self.kinds())
        return layers + self.embed_params() + self.root_params() + self.vision_params

    @property
    def vision_params(self) -> int:
        return sum(c * d * r for c, d, r in self.vision_tensors)

    def tensors(self) -> tuple[tuple[int, int, int], ...]:
        """Every parameter tensor as (count, dim 0, elements per dim-0 row), following transformers' module shapes
        (models/qwen2, qwen3_moe with its fused experts, qwen3_next, qwen3_5_moe with its vision tower): the host
        model rounds each one (liverl/memory/host.py); tests/test_memory_arch.py compares them with the modules
        built on the meta device, and their sum with total_params."""
        h, q, kv, gate = self.hidden, self.heads * self.head_dim, self.kv_heads * self.head_dim, 1 + self.attn_gate
        out = [(1, self.vocab, h), (1, h, 1)] + ([] if self.tied else [(1, self.vocab, h)])
        for mixer, mlp in self.kinds():
            t = [(2, h, 1)]  # input and post-attention norms
            if mixer == FULL:
                t += [(1, q * gate, h), (2, kv, h), (1, h, q)]
                t += [(1, q * gate, 1), (2, kv, 1)] if self.qkv_bias else []
                t += [(1, h, 1)] if self.o_bias else []
                t += [(2, self.head_dim, 1)] if self.qk_norm else []
            else:
                kd, vd, vh = self.lin_k_heads * self.lin_k_dim, self.lin_v_heads * self.lin_v_dim, self.lin_v_heads
                conv = 2 * kd + vd
                if str(self.extra.get("model_type", "")).startswith("qwen3_next"):  # fused in_proj_qkvz, in_proj_ba
                    t += [(1, conv + vd, h), (1, 2 * vh, h)]
                else:  # Qwen3.5: in_proj_qkv, in_proj_z, in_proj_b, in_proj_a
                    t += [(1, conv, h), (1, vd, h), (2, vh, h)]
                t += [(1, conv, self.conv_kernel), (2, vh, 1), (1, self.lin_v_dim, 1), (1, h, vd)]
            if mlp == "dense":
                t += [(2, self.intermediate, h), (1, h, self.intermediate)]
            else:
                mi = self.moe_intermediate
                t += [(1, self.experts, h), (1, self.experts, 2 * mi * h), (1, self.experts, h * mi)]
                if self.shared_intermediate:
                    si = self.shared_intermediate
                    t += [(2, si, h), (1, h, si)] + ([(1, 1, h)] if self.shared_gate else [])
            out += t
        return (*out, *self.vision_tensors)

    def text_only(self) -> Arch:
        """The language model alone (what benchmarks/memory/measure.py builds from the text config)."""
        return replace(self, vision_tensors=())

    def expert_params(self) -> int:
        return self.moe_layers * 3 * self.experts * self.hidden * self.moe_intermediate

    def largest_tensor_params(self) -> int:
        """The largest single parameter tensor: the embedding (or LM head), or an MoE layer's fused gate-up experts
        tensor (experts x 2 x moe_intermediate x hidden, as transformers 5 stores Qwen3-MoE's), which the weight
        sync gathers whole before splitting it (verl/workers/engine/fsdp/transformer_impl.py:1029-1035)."""
        fused_experts = 2 * self.experts * self.moe_intermediate * self.hidden if self.moe else 0
        return max(self.vocab * self.hidden, fused_experts, self.hidden * max(self.intermediate, 1))

    # ---- depth ------------------------------------------------------------------------------------
    def with_layers(self, layers: int) -> Arch:
        if layers < 1:
            raise ArchError(f"num_layers: must be at least 1 (got: {layers})")
        if layers == self.layers:
            return self
        mlps = self.mlps  # keep the dense-MLP share of an MoE, with at least one MoE layer (dense layers first)
        n_dense = min(layers - 1, round(layers * mlps.count("dense") / len(mlps))) if self.moe else layers
        return replace(self, layer_types=tuple(reduced_layer_types(list(self.layer_types), layers)),
                       mlp_types=tuple(["dense"] * n_dense + ["moe"] * (layers - n_dense)) if self.moe else ())


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


# The spellings of an MoE's routed-expert count: Qwen2-MoE / Qwen3.5-MoE / Qwen3-Next config.json (num_experts),
# transformers >= 5's Qwen3MoeConfig and Mixtral (num_local_experts), DeepSeek-style repos (n_routed_experts).
EXPERT_KEYS = ("num_experts", "num_local_experts", "n_routed_experts")
MOE_MODEL_TYPES = ("moe", "mixtral", "deepseek", "qwen3_next", "olmoe", "dbrx", "jamba", "granitemoe")
# Attention the model counts (full softmax attention with q/k/v/o projections, and Gated DeltaNet); these types
# use another attention (DeepSeek's multi-head latent attention), so their parameters cannot be counted here.
UNCOUNTED_TYPES = ("deepseek_v2", "deepseek_v3", "deepseek_v4", "kimi_k2")


def _looks_moe(cfg: dict, model_type: str) -> str | None:
    """Why a config looks like an MoE (its model type, or an expert key), or None."""
    if any(t in model_type for t in MOE_MODEL_TYPES):
        return f"model_type {model_type}"
    keys = [k for k in cfg if "expert" in k and cfg[k] not in (None, 0, [], False)]
    return f"key {keys[0]}" if keys else None


def _experts(cfg: dict, model_type: str, name: str) -> int:
    found = {k: cfg[k] for k in EXPERT_KEYS if cfg.get(k) is not None}
    if len(set(found.values())) > 1:
        raise ArchError(f"{name}: {' and '.join(found)} disagree (got: {found}); keep one expert count")
    experts = int(next(iter(found.values()), 0) or 0)
    why = _looks_moe(cfg, model_type)
    if why and experts <= 0:
        raise ArchError(f"{'/'.join(EXPERT_KEYS)}: the config looks like an MoE ({why}) but names no routed-expert "
                        f"count in {name} (got: {found or 'none of them'}); add num_experts to config.json, or use a "
                        "config written by the model's own transformers class (reading it as dense would under-predict "
                        "memory)")
    return experts


def mlp_layout(cfg: dict, n: int, experts: int) -> list[str]:
    """Which layers are MoE ("moe") and which dense ("dense"), in the spellings transformers uses:
    Qwen2/3-MoE and Qwen3-Next: not in `mlp_only_layers` and (i + 1) % `decoder_sparse_step` == 0
    (transformers models/qwen3_moe/modeling_qwen3_moe.py:314-315); DeepSeek-style: i >= `first_k_dense_replace`
    and i % `moe_layer_freq` == 0."""
    if not experts:
        return ["dense"] * n
    only = set(cfg.get("mlp_only_layers") or [])
    step = int(cfg.get("decoder_sparse_step") or 1)
    first_k = int(cfg.get("first_k_dense_replace") or 0)
    freq = int(cfg.get("moe_layer_freq") or 1)
    return ["moe" if i not in only and (i + 1) % step == 0 and i >= first_k and i % freq == 0 else "dense"
            for i in range(n)]


def _shared(cfg: dict, moe_inter: int) -> tuple[int, bool]:
    """(shared-expert MLP width, has a sigmoid gate): Qwen2-MoE/Qwen3.5-MoE/Qwen3-Next's gated shared expert
    (shared_expert_intermediate_size, shared_expert_gate), DeepSeek-style n_shared_experts x moe width (no gate)."""
    if cfg.get("shared_expert_intermediate_size"):
        return int(cfg["shared_expert_intermediate_size"]), True
    return int(cfg.get("n_shared_experts") or 0) * moe_inter, False


def vision_tower_tensors(raw: dict) -> tuple[tuple[int, int, int], ...]:
    """A Qwen3-VL-style vision tower's parameter tensors as (count, dim 0, elements per dim-0 row) (`vision_config`
    with depth, hidden_size, intermediate_size, out_hidden_size: Qwen3.5's), module by module as transformers builds
    it (models/qwen3_5_moe/modeling_qwen3_5_moe.py Qwen3_5MoeVisionModel: patch Conv3d, position embedding, blocks of
    two LayerNorms + qkv/proj attention + MLP, the patch merger); () for a text-only config."""
    v = raw.get("vision_config") if "text_config" in raw else None
    if not isinstance(v, dict) or not all(k in v for k in ("depth", "hidden_size", "intermediate_size")):
        return ()
    h, i, depth = int(v["hidden_size"]), int(v["intermediate_size"]), int(v["depth"])
    patch, tp, ch = int(v.get("patch_size", 16)), int(v.get("temporal_patch_size", 2)), int(v.get("in_channels", 3))
    merged = h * int(v.get("spatial_merge_size", 2)) ** 2
    out = int(v.get("out_hidden_size", h))
    block = ((4, h, 1), (1, 3 * h, h), (1, 3 * h, 1), (1, h, h), (1, h, 1), (1, i, h), (1, i, 1), (1, h, i), (1, h, 1))
    return ((1, h, ch * tp * patch * patch), (1, h, 1), (1, int(v.get("num_position_embeddings", 2304)), h),
            *((depth * c, d, r) for c, d, r in block),
            (2, h, 1), (1, merged, merged), (1, merged, 1), (1, out, merged), (1, out, 1))


def from_config(raw: dict, name: str = "config.json") -> Arch:
    cfg = text_config(raw)
    model_type = str(cfg.get("model_type", ""))
    if model_type in UNCOUNTED_TYPES:
        raise ArchError(f"model_type: {model_type} uses multi-head latent attention, which the memory model does not "
                        f"count (got: {model_type} in {name}); python -m liverl.memory supports Qwen2/Qwen3/Qwen3-MoE/"
                        "Qwen3.5/Qwen3-Next/Llama/Mistral/Mixtral shapes")
    n = int(_need(cfg, "num_hidden_layers", name))
    hidden, heads = int(_need(cfg, "hidden_size", name)), int(_need(cfg, "num_attention_heads", name))
    types = cfg.get("layer_types") or [FULL] * n
    types = [FULL if t in (FULL, "attention", "sliding_attention") else t for t in types][:n]
    if any(t not in (FULL, LINEAR) for t in types):
        raise ArchError(f"{name}: layer_types has an unknown kind (got: {sorted(set(types))})")
    experts = _experts(cfg, model_type, name)
    # Mixtral's experts are intermediate_size wide (transformers models/mixtral/modeling_mixtral.py:62-75)
    moe_inter = int(cfg.get("moe_intermediate_size") or (cfg.get("intermediate_size") if model_type == "mixtral"
                                                        else 0) or 0)
    if experts and not moe_inter:
        raise ArchError(f"moe_intermediate_size: {name} has {experts} experts but no expert MLP width (got: "
                        f"{cfg.get('moe_intermediate_size')}); add moe_intermediate_size to config.json")
    mlp = mlp_layout(cfg, n, experts)
    if experts and "moe" not in mlp:
        raise ArchError(f"decoder_sparse_step/mlp_only_layers/first_k_dense_replace: {name} has {experts} experts "
                        f"but places them on no layer (got: {n} layers); check the MoE layer placement keys")
    shared, shared_gate = _shared(cfg, moe_inter) if experts else (0, False)
    bias = bool(cfg.get("attention_bias", False))
    return Arch(
        name=name, vocab=int(_need(cfg, "vocab_size", name)), hidden=hidden, layer_types=tuple(types),
        heads=heads, kv_heads=int(cfg.get("num_key_value_heads") or heads),
        head_dim=int(cfg.get("head_dim") or hidden // heads), tied=bool(cfg.get("tie_word_embeddings", False)),
        # Qwen2 always biases q/k/v (transformers models/qwen2/modeling_qwen2.py); Qwen2-MoE reads qkv_bias
        qkv_bias=bool(cfg.get("qkv_bias", model_type == "qwen2")) or bias, o_bias=bias,
        qk_norm=model_type.startswith("qwen3"),
        attn_gate=bool(cfg.get("attn_output_gate", model_type.startswith(("qwen3_5", "qwen3_next")))),
        intermediate=int(_need(cfg, "intermediate_size", name)) if "dense" in mlp else 0,
        mlp_types=tuple(mlp), experts=experts, top_k=int(cfg.get("num_experts_per_tok") or 0) if experts else 0,
        moe_intermediate=moe_inter if experts else 0, shared_intermediate=shared, shared_gate=shared_gate,
        lin_k_heads=int(cfg.get("linear_num_key_heads") or 0), lin_v_heads=int(cfg.get("linear_num_value_heads") or 0),
        lin_k_dim=int(cfg.get("linear_key_head_dim") or 0), lin_v_dim=int(cfg.get("linear_value_head_dim") or 0),
        conv_kernel=int(cfg.get("linear_conv_kernel_dim") or 0), vision_tensors=vision_tower_tensors(raw),
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
