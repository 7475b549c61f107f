"""The user's knobs, set by their documented names, reach the verl keys the trainer reads."""

from __future__ import annotations

import pytest
from conftest import built
from omegaconf import OmegaConf

from liverl.errors import ConfigError
from liverl.guardrails.verl_keys import SP_KEYS


def verl_value(key: str, *overrides: str):
    return OmegaConf.select(built(*overrides).verl, key)


ASYNC = "topology=3node"
WAIVE_MEMORY = "liverl.allow=[memory-fit]"
CASES = [  # (overrides, verl key, expected)
    ((ASYNC, "staleness_threshold=0"), "async_training.staleness_threshold", 0),
    ((ASYNC, "staleness_threshold=1"), "async_training.staleness_threshold", 1),
    ((ASYNC, "partial_rollout=false"), "async_training.partial_rollout", False),
    # a dense policy (no R3: verl's bypass mode, no saved weight version; rule async-offload-version-copy)
    ((ASYNC, "model=qwen25_0p5b", "trigger_parameter_sync_step=4"), "async_training.trigger_parameter_sync_step", 4),
    ((ASYNC, "require_batches=2"), "async_training.require_batches", 2),
    ((ASYNC, "require_batches=2"), "actor_rollout_ref.actor.ppo_mini_batch_size", 4),  # 8 prompts / 2
    ((ASYNC, "train_bsz=16"), "actor_rollout_ref.actor.ppo_mini_batch_size", 16),
    (("topology=1node", "train_bsz=16"), "data.train_batch_size", 16),
    (("topology=1node", "train_bsz=16"), "actor_rollout_ref.actor.ppo_mini_batch_size", 16),
    ((ASYNC, "n_resp_per_prompt=8"), "actor_rollout_ref.rollout.n", 8),
    (("topology=1node", "n_resp_per_prompt=8"), "actor_rollout_ref.rollout.n", 8),
    # 8 shards of the 131k window is over an H200's budget since the 40% allocator headroom (memory-fit): this case
    # is about the knob reaching verl, so the memory verdict is waived
    ((ASYNC, "engine=fsdp", "fsdp_size=8", WAIVE_MEMORY), "actor_rollout_ref.actor.fsdp_config.fsdp_size", 8),
    ((ASYNC, "engine=veomni", "fsdp_size=8", WAIVE_MEMORY), "actor_rollout_ref.actor.veomni.fsdp_size", 8),
    (("rollout_is=token",), "algorithm.rollout_correction.rollout_is", "token"),
    (("rollout_is=null",), "algorithm.rollout_correction.rollout_is", None),
    (("verl.actor_rollout_ref.actor.optim.lr=3e-6",), "actor_rollout_ref.actor.optim.lr", 3e-6),
    ((ASYNC, "total_training_steps=10"), "rollout.total_rollout_steps", 80),  # 10 steps x 8 prompts x 1
    # a list of data files: RLHFDataset takes a path or a list (verl/utils/dataset/rl_dataset.py:97-98)
    (("val_files=[/d/a.parquet,/d/b.parquet]",), "data.val_files", ["/d/a.parquet", "/d/b.parquet"]),
]


@pytest.mark.parametrize("overrides,key,expected", CASES, ids=[" ".join(c[0]) + "->" + c[1] for c in CASES])
def test_knob_reaches_verl(overrides, key, expected) -> None:
    assert verl_value(key, *overrides) == expected


def test_sp_size_reaches_every_sp_key_for_a_standard_attention_model() -> None:
    v = built("model=qwen3_30b_a3b", "engine=fsdp", "sp_size=2").verl
    assert v.actor_rollout_ref.actor.ulysses_sequence_parallel_size == 2
    assert v.actor_rollout_ref.actor.fsdp_config.ulysses_sequence_parallel_size == 2
    assert v.actor_rollout_ref.ref.ulysses_sequence_parallel_size == 2  # the ref follows the deprecated key
    vv = built("model=qwen3_30b_a3b", "engine=veomni", "sp_size=2").verl
    assert vv.actor_rollout_ref.actor.veomni.ulysses_parallel_size == 2
    assert vv.actor_rollout_ref.ref.veomni.ulysses_parallel_size == 2


@pytest.mark.parametrize(
    "override", ["sp_size=2", "verl.actor_rollout_ref.actor.fsdp_config.ulysses_sequence_parallel_size=2"]
)
def test_qwen35_sp_is_never_silently_overridden(override: str) -> None:
    with pytest.raises(ConfigError) as err:
        built("model=qwen35", "engine=fsdp", override)
    (problem,) = err.value.problems
    assert problem.rule == "linear-attention-sp" and "GatedDeltaNet" in problem.message
    assert problem.got == 2


def test_qwen35_keeps_sp_1_everywhere() -> None:
    for engine in ("fsdp", "veomni"):
        v = built("model=qwen35", f"engine={engine}").verl
        values = [OmegaConf.select(v, k) for k in SP_KEYS if OmegaConf.select(v, k) is not None]
        assert values and set(values) == {1}


@pytest.mark.parametrize(
    "knob",
    [
        "staleness_threshold=1",
        "partial_rollout=false",
        "trigger_parameter_sync_step=2",
        "require_batches=2",
        "router_replay=R3",
    ],
)
def test_a_knob_that_would_do_nothing_is_an_error(knob: str) -> None:
    with pytest.raises(ConfigError) as err:
        built("topology=1node", "engine=fsdp", knob)
    assert [p.key for p in err.value.problems] == [knob.split("=")[0]]
    assert err.value.problems[0].rule == "unused-knob"


def test_smoke_batch_reaches_the_sync_trainer() -> None:
    """The prior-art bug: a smoke setting that never reached the sync trainer's data.train_batch_size."""
    v = built("topology=1node", "batch=smoke").verl
    assert (v.data.train_batch_size, v.actor_rollout_ref.rollout.n) == (8, 4)
    v = built("topology=1node", "batch=official").verl
    assert (v.data.train_batch_size, v.actor_rollout_ref.rollout.n) == (64, 8)


def test_batch_set_behind_the_knobs_back_is_refused() -> None:
    with pytest.raises(ConfigError) as err:
        built("topology=3node", "verl.actor_rollout_ref.actor.ppo_mini_batch_size=64")
    assert err.value.problems[0].rule == "batch-reach"
    with pytest.raises(ConfigError) as err:
        built("topology=3node", "verl.data.train_batch_size=64")
    assert {p.rule for p in err.value.problems} == {"fully-async-invariant"}


def test_router_replay_follows_the_policy() -> None:
    dense = built("engine=veomni", "model=qwen25_0p5b").verl
    assert dense.actor_rollout_ref.actor.veomni.router_replay.mode == "disabled"
    assert dense.actor_rollout_ref.rollout.enable_rollout_routing_replay is False
    moe = built("engine=veomni", "model=qwen3_30b_a3b").verl
    assert moe.actor_rollout_ref.actor.veomni.router_replay.mode == "R3"
    assert moe.actor_rollout_ref.rollout.enable_rollout_routing_replay is True


def test_tool_call_parser_follows_the_model() -> None:
    def parser(*o: str) -> str:
        return built(*o).verl.actor_rollout_ref.rollout.engine_kwargs.vllm["tool-call-parser"]

    # one model, one chat template, one format under every scaffold (Qwen3 instruct: hermes JSON)
    assert parser("model=qwen3_30b_a3b", "scaffold=claude_code") == "hermes"
    assert parser("model=qwen3_30b_a3b", "scaffold=ohsdk") == "hermes"
    assert parser("model=qwen35", "scaffold=ohsdk") == "qwen3_coder"
