"""Runs that survive at scale (issue 10): the defaults and guardrails, asserted on the built verl config.

Each default cites the verl 0.9.1 line that makes it matter (conf/batch/*.yaml, conf/mode/fully_async.yaml,
conf/engine/*.yaml, liverl/guardrails/rules/)."""

from __future__ import annotations

from importlib import metadata, util
from pathlib import Path

import pytest
from conftest import REPO, built
from omegaconf import OmegaConf

from liverl.errors import ConfigError
from liverl.guardrails import memory_inputs
from liverl.guardrails.verl_keys import MOE_IMPL_KEY, QUACK_MOE_IMPLS, in_flight_cap, trainer_imports
from liverl.recipe.build import build
from liverl.recipe.compose import compose_liverl

A3 = "experiment=fully_async_3nodes_qwen35_cc_clean"


def rules(b, severity: str) -> set[str]:
    return {f.rule for f in b.findings if f.severity == severity}


def fatal(*overrides: str):
    with pytest.raises(ConfigError) as err:
        build(compose_liverl(list(overrides)))
    return {p.rule: p for p in err.value.problems}


# --- 1. checkpoints


@pytest.mark.parametrize("topology", ["1node", "3node"])
def test_smoke_saves_once_at_its_end_and_official_every_20_steps_keeping_two(topology: str) -> None:
    smoke = built(f"topology={topology}", "batch=smoke").verl.trainer
    assert (smoke.save_freq, smoke.total_training_steps, smoke.max_actor_ckpt_to_keep) == (5, 5, 1)
    official = built(f"topology={topology}", "batch=official").verl.trainer
    assert (official.save_freq, official.max_actor_ckpt_to_keep) == (20, 2)
    assert official.default_local_dir.endswith("/checkpoints") and official.resume_mode == "auto"


def test_a_run_that_can_never_save_is_fatal_unless_waived() -> None:
    problem = fatal("verl.trainer.save_freq=-1")["checkpoint-save"]
    assert "never writes a checkpoint" in problem.message and "fully_async_trainer.py:890" in problem.message
    waived = build(compose_liverl(["verl.trainer.save_freq=-1", "liverl.allow=[checkpoint-save]"]))
    assert "checkpoint-save" in rules(waived, "WAIVED")


def test_a_resume_path_without_a_global_step_is_fatal_and_unbounded_checkpoints_warn() -> None:
    assert "checkpoint-save" in fatal("verl.trainer.resume_mode=resume_path", "verl.trainer.resume_from_path=/ckpt/x")
    b = build(compose_liverl(["batch.keep_checkpoints=null"]))
    assert "checkpoint-save" in rules(b, "WARN")


# --- 2. validation


def test_validation_runs_with_agent_sampling() -> None:
    smoke, official = built("batch=smoke").verl, built("batch=official").verl
    assert smoke.trainer.test_freq == 5 and smoke.data.val_max_samples == 8 and not smoke.trainer.val_before_train
    assert official.trainer.test_freq == 20 and official.trainer.val_before_train
    assert official.data.val_max_samples == -1
    for v in (smoke, official):
        vk = v.actor_rollout_ref.rollout.val_kwargs
        assert vk.do_sample is True and vk.temperature == 1.0 and vk.n == 1


def test_validation_that_never_runs_warns() -> None:
    b = build(compose_liverl(["batch.test_freq=-1", "batch.val_before_train=false"]))
    assert "validation-cadence" in rules(b, "WARN")
    assert "validation-cadence" not in rules(built(), "WARN")


# --- 3. routing fidelity under R3


def test_router_replay_turns_bypass_off_so_verl_computes_the_fidelity_metric() -> None:
    r3 = built("topology=3node", "engine=veomni").verl
    assert r3.actor_rollout_ref.rollout.enable_rollout_routing_replay is True
    assert r3.algorithm.rollout_correction.bypass_mode is False
    dense = built("topology=3node", "engine=fsdp").verl
    assert dense.algorithm.rollout_correction.bypass_mode is True  # verl's fully-async default, kept without R3
    assert built("experiment=sync_1node_cc").verl.algorithm.rollout_correction.bypass_mode is False


# --- 4. rollout concurrency


@pytest.mark.parametrize("batch,per_replica", [("smoke", 8), ("official", 64)])
def test_rollout_concurrency_fills_the_queue(batch: str, per_replica: int) -> None:
    v = built("topology=3node", f"batch={batch}").verl
    assert v.async_training.concurrent_samples_per_replica == per_replica
    replicas, cap, required = in_flight_cap(v)
    assert replicas == 2 and cap == required * 2  # staleness 1: two steps of prompts in flight


def test_rollout_concurrency_below_one_step_is_fatal() -> None:
    problem = fatal(A3, "verl.async_training.concurrent_samples_per_replica=16")["rollout-concurrency"]
    assert "at most 32 prompts in flight" in problem.message and "needs 64" in problem.message


def test_rollout_concurrency_follows_staleness_and_replicas() -> None:
    v = built("topology=3node", "batch=official", "staleness_threshold=0").verl
    assert v.async_training.concurrent_samples_per_replica == 32
    v = built("topology=3node", "batch=official", "model=qwen25_0p5b").verl  # TP 1: 8 replicas
    assert v.async_training.concurrent_samples_per_replica == 16


# --- 5. per-GPU tokens


def test_token_budget_admits_one_full_window_and_fsdp_chunks_its_log_probs() -> None:
    v = built("topology=3node", "engine=fsdp").verl
    a = v.actor_rollout_ref
    assert a.actor.ppo_max_token_len_per_gpu == 131072 == a.rollout.log_prob_max_token_len_per_gpu
    assert a.ref.log_prob_max_token_len_per_gpu == 131072
    # qwen35 unties its embeddings: the fused path would crash under FSDP2 (liverl/recipe/fused_kernels.py), so it
    # is off and the old-log-prob entropy is chunked; a tied model keeps it
    assert a.model.use_fused_kernels is False and a.actor.fsdp_config.entropy_from_logits_with_chunking is True
    tied = built("topology=3node", "engine=fsdp", "model=qwen25_0p5b")
    assert tied.verl.actor_rollout_ref.model.use_fused_kernels is True
    assert tied.verl.actor_rollout_ref.model.fused_kernel_options.impl_backend == "torch"
    notes = " ".join(tied.notes)
    assert "tokens/GPU: 131072" in notes and "chunked (fused kernels)" in notes


def test_veomni_materialised_logits_are_said_and_a_budget_below_the_window_is_fatal() -> None:
    b = built("topology=3node", "engine=veomni")
    # one estimate of the logits: the memory model's (rule memory-fit), not a second one in token-budget
    assert not [f for f in b.findings if f.rule == "token-budget"]
    assert any("materialise the micro-batch's full-vocabulary logits" in n for n in b.notes)
    p = memory_inputs.predict(b.liverl, b.verl, structure_only=True)
    assert p["trainer"]["fits"] and any(k.startswith("logits") for k, _ in p["trainer"]["biggest"])
    assert b.verl.actor_rollout_ref.actor.veomni.entropy_from_logits_with_chunking is True
    assert "token-budget" in fatal("verl.actor_rollout_ref.actor.ppo_max_token_len_per_gpu=16384")


# --- 6. MoE on the installed verl, vLLM for R3, trainer imports


def test_moe_on_the_installed_verl_warns_when_planned_and_is_fatal_at_launch() -> None:
    assert "moe-new-verl" in rules(built(A3), "WARN")
    with pytest.raises(ConfigError) as err:
        build(compose_liverl([A3]), launching=True)
    assert "moe-new-verl" in {p.rule for p in err.value.problems}
    assert "moe-new-verl" not in rules(built("model=qwen25_0p5b"), "WARN")


def test_moe_on_the_new_verl_is_not_flagged(monkeypatch, new_verl_checkout: Path) -> None:
    monkeypatch.setenv("USE_NEW_VERL", "1")
    monkeypatch.setenv("NEW_VERL_DIR", str(new_verl_checkout))
    b = build(compose_liverl([A3]))
    assert "moe-new-verl" not in {f.rule for f in b.findings}


def test_r3_plans_defer_the_vllm_check_to_where_the_rollout_runs() -> None:
    assert "vllm-r3-version" in rules(built(A3), "SKIP")
    assert "vllm-r3-version" not in {f.rule for f in built("topology=3node", "engine=fsdp").findings}


def test_the_sync_trainer_imports_resolve_and_transferqueue_is_pinned() -> None:
    v = built("topology=1node").verl
    assert v.trainer.use_v1 is True
    assert "trainer-imports" not in {f.rule for f in built("topology=1node").findings}
    pins = dict(line.split("==") for line in (REPO / "requirements.lock").read_text().split() if "==" in line)
    assert pins["TransferQueue"] == metadata.version("TransferQueue")


def test_veomni_moe_experts_run_on_triton_and_a_quack_kernel_makes_quack_an_import_of_the_plan() -> None:
    # verl's default moe_implementation `fused` is VeOmni's alias for fused_quack on a GPU (veomni
    # arguments_types.py:1257-1268), whose kernel imports `quack`: the GPU host's first VeOmni MoE run (2026-12-07)
    # died building the model on "No module named 'quack'" (quack-kernels is an optional pin of the GPU lock)
    v = built("experiment=sync_1node_cc").verl
    assert OmegaConf.select(v, MOE_IMPL_KEY) == "fused_triton"
    assert v.actor_rollout_ref.ref.veomni.moe_implementation == "fused_triton"  # the ref follows the actor's key
    assert trainer_imports(v, "sync") == ("transfer_queue",)
    for impl in QUACK_MOE_IMPLS:
        b = built("experiment=sync_1node_cc", f"verl.{MOE_IMPL_KEY}={impl}")
        assert trainer_imports(b.verl, "sync") == ("transfer_queue", "quack")
        found = [f for f in b.findings if f.rule == "trainer-imports"]
        if util.find_spec("quack") is None:  # the CPU environment, and a GPU host without the optional pins
            assert [(f.got, f.severity) for f in found] == [("quack", "WARN")], found
            assert f"{MOE_IMPL_KEY}=fused_triton" in found[0].fix and "quack is not installed" in found[0].message
        else:
            assert found == []
    # FSDP has no VeOmni kernel to import (its verl config has no such key: verl-unknown-key)
    assert trainer_imports(built("experiment=sync_1node_cc", "engine=fsdp").verl, "sync") == ("transfer_queue",)


# --- 7. sync_1node_cc follows the document's MoE rule


def test_sync_1node_cc_runs_the_moe_policy_on_veomni_with_r3() -> None:
    v = built("experiment=sync_1node_cc").verl
    assert v.model_engine == "veomni" and v.actor_rollout_ref.actor.veomni.router_replay.mode == "R3"
    assert OmegaConf.select(v, "actor_rollout_ref.rollout.enable_rollout_routing_replay") is True
