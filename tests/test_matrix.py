"""Every engine x topology x scaffold x batch combination and every preset, composed onto the installed verl.

The expected numbers are the user's (the recipe-layer issue's table / scaling-up.md), asserted on the
composed *verl* config, i.e. what the trainer reads. Golden resolved verl configs (tests/golden/) make a
verl upgrade show up as a diff: `make goldens` rewrites them and fails the run (tests/goldens.py); review the diff.
"""

from __future__ import annotations

import itertools

import pytest
from conftest import built
from goldens import check_golden
from omegaconf import OmegaConf

from liverl.guardrails.verl_keys import SP_KEYS
from liverl.recipe.compose import group_options

ASYNC_ENTRY = "verl.experimental.fully_async_policy.fully_async_main"
TOPOLOGY = {  # nodes: (trainer, rollout); fsdp over all trainer GPUs; window (prompt, response)
    "1node": {
        "mode": "sync",
        "entry": "verl.trainer.main_ppo",
        "nodes": (1, 0),
        "fsdp": 8,
        "window": (30000, 58304),
        "fsdp2_cpu_offload": True,  # with optimizer and parameter offload off (README "Optimizer offload ...")
    },
    "2node": {
        "mode": "fully_async",
        "entry": ASYNC_ENTRY,
        "nodes": (1, 1),
        "fsdp": 8,
        "window": (30000, 58304),
        "fsdp2_cpu_offload": True,  # with optimizer and parameter offload off (README "Optimizer offload ...")
    },
    "3node": {
        "mode": "fully_async",
        "entry": ASYNC_ENTRY,
        "nodes": (2, 1),
        "fsdp": 16,
        "window": (40000, 91072),
        "fsdp2_cpu_offload": True,  # with optimizer and parameter offload off (README "Optimizer offload ...")
    },
}
BATCH = {"smoke": (8, 4), "official": (64, 8)}
AGENT_NAME = {"claude_code": "claude-code", "ohsdk": None}
COMBOS = list(itertools.product(["fsdp", "veomni"], TOPOLOGY, ["claude_code", "ohsdk"], BATCH))


# one-host smoke topologies and the Harbor-free scaffold: planned with the tiny model in tests/test_tiny_smoke.py
SMALL_HOST = {"topology": {"gpu1", "gpu2"}, "scaffold": {"single_turn"}, "experiment": {"smoke_tiny"}}


def test_matrix_covers_every_group_option() -> None:
    assert {c[0] for c in COMBOS} == set(group_options("engine"))
    assert {c[1] for c in COMBOS} | SMALL_HOST["topology"] == set(group_options("topology"))
    assert {c[2] for c in COMBOS} | SMALL_HOST["scaffold"] == set(group_options("scaffold"))
    assert {c[3] for c in COMBOS} == set(group_options("batch"))
    assert len(COMBOS) == 24


def check_verl_values(b, engine: str, topology: str, scaffold: str, batch: str) -> None:
    v, t = b.verl, TOPOLOGY[topology]
    prompts, responses = BATCH[batch]
    trainer_nodes, rollout_nodes = t["nodes"]
    assert b.liverl.mode.name == t["mode"] and b.liverl.mode.verl_entrypoint == t["entry"]
    assert (v.trainer.nnodes, v.trainer.n_gpus_per_node) == (trainer_nodes, 8)
    assert v.actor_rollout_ref.rollout.n == responses
    if t["mode"] == "sync":
        assert v.data.train_batch_size == prompts
        assert v.actor_rollout_ref.hybrid_engine is True
        assert "async_training" not in v
    else:
        assert (v.rollout.nnodes, v.rollout.n_gpus_per_node) == (rollout_nodes, 8)
        assert (v.actor_rollout_ref.rollout.nnodes, v.actor_rollout_ref.rollout.n_gpus_per_node) == (rollout_nodes, 8)
        assert (v.data.train_batch_size, v.data.gen_batch_size) == (0, 1)
        assert v.actor_rollout_ref.hybrid_engine is False
        assert v.actor_rollout_ref.actor.ppo_mini_batch_size * v.async_training.require_batches == prompts
        assert v.actor_rollout_ref.rollout.calculate_log_probs is True and v.actor_rollout_ref.rollout.mode == "async"
    actor = v.actor_rollout_ref.actor
    if engine == "fsdp":
        assert v.model_engine == "dp" and actor.strategy == "fsdp2"
        assert actor.fsdp_config.fsdp_size == t["fsdp"]
        assert actor.fsdp_config.offload_policy is t["fsdp2_cpu_offload"]
        assert actor.fsdp_config.optimizer_offload is actor.fsdp_config.param_offload is False
    else:
        assert v.model_engine == "veomni" and actor.strategy == "veomni"
        assert actor.veomni.fsdp_size == t["fsdp"]
        assert actor.veomni.enable_fsdp_offload is t["fsdp2_cpu_offload"]
        assert actor.veomni.optimizer_offload is actor.veomni.param_offload is False  # rule veomni-fsdp-offload-flags
        # qwen35 is MoE: R3 router replay on both sides
        assert actor.veomni.router_replay.mode == "R3"
        assert v.actor_rollout_ref.rollout.enable_rollout_routing_replay is True
        assert v.actor_rollout_ref.model.use_fused_kernels is False
    # qwen35: SP=1 on every key verl reads (including the deprecated one the ref model follows)
    present = [k for k in SP_KEYS if OmegaConf.select(v, k) is not None]
    assert present and all(OmegaConf.select(v, k) == 1 for k in present)
    assert (v.data.max_prompt_length, v.data.max_response_length) == t["window"]
    assert v.actor_rollout_ref.rollout.max_model_len == sum(t["window"])
    assert b.liverl.scaffold.harbor.agent_name == AGENT_NAME[scaffold]
    assert v.actor_rollout_ref.rollout.engine_kwargs.vllm["tool-call-parser"] == "qwen3_coder"


@pytest.mark.parametrize("engine,topology,scaffold,batch", COMBOS, ids=["-".join(c) for c in COMBOS])
def test_combination_reaches_verl(engine: str, topology: str, scaffold: str, batch: str) -> None:
    b = built(f"engine={engine}", f"topology={topology}", f"scaffold={scaffold}", f"batch={batch}")
    check_verl_values(b, engine, topology, scaffold, batch)
    check_golden(b.verl, f"{engine}-{topology}-{scaffold}-{batch}")


PRESETS = {  # the documented scripts' shapes
    "sync_1node_cc": ("veomni", "1node", "claude_code", "official"),
    "fully_async_2nodes_qwen35_cc_clean": ("veomni", "2node", "claude_code", "official"),
    "fully_async_3nodes_qwen35_cc_clean": ("veomni", "3node", "claude_code", "official"),
}


def test_every_preset_is_listed() -> None:
    assert set(group_options("experiment")) == set(PRESETS) | SMALL_HOST["experiment"]


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_composes(preset: str) -> None:
    b = built(f"experiment={preset}")
    engine, topology, scaffold, batch = PRESETS[preset]
    assert (
        b.liverl.engine.name,
        b.liverl.topology.name,
        b.liverl.scaffold.name,
        b.liverl.batch.name,
        b.liverl.model.name,
    ) == (engine, topology, scaffold, batch, "qwen35")
    check_verl_values(b, engine, topology, scaffold, batch)
    check_golden(b.verl, f"preset-{preset}")

