"""engine=fsdp's `use_fused_kernels: auto`: verl's fused log-prob path for tied embeddings, off for untied ones
(FSDP2 wraps lm_head apart and the fused forward reads its shard: verl/utils/fsdp_utils.py:558-559,
verl/models/transformers/dense_common.py:123), the memory model following the path taken, and rule
fsdp-fused-untied for an explicit `true` on an untied model. Real Hydra composition and verl's own config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import transformers as T
from omegaconf import OmegaConf

from liverl.errors import ConfigError
from liverl.guardrails import memory_inputs
from liverl.memory import plan
from liverl.recipe.build import build
from liverl.recipe.compose import compose_liverl
from liverl.recipe.fused_kernels import decide

FUSED = "actor_rollout_ref.model.use_fused_kernels"


def _built(*overrides: str, structure_only: bool = True):
    cfg = compose_liverl(list(overrides))
    return cfg, build(cfg, structure_only=structure_only)


def test_decision_table():
    assert decide("fsdp2", True)[0] is True
    assert decide("fsdp2", False)[0] is False and "untied embeddings" in decide("fsdp2", False)[1]
    assert decide("fsdp2", None)[0] is False  # not known to be tied: the path that runs on every model
    assert decide("fsdp", False)[0] is True  # FSDP1 does not wrap lm_head apart (fsdp_utils.get_fsdp_wrap_policy)


def test_tied_model_keeps_the_fused_path():
    _, b = _built("model=qwen25_0p5b", "engine=fsdp")  # Qwen2.5-0.5B ties its embeddings
    assert OmegaConf.select(b.verl, FUSED) is True
    assert memory_inputs.logits_path(b.verl) == {"logits": "fp32", "lm_head_chunk": 512, "logprob_entropy": "fused"}
    assert any(n.startswith("fused log-prob kernels: on") for n in b.notes)


@pytest.mark.parametrize("model", ["qwen3_30b_a3b", "qwen35"])
def test_untied_model_turns_the_fused_path_off_and_the_memory_model_follows(model):
    cfg, b = _built(f"model={model}", "engine=fsdp", "liverl.allow=[memory-fit]")
    assert OmegaConf.select(b.verl, FUSED) is False
    # verl reads the actor-level key into fsdp_config (trainer/config/_generated_ppo_trainer.yaml:42)
    assert OmegaConf.select(b.verl, "actor_rollout_ref.actor.fsdp_config.entropy_from_logits_with_chunking") is True
    assert memory_inputs.logits_path(b.verl) == {"logits": "materialised", "lm_head_chunk": 0,
                                                 "logprob_entropy": "chunked"}
    assert any("fused log-prob kernels: off (untied embeddings" in n for n in b.notes)
    spec = memory_inputs.plan_inputs(cfg, b.verl, structure_only=True).trainer
    # the cheapest-fix list never proposes the fused path that would crash
    assert not any("use_fused_kernels=true" in text for text, _ in plan.fix_candidates(spec, plan.H200_BYTES))


@pytest.mark.parametrize("model", ["qwen25_0p5b", "qwen35"])
def test_memory_fit_never_advises_the_fused_path_on_veomni(model):
    # VeOmni's backward crashes with the fused path (rule veomni-fused-offload), tied embeddings or not: memory-fit's
    # fix list must not offer what another rule refuses
    cfg, b = _built(f"model={model}", "engine=veomni", "liverl.allow=[memory-fit]")
    spec = memory_inputs.plan_inputs(cfg, b.verl, structure_only=True).trainer
    assert spec.logits == "materialised"  # the fused path is off, so it would be a candidate were it possible
    assert not any("use_fused_kernels=true" in text for text, _ in plan.fix_candidates(spec, plan.H200_BYTES))
    with pytest.raises(ConfigError) as err:
        _built(f"model={model}", "engine=veomni", f"verl.{FUSED}=true", "liverl.allow=[memory-fit]")
    assert "veomni-fused-offload" in str(err.value)


def test_checkpoint_on_disk_decides_over_the_bundled_config(tmp_path):
    # the model group is the tied Qwen2.5-0.5B, but the checkpoint at model.path (written by transformers) is untied
    untied = T.Qwen2Config(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                           num_key_value_heads=2, vocab_size=128, tie_word_embeddings=False)
    untied.to_json_file(tmp_path / "config.json")
    cfg = compose_liverl(["model=qwen25_0p5b", "engine=fsdp", f"model.path={tmp_path}"])
    assert OmegaConf.select(build(cfg).verl, FUSED) is False


def test_explicit_fused_on_an_untied_model_is_refused():
    with pytest.raises(ConfigError) as err:
        _built("model=qwen3_30b_a3b", "engine=fsdp", f"verl.{FUSED}=true", "liverl.allow=[memory-fit]")
    text = str(err.value)
    assert "[fsdp-fused-untied]" in text and "mixed torch.Tensor and DTensor" in text
    _, b = _built("model=qwen25_0p5b", "engine=fsdp", f"verl.{FUSED}=true")  # tied: allowed
    assert OmegaConf.select(b.verl, FUSED) is True


def test_tiny_generator_writes_an_untied_model_that_turns_fused_off(tmp_path):
    # the GPU proof's model (python -m liverl.tiny.generate DIR --untied): an LM head of its own
    from liverl.tiny.generate import generate

    paths = generate(tmp_path, layers=1, hidden=64, heads=2, train=4, val=2, tied=False)
    assert json.loads((Path(paths["model"]) / "config.json").read_text())["tie_word_embeddings"] is False
    cfg = compose_liverl(["experiment=smoke_tiny", "engine=fsdp", f"model.path={paths['model']}",
                          f"train_files={paths['train']}", f"val_files={paths['val']}"])
    assert OmegaConf.select(build(cfg).verl, FUSED) is False
    tied = generate(tmp_path / "tied", layers=1, hidden=64, heads=2, train=4, val=2)
    cfg = compose_liverl(["experiment=smoke_tiny", "engine=fsdp", f"model.path={tied['model']}",
                          f"train_files={tied['train']}", f"val_files={tied['val']}"])
    assert OmegaConf.select(build(cfg).verl, FUSED) is True
