"""The memory model's architecture reader against config.json files written by transformers' own config classes
(`to_json_file`) for each supported architecture: every expert-count spelling, MoE layer placement, shared experts
and `text_config` nesting. The expected parameter count is the real transformers module built on the meta device
(no weights allocated), never a number computed here. A config that looks MoE whose experts cannot be read is a
refusal naming the key, never a dense reading."""

from __future__ import annotations

import collections
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import transformers as T

from liverl.memory import arch

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 4, "num_attention_heads": 4,
         "num_key_value_heads": 2, "vocab_size": 128, "head_dim": 16}
MOE = {"moe_intermediate_size": 32, "num_experts_per_tok": 2}
LIN = {"linear_num_key_heads": 2, "linear_num_value_heads": 4, "linear_key_head_dim": 16, "linear_value_head_dim": 16,
       "layer_types": ["linear_attention", "linear_attention", "linear_attention", "full_attention"]}
SHARED = {"shared_expert_intermediate_size": 48}

# (config class, its keyword arguments, the causal-LM class, the MoE layout transformers builds)
CASES = {
    "qwen2": (T.Qwen2Config, {}, T.Qwen2ForCausalLM, "dddd"),
    "qwen2-tied": (T.Qwen2Config, {"tie_word_embeddings": True}, T.Qwen2ForCausalLM, "dddd"),
    "qwen3": (T.Qwen3Config, {}, T.Qwen3ForCausalLM, "dddd"),
    # transformers >= 5 writes Qwen3-MoE's expert count as num_local_experts (the held-out check of issue 20)
    "qwen3_moe": (T.Qwen3MoeConfig, {**MOE, "num_experts": 8}, T.Qwen3MoeForCausalLM, "mmmm"),
    "qwen3_moe-placement": (T.Qwen3MoeConfig, {**MOE, "num_experts": 8, "decoder_sparse_step": 2,
                                               "mlp_only_layers": [3]}, T.Qwen3MoeForCausalLM, "dmdd"),
    "qwen2_moe-shared": (T.Qwen2MoeConfig, {**MOE, **SHARED, "num_experts": 8}, T.Qwen2MoeForCausalLM, "mmmm"),
    "qwen3_next": (T.Qwen3NextConfig, {**MOE, **LIN, **SHARED, "num_experts": 8}, T.Qwen3NextForCausalLM, "mmmm"),
    "llama": (T.LlamaConfig, {}, T.LlamaForCausalLM, "dddd"),
    "mistral": (T.MistralConfig, {}, T.MistralForCausalLM, "dddd"),
    "mixtral": (T.MixtralConfig, {"num_local_experts": 4, "num_experts_per_tok": 2}, T.MixtralForCausalLM, "mmmm"),
}
LAYOUT = {"d": "dense", "m": "moe"}


def _meta_params(model_cls, config) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in model_cls(config).parameters())


def _written(config, tmp_path: Path) -> dict:
    config.to_json_file(tmp_path / "config.json")
    return json.loads((tmp_path / "config.json").read_text())


@pytest.mark.parametrize("case", CASES)
def test_transformers_written_config_counts_the_real_module(case, tmp_path):
    cls, kw, model_cls, layout = CASES[case]
    config = cls(**{**SMALL, **kw})
    _written(config, tmp_path)
    a = arch.load(tmp_path)
    assert a.total_params() == _meta_params(model_cls, config)
    assert a.mlps == tuple(LAYOUT[c] for c in layout)


def test_qwen3_moe_expert_count_under_num_local_experts(tmp_path):
    raw = _written(T.Qwen3MoeConfig(**{**SMALL, **MOE, "num_experts": 8}), tmp_path)
    assert raw.get("num_local_experts") == 8 and "num_experts" not in raw  # the spelling transformers writes
    a = arch.load(tmp_path)
    assert a.experts == 8 and a.moe and a.intermediate == 0  # read as an MoE, not as a 96-wide dense MLP


@pytest.mark.parametrize(("cls", "model_cls", "extra"), [
    (T.Qwen3_5MoeConfig, T.Qwen3_5MoeForCausalLM, {**MOE, **SHARED, "num_experts": 8}),
    (T.Qwen3_5Config, T.Qwen3_5ForCausalLM, {}),
], ids=["qwen3_5_moe", "qwen3_5"])
def test_text_config_nesting(cls, model_cls, extra, tmp_path):
    config = cls(text_config={**SMALL, **LIN, **extra})
    raw = _written(config, tmp_path)
    assert "text_config" in raw and "hidden_size" not in raw
    a = arch.load(tmp_path)
    assert a.text_only().total_params() == _meta_params(model_cls, config.text_config)
    assert a.linear_layers == 3 and a.moe == bool(extra) and a.vision_params > 0  # the default vision tower


def test_qwen35_vision_tower_counted_as_transformers_builds_it():
    from transformers.models.qwen3_5_moe.modeling_qwen3_5_moe import Qwen3_5MoeVisionModel

    raw = json.loads(arch.bundled("qwen35_35b_a3b").read_text())
    config = T.Qwen3_5MoeConfig(**{k: v for k, v in raw.items() if k != "architectures"})
    a = arch.from_config(raw)
    assert a.vision_params == _meta_params(Qwen3_5MoeVisionModel, config.vision_config) > 0
    assert a.total_params() - a.text_only().total_params() == a.vision_params
    assert arch.from_config({**SMALL, "model_type": "qwen3"}).vision_params == 0


def test_reduced_depth_keeps_an_moe_layer_and_the_dense_share():
    a = arch.from_config({**SMALL, "model_type": "qwen3_moe", **MOE, "num_local_experts": 8, "num_hidden_layers": 8,
                          "mlp_only_layers": [0, 1, 2, 3]})
    assert a.mlps.count("dense") == 4
    assert a.with_layers(2).mlps == ("dense", "moe") and a.with_layers(1).mlps == ("moe",)


@pytest.mark.parametrize(("raw", "needle"), [
    ({"model_type": "qwen3_moe", **MOE}, "num_experts/num_local_experts/n_routed_experts: the config looks like an "
                                         "MoE (model_type qwen3_moe)"),
    ({"model_type": "llama", "num_experts_per_tok": 2}, "(key num_experts_per_tok)"),
    ({"model_type": "qwen3_moe", "num_experts": 8, "num_local_experts": 16, **MOE}, "disagree"),
    ({"model_type": "qwen3_moe", "num_experts": 8, "num_experts_per_tok": 2}, "moe_intermediate_size:"),
    ({"model_type": "qwen3_moe", "num_experts": 8, **MOE, "decoder_sparse_step": 8},
     "places them on no layer"),
    ({"model_type": "deepseek_v3", "n_routed_experts": 8, **MOE}, "model_type: deepseek_v3 uses multi-head latent"),
], ids=["moe-type-no-count", "expert-key-no-count", "two-counts", "no-expert-width", "no-moe-layer", "mla"])
def test_moe_it_cannot_read_is_an_error_naming_the_key(raw, needle):
    with pytest.raises(arch.ArchError) as err:
        arch.from_config({**SMALL, **raw}, "cfg.json")
    assert needle in str(err.value)


def test_deepseek_written_config_is_refused_not_read_dense(tmp_path):
    _written(T.DeepseekV3Config(**{**SMALL, **MOE, "n_routed_experts": 8}), tmp_path)
    proc = subprocess.run([sys.executable, "-m", "liverl.memory", "step", "--hf-config", str(tmp_path), "--tokens",
                           "1024"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2 and "model_type: deepseek_v3" in proc.stderr and "Traceback" not in proc.stderr


def _meta_tensors(model_cls, config) -> collections.Counter:
    with torch.device("meta"):
        return collections.Counter((p.shape[0], p.numel() // p.shape[0]) for p in model_cls(config).parameters())


def _host_tensors(a) -> collections.Counter:
    out: collections.Counter = collections.Counter()
    for count, dim0, row in a.tensors():
        out[(dim0, row)] += count
    return out


@pytest.mark.parametrize("case", CASES)
def test_host_tensors_are_the_real_modules_tensors(case, tmp_path):
    # the host model pins each offloaded tensor in the next power of two of its shard (liverl/memory/host.py), so
    # each tensor's shape counts, not only the total
    cls, kw, model_cls, _ = CASES[case]
    config = cls(**{**SMALL, **kw})
    _written(config, tmp_path)
    assert _host_tensors(arch.load(tmp_path)) == _meta_tensors(model_cls, config)


def test_host_tensors_of_qwen35_with_its_vision_tower():
    raw = json.loads(arch.bundled("qwen35_35b_a3b").read_text())
    text = {**raw["text_config"], "num_hidden_layers": 4, "layer_types": raw["text_config"]["layer_types"][:4]}
    raw = {**raw, "text_config": text}
    config = T.Qwen3_5MoeConfig(**{k: v for k, v in raw.items() if k != "architectures"})
    assert _host_tensors(arch.from_config(raw)) == _meta_tensors(T.Qwen3_5MoeForConditionalGeneration, config)
