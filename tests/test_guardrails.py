"""Guardrails: a bad-input corpus (one case per way of being wrong) and a passing case for every rule.

Each bad case goes through the same function the CLI runs for one job (liverl.train.plan_and_launch) and asserts
the rule id, exit code 2, that the message names the key and gives the fix, and that nothing was launched and no
run directory claims success. Checkpoints are real config.json files written by the tests.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import built
from omegaconf import OmegaConf

from liverl.errors import ConfigError
from liverl.guardrails import FATAL, RULES, SKIP, WARN
from liverl.guardrails.framework import Ctx
from liverl.guardrails.gpu_probe import gdn_kernel_problem, gdn_prefill_problem
from liverl.guardrails.rules.scaffold import required_parser
from liverl.guardrails.verl_keys import recomputes_old_log_probs
from liverl.launch.dispatch import plan_and_launch
from liverl.recipe.build import build
from liverl.recipe.compose import compose_liverl

CKPTS = {
    "dense6": {"model_type": "qwen2", "num_attention_heads": 6, "num_key_value_heads": 6},
    "dense_kv2": {"model_type": "qwen2", "num_attention_heads": 14, "num_key_value_heads": 2},
    "moe": {"model_type": "qwen3_moe", "num_attention_heads": 32, "num_key_value_heads": 4, "num_experts": 128},
    "vl_dense": {"model_type": "qwen3_vl", "text_config": {"num_attention_heads": 16, "num_key_value_heads": 8}},
    # GatedDeltaNet layers the way a Qwen3.5 config lists them (nested under text_config)
    "gdn": {"model_type": "qwen3_5_moe", "text_config": {"num_attention_heads": 16, "num_key_value_heads": 2,
                                                         "layer_types": ["linear_attention", "full_attention"],
                                                         "linear_num_key_heads": 16, "num_experts": 256}},
}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ckpt")
    out = {}
    for name, config in CKPTS.items():
        (root / name).mkdir()
        (root / name / "config.json").write_text(json.dumps(config))
        out[name] = root / name
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    root = tmp_path_factory.mktemp("data")
    for name in ("train.parquet", "val.parquet"):
        (root / name).write_bytes(b"PAR1")
    return [f"train_files={root / 'train.parquet'}", f"val_files={root / 'val.parquet'}"]


A3 = ("topology=3node",)
# the plan's chat template (rule harness-conformance)
CUSTOM_TEMPLATE = "verl.actor_rollout_ref.model.custom_chat_template"
VE = ("engine=veomni",)
FS = ("engine=fsdp",)  # MoE models default to VeOmni (conf/model/*.yaml): FSDP cases ask for it
# (case id, overrides, rule id, key named in the message); {dense6}/{moe}/... are checkpoint directories
BAD = [
    (
        "gdn-prefill-backend-case",  # vLLM's choices are lower-case
        ("verl.actor_rollout_ref.rollout.engine_kwargs.vllm.gdn_prefill_backend=Triton",),
        "gdn-prefill-flashinfer",
        "verl.actor_rollout_ref.rollout.engine_kwargs.vllm.gdn_prefill_backend",
    ),
    ("qwen35-sp-knob", ("model=qwen35", "sp_size=2"), "linear-attention-sp", "sp_size"),
    (
        "qwen35-sp-fsdp-key",
        (*FS, "verl.actor_rollout_ref.actor.fsdp_config.ulysses_sequence_parallel_size=2"),
        "linear-attention-sp",
        "verl.actor_rollout_ref.actor.fsdp_config.ulysses_sequence_parallel_size",
    ),
    (
        "qwen35-sp-deprecated-key",
        (*FS, "verl.actor_rollout_ref.actor.ulysses_sequence_parallel_size=4"),
        "linear-attention-sp",
        "verl.actor_rollout_ref.actor.ulysses_sequence_parallel_size",
    ),
    (
        "qwen35-sp-veomni-key",
        (*VE, "verl.actor_rollout_ref.actor.veomni.ulysses_parallel_size=2"),
        "linear-attention-sp",
        "verl.actor_rollout_ref.actor.veomni.ulysses_parallel_size",
    ),
    ("sp-not-dividing-gpus", ("model=qwen3_30b_a3b", "sp_size=3"), "sp-divides", "sp_size"),
    ("sp-not-dividing-heads", ("model=qwen25_0p5b", "model.path={dense6}", "sp_size=4"), "sp-divides", "sp_size"),
    ("nodes-dont-add-up", (*A3, "topology.nnodes=4"), "topology-nodes", "topology.nnodes"),
    ("fsdp-not-dividing", (*A3, "fsdp_size=12"), "fsdp-fits", "fsdp_size"),
    ("fsdp-too-big", ("fsdp_size=16",), "fsdp-fits", "fsdp_size"),
    ("fsdp-veomni-too-big", (*VE, "fsdp_size=32"), "fsdp-fits", "fsdp_size"),
    (
        "rollout-tp-not-dividing",
        ("model.rollout_tp=3",),
        "rollout-parallel-fits",
        "verl.actor_rollout_ref.rollout.tensor_model_parallel_size",
    ),
    (
        "rollout-tp-dp-too-big",
        (*A3, "model.rollout_tp=4", "verl.actor_rollout_ref.rollout.data_parallel_size=4"),
        "rollout-parallel-fits",
        "verl.actor_rollout_ref.rollout.tensor_model_parallel_size",
    ),
    (
        "tp-vs-kv-heads",
        ("model=qwen25_0p5b", "model.path={dense6}", "model.rollout_tp=4"),
        "rollout-tp-kv-heads",
        "model.rollout_tp",
    ),
    (
        "tp-vs-kv-heads-nested",
        (
            "model=qwen25_0p5b",
            "model.path={vl_dense}",
            "model.rollout_tp=16",
            "fsdp_size=8",
            "topology=3node",
            "verl.actor_rollout_ref.rollout.data_parallel_size=1",
        ),
        "rollout-parallel-fits",
        "verl.actor_rollout_ref.rollout.tensor_model_parallel_size",
    ),
    ("async-train-batch", (*A3, "verl.data.train_batch_size=4"), "fully-async-invariant", "verl.data.train_batch_size"),
    ("async-gen-batch", (*A3, "verl.data.gen_batch_size=2"), "fully-async-invariant", "verl.data.gen_batch_size"),
    (
        "async-hybrid-engine",
        (*A3, "verl.actor_rollout_ref.hybrid_engine=true"),
        "fully-async-invariant",
        "verl.actor_rollout_ref.hybrid_engine",
    ),
    (
        "async-no-log-probs",
        (*A3, "verl.actor_rollout_ref.rollout.calculate_log_probs=false"),
        "fully-async-invariant",
        "verl.actor_rollout_ref.rollout.calculate_log_probs",
    ),
    (
        "async-negative-staleness",
        (*A3, "verl.async_training.staleness_threshold=-1"),  # the knob itself: knob-type (test_hardening)
        "fully-async-invariant",
        "verl.async_training.staleness_threshold",
    ),
    (
        "async-sync-step-0",
        (*A3, "verl.async_training.trigger_parameter_sync_step=0"),
        "fully-async-invariant",
        "verl.async_training.trigger_parameter_sync_step",
    ),
    (
        "async-no-rollout-gpus",
        (*A3, "topology.rollout_nnodes=0", "topology.nnodes=2"),
        "fully-async-invariant",
        "verl.rollout.nnodes",
    ),
    (
        "sync-no-hybrid-engine",
        ("verl.actor_rollout_ref.hybrid_engine=false",),
        "sync-hybrid-engine",
        "verl.actor_rollout_ref.hybrid_engine",
    ),
    ("sync-batch-behind-knob", ("verl.data.train_batch_size=64",), "batch-reach", "verl.data.train_batch_size"),
    (
        "async-batch-behind-knob",
        (*A3, "verl.actor_rollout_ref.actor.ppo_mini_batch_size=4"),
        "batch-reach",
        "verl.actor_rollout_ref.actor.ppo_mini_batch_size x async_training.require_batches",
    ),
    ("n-behind-knob", ("verl.actor_rollout_ref.rollout.n=2",), "unused-knob", "n_resp_per_prompt"),
    ("loop-not-here", ("scaffold.agent_loop.target=liverl.no.Loop",), "scaffold-imports", "scaffold.agent_loop.target"),
    (
        "agent-class-not-in-harbor-env",
        ("scaffold=ohsdk", "scaffold.harbor.agent_import_path=liverl.scaffold.harbor_agents:NoSuchAgent"),
        "scaffold-imports",
        "scaffold.harbor.agent_import_path",
    ),
    (
        "batch-vs-dp-async",
        (*A3, "train_bsz=4", "n_resp_per_prompt=2"),
        "batch-dp-divisible",
        "train_bsz, n_resp_per_prompt",
    ),
    ("batch-vs-dp-sync", ("train_bsz=3", "n_resp_per_prompt=2"), "batch-dp-divisible", "train_bsz, n_resp_per_prompt"),
    (
        "mini-batch-over-batch",
        ("verl.actor_rollout_ref.actor.ppo_mini_batch_size=16",),
        "mini-batch-le-batch",
        "verl.actor_rollout_ref.actor.ppo_mini_batch_size",
    ),
    (
        "unknown-drop-reason",
        ("trajectory_filter.drop_reasons=[timeout,oom]",),
        "knob-type",  # the knob schema (liverl/recipe/knobs.py) is the one place drop reasons are checked
        "trajectory_filter.drop_reasons",
    ),
    (  # on the installed verl LiveRL's filter keeps dropped rows out of GRPO baselines only
        "traj-filter-on-old-verl",
        ("trajectory_filter.enable=true", "topology=2node", "verl.algorithm.adv_estimator=rloo"),
        "new-verl-feature",
        "trajectory_filter.enable",
    ),
    ("r3-on-dense", (*VE, "model=qwen25_0p5b", "router_replay=R3"), "router-replay-policy", "router_replay"),
    (
        "r3-on-dense-checkpoint",
        (*VE, "model=qwen3_30b_a3b", "model.path={dense_kv2}", "model.rollout_tp=2"),
        "router-replay-policy",
        "router_replay",
    ),
    ("r2-with-bypass", (*A3, *VE, "model=qwen3_30b_a3b", "router_replay=R2"), "router-replay-policy", "router_replay"),
    (
        "rollout-replay-on-fsdp",
        (*FS, "verl.actor_rollout_ref.rollout.enable_rollout_routing_replay=true"),
        "router-replay-policy",
        "verl.actor_rollout_ref.rollout.enable_rollout_routing_replay",
    ),
    (
        "r3-without-rollout-routes",
        (*VE, "verl.actor_rollout_ref.rollout.enable_rollout_routing_replay=false"),
        "router-replay-policy",
        "verl.actor_rollout_ref.rollout.enable_rollout_routing_replay",
    ),
    (
        "veomni-fused-kernels",
        (*VE, "verl.actor_rollout_ref.model.use_fused_kernels=true"),
        "veomni-fused-offload",
        "verl.actor_rollout_ref.model.use_fused_kernels",
    ),
    (
        "veomni-activation-offload",
        (*VE, "verl.actor_rollout_ref.model.enable_activation_offload=true"),
        "veomni-fused-offload",
        "verl.actor_rollout_ref.model.enable_activation_offload",
    ),
    (  # the GPU host's one-GPU VeOmni MoE run died on it (2026-12-07)
        "veomni-moe-one-gpu",
        (*VE, "model=qwen3_30b_a3b", "topology=gpu1", "model.rollout_tp=1", "liverl.allow=[memory-fit]"),
        "veomni-one-gpu-moe",
        "verl.actor_rollout_ref.actor.veomni.mixed_precision",
    ),
    (  # VeOmni keeps its offload flags under FSDP2 offload (verl/workers/engine/veomni/transformer_impl.py:181-182):
        # the 3-node layout (FSDP2 offload) with the user's page's optimizer offload back on
        "veomni-fsdp-offload-with-optimizer-offload",
        (*VE, *A3, "topology.optimizer_offload=true"),
        "veomni-fsdp-offload-flags",
        "verl.actor_rollout_ref.actor.veomni.enable_fsdp_offload",
    ),
    (  # R3 recomputes old log-probs with a saved weight version, which FSDP2 CPU offload aliases to the live shard
        "async-offload-trigger-2",
        (*A3, "trigger_parameter_sync_step=2"),
        "async-offload-version-copy",
        "trigger_parameter_sync_step",
    ),
    (  # R3 saves weight version 1 through verl's FSDP2 sharded copy, which VeOmni on one trainer GPU cannot give
        "async-veomni-one-gpu-r3",
        (*VE, "topology=gpu2", "model=qwen3_30b_a3b", "model.rollout_tp=1"),
        "async-veomni-one-gpu-version-copy",
        "verl.algorithm.rollout_correction.bypass_mode",
    ),
    (  # the same with parameter offload (what 1node set before it took FSDP2 offload)
        "veomni-fsdp-offload-with-param-offload",
        (*VE, "topology=1node", "topology.param_offload=true"),
        "veomni-fsdp-offload-flags",
        "verl.actor_rollout_ref.actor.veomni.enable_fsdp_offload",
    ),
    (
        "ohsdk-agent-name",
        ("scaffold=ohsdk", "scaffold.harbor.agent_name=openhands-sdk"),
        "scaffold-agent",
        "scaffold.harbor.agent_name",
    ),
    (
        "bad-import-path",
        ("scaffold.harbor.agent_import_path=harbor/agents/claude_code.py",),
        "knob-type",  # an import path's shape is the knob schema's; scaffold-agent judges name vs path
        "scaffold.harbor.agent_import_path",
    ),
    (
        "qwen35-hermes",
        ("model.tool_call_parser.claude_code=hermes",),
        "tool-call-parser",
        "model.tool_call_parser.claude_code",
    ),
    (
        "30b-ohsdk-qwen3-coder",
        ("model=qwen3_30b_a3b", "scaffold=ohsdk", "model.tool_call_parser.ohsdk=qwen3_coder"),
        "tool-call-parser",
        "model.tool_call_parser.ohsdk",
    ),
    (  # Qwen3-30B-A3B's instruct template writes hermes JSON, not Qwen3-Coder's XML
        "30b-cc-qwen3-coder",
        ("model=qwen3_30b_a3b", "model.tool_call_parser.claude_code=qwen3_coder"),
        "tool-call-parser",
        "model.tool_call_parser.claude_code",
    ),
    (  # one model, two formats: one of them cannot match the template
        "30b-two-parsers",
        ("model=qwen3_30b_a3b", "scaffold=ohsdk", "model.tool_call_parser.claude_code=qwen3_coder"),
        "tool-parser-conflict",
        "model.tool_call_parser",
    ),
    (  # docker runs the agent in a container: a loopback base URL reaches the container itself
        "docker-loopback-proxy",
        ("scaffold.harbor.proxy_bind_host=127.0.0.1",),
        "proxy-unreachable",
        "scaffold.harbor.proxy_bind_host",
    ),
    (
        "k8s-loopback-advertised",
        ("scaffold.harbor.environment_type=null", "scaffold.harbor.environment_import_path=my_k8s.env:Pods",
         "scaffold.harbor.proxy_advertise_host=localhost"),
        "proxy-unreachable",
        "scaffold.harbor.proxy_advertise_host",
    ),
    (  # v1 divides seq-mean losses by the whole mini-batch, dropped rows included
        "filter-seq-mean-token-sum",
        ("verl.actor_rollout_ref.actor.loss_agg_mode=seq-mean-token-sum",),
        "filter-seq-mean",
        "verl.actor_rollout_ref.actor.loss_agg_mode",
    ),
    (
        "colocated-reward-model",
        ("+verl.reward.reward_model.enable=true",),
        "reward-model-colocated",
        "verl.reward.reward_model.enable",
    ),
    ("rollout-is-bogus", ("verl.algorithm.rollout_correction.rollout_is=bogus",), "rollout-is", "rollout_is"),
    ("rollout-is-typo", ("verl.algorithm.rollout_correction.rollout_is=tokens",), "rollout-is", "rollout_is"),
    (
        "cosine-without-steps",
        ("verl.actor_rollout_ref.actor.optim.lr_scheduler_type=cosine", "verl.trainer.total_training_steps=null"),
        "lr-schedule-steps",
        "verl.actor_rollout_ref.actor.optim.lr_scheduler_type",
    ),
    (  # whole-micro-batch bf16 logits and unchunked old-log-prob entropy at a 131k window: ~250 GiB per GPU
        "35b-materialised-logits-long-window",
        (*FS, "verl.actor_rollout_ref.model.use_fused_kernels=false", "window.prompt=40000", "window.response=91072",
         "verl.actor_rollout_ref.actor.entropy_from_logits_with_chunking=false"),
        "memory-fit",
        "trainer GPU memory",
    ),
    (  # verl's fused forward reads an FSDP2-wrapped lm_head's shard: crashes at the first log-prob pass
        "30b-fsdp-fused-untied",
        ("model=qwen3_30b_a3b", "engine=fsdp", "verl.actor_rollout_ref.model.use_fused_kernels=true"),
        "fsdp-fused-untied",
        "verl.actor_rollout_ref.model.use_fused_kernels",
    ),
    (  # parameters + optimizer states of 35B over 8 ranks, offloaded: ~400 GiB of one 100 GiB node
        "35b-offload-small-host",
        ("experiment=sync_1node_cc", "cluster.host_memory_gib=100"),
        "host-memory-fit",
        "host memory",
    ),
    (  # 35B bf16 weights on one rank (65 GiB) over 0.3 x 139.8 GiB
        "35b-rollout-tp1",
        ("model.rollout_tp=1", "verl.actor_rollout_ref.rollout.gpu_memory_utilization=0.3"),
        "memory-fit",
        "rollout GPU memory",
    ),
    ("unknown-waiver", ("liverl.allow=[linear-atention-sp]",), "config", "liverl.allow"),
    ("knob-with-no-effect", (*FS, "router_replay=R3"), "unused-knob", "router_replay"),
    ("never-saves", ("verl.trainer.save_freq=-1",), "checkpoint-save", "verl.trainer.save_freq"),
    (
        "rollout-below-one-step",
        ("topology=3node", "batch=official", "verl.async_training.concurrent_samples_per_replica=16"),
        "rollout-concurrency",
        "verl.async_training.concurrent_samples_per_replica",
    ),
    (
        "tokens-below-window",
        ("verl.actor_rollout_ref.actor.ppo_max_token_len_per_gpu=16384",),
        "token-budget",
        "verl.actor_rollout_ref.actor.ppo_max_token_len_per_gpu",
    ),
]
LAUNCH_BAD = [  # judged as a launch (launcher=local): FATAL before anything starts
    ("official-without-smoke", ("batch=official", "launcher=local"), "smoke-before-official", "batch"),
    ("missing-train-files", ("launcher=local", "train_files=/nonexistent/train.parquet"), "paths-exist", "train_files"),
    ("missing-checkpoint", ("launcher=local", "model.path=/nonexistent/ckpt"), "paths-exist", "model.path"),
    ("moe-on-installed-verl", ("launcher=local", "model=qwen35"), "moe-new-verl", "verl.source"),
    ("official-without-conformance", ("batch=official", "launcher=local", f"{CUSTOM_TEMPLATE}=never-conformed"),
     "harness-conformance", "scaffold"),
]
ENV_BAD = [
    ("new-verl-dir-unset", {"USE_NEW_VERL": "1"}, "new-verl-dir", "NEW_VERL_DIR"),
    ("new-verl-dir-not-verl", {"USE_NEW_VERL": "1", "NEW_VERL_DIR": "/tmp"}, "new-verl-dir", "NEW_VERL_DIR"),
]


def run_job(tmp_path: Path, capsys, overrides: list[str]) -> tuple[int, str, Path]:
    run_dir = tmp_path / "run"
    code = plan_and_launch(compose_liverl(overrides, run_dir=run_dir), run_dir)
    return code, capsys.readouterr().err, run_dir


def expand(overrides, ckpt: dict[str, Path]) -> list[str]:
    return [o.format(**ckpt) for o in overrides]


def assert_refused(code: int, err: str, run_dir: Path, rule_id: str, key: str) -> None:
    assert code == 2, err
    assert f"[{rule_id}] {key}:" in err, err
    assert "fix:" in err.split(f"[{rule_id}] {key}:", 1)[1].split("\n  [")[0], err
    assert "nothing was launched" in err
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "config_error" and [h["status"] for h in run["history"]] == ["config_error"]
    assert not (run_dir / "verl.yaml").exists() and not (run_dir / "command.sh").exists()
    assert not list(run_dir.glob("metrics*.jsonl"))
    assert rule_id in {f["rule"] for f in json.loads((run_dir / "checks.json").read_text())}


def test_the_corpus_is_large_enough_and_covers_every_fatal_rule() -> None:
    cases = BAD + LAUNCH_BAD + ENV_BAD
    assert len(cases) >= 40 and len({c[0] for c in cases}) == len(cases)
    never_fatal = {
        "batch-size-named",
        "router-replay-unvalidated",
        "async-rollout-n-unused",
        "val-timeout",
        "gdn-triton-hopper",
        "validation-cadence",
        "vllm-r3-version",
        "trainer-imports",
        "rollout-kv-demand",
        "veomni-one-gpu-fsdp-offload",
    }  # WARN/SKIP rules (the kernel rule refuses at launch: tested below; vLLM and trainer imports are judged on
    # every node at launch: tests/test_node_probe.py)
    assert set(RULES) - never_fatal <= {c[2] for c in cases}


@pytest.mark.parametrize("case,overrides,rule_id,key", BAD, ids=[c[0] for c in BAD])
def test_bad_config_is_refused(tmp_path, capsys, ckpt, case, overrides, rule_id, key) -> None:
    code, err, run_dir = run_job(tmp_path, capsys, [*expand(overrides, ckpt), "launcher=dryrun"])
    assert_refused(code, err, run_dir, rule_id, key)


@pytest.mark.parametrize("case,overrides,rule_id,key", LAUNCH_BAD, ids=[c[0] for c in LAUNCH_BAD])
def test_bad_launch_is_refused_before_anything_starts(tmp_path, capsys, data, case, overrides, rule_id, key) -> None:
    extra = [] if any(o.startswith("train_files") for o in overrides) else data
    code, err, run_dir = run_job(tmp_path, capsys, [*extra, *overrides])
    assert_refused(code, err, run_dir, rule_id, key)


@pytest.mark.parametrize("case,env,rule_id,key", ENV_BAD, ids=[c[0] for c in ENV_BAD])
def test_bad_environment_is_refused(tmp_path, capsys, monkeypatch, case, env, rule_id, key) -> None:
    monkeypatch.delenv("NEW_VERL_DIR", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    code, err, run_dir = run_job(tmp_path, capsys, ["launcher=dryrun"])
    assert code == 2 and f"[{rule_id}] {key}:" in err and "fix:" in err
    assert json.loads((run_dir / "run.json").read_text())["status"] == "config_error"


def findings(*overrides: str, structure_only: bool = False, launching: bool = False) -> dict[str, list]:
    b = build(compose_liverl(list(overrides)), structure_only=structure_only, launching=launching)
    out: dict[str, list] = {}
    for f in b.findings:
        out.setdefault(f.rule, []).append(f)
    return out


# a configuration each rule passes (no FATAL or WARN from it); checkpoint/data rules get real files
PASSING = {
    "linear-attention-sp": ("model=qwen35",),
    "sp-divides": ("model=qwen25_0p5b", "model.path={dense_kv2}", "sp_size=2", "model.rollout_tp=2"),
    "topology-nodes": A3,
    # 8 shards of the 131k-token preset peak over the H200 budget with the 40% allocator headroom (memory-fit's own
    # case, tests/test_memory_targets.py): waived here, this case judges fsdp-fits only
    "fsdp-fits": (*A3, "fsdp_size=8", "liverl.allow=[memory-fit]"),
    "rollout-parallel-fits": (*A3, "model.rollout_tp=8"),
    "rollout-tp-kv-heads": ("model=qwen3_30b_a3b", "model.path={moe}", "model.rollout_tp=4", *VE),
    "fully-async-invariant": A3,
    "sync-hybrid-engine": (),
    "async-rollout-n-unused": A3,
    "batch-reach": ("train_bsz=16", "n_resp_per_prompt=2"),
    "batch-dp-divisible": (*A3, "train_bsz=4", "n_resp_per_prompt=4"),
    "mini-batch-le-batch": ("verl.actor_rollout_ref.actor.ppo_mini_batch_size=4",),
    "batch-size-named": ("batch=official",),
    "router-replay-unvalidated": ("engine=fsdp",),
    "router-replay-policy": (*VE, "model=qwen3_30b_a3b"),
    "veomni-fused-offload": VE,
    "veomni-one-gpu-moe": (*VE, "model=qwen3_30b_a3b"),  # 8 trainer GPUs: FSDP2 casts to bf16
    "veomni-fsdp-offload-flags": (*VE, *A3),  # FSDP2 offload with both flags off, as the topologies set it
    "veomni-one-gpu-fsdp-offload": (*VE, *A3),  # 16 trainer GPUs: FSDP2 wraps the model and offloads it
    "async-veomni-one-gpu-version-copy": (*VE, *A3),  # R3 on 16 trainer GPUs: the parameters are DTensors
    # R3 on (bypass off), so old log-probs are recomputed, but the saved version is a real copy: no FSDP2 offload,
    # on B200s, whose budget (127.4 GiB) holds the 3-node update without it (116.5)
    "async-offload-version-copy": (*A3, "trigger_parameter_sync_step=2", "topology.fsdp2_cpu_offload=false",
                                   "gpu=b200"),
    "scaffold-agent": ("scaffold=ohsdk",),
    "scaffold-imports": ("scaffold=ohsdk",),
    "tool-call-parser": ("model=qwen3_30b_a3b", "scaffold=ohsdk"),
    "rollout-is": ("rollout_is=token",),
    "lr-schedule-steps": ("verl.actor_rollout_ref.actor.optim.lr_scheduler_type=cosine",),
    "memory-fit": ("model=qwen25_0p5b",),
    "fsdp-fused-untied": ("model=qwen3_30b_a3b", "engine=fsdp"),
    "host-memory-fit": ("cluster.host_memory_gib=2000",),
    "rollout-kv-demand": (),
    "smoke-before-official": ("batch=smoke",),
    "paths-exist": ("model.path={moe}", "model=qwen3_30b_a3b", *VE),
    "val-timeout": (),
    "gdn-triton-hopper": ("model=qwen3_30b_a3b",),
    "gdn-prefill-flashinfer": ("model=qwen3_30b_a3b",),  # no GatedDeltaNet layer
    "checkpoint-save": (),
    "validation-cadence": (),
    "rollout-concurrency": A3,
    "token-budget": ("engine=fsdp", *A3),
    "moe-new-verl": ("model=qwen25_0p5b",),
    "vllm-r3-version": ("engine=fsdp",),
    "trainer-imports": (),
    "harness-conformance": ("scaffold=single_turn", f"{CUSTOM_TEMPLATE}=never-conformed"),
    "proxy-unreachable": ("scaffold.harbor.proxy_bind_host=auto",),
    "filter-seq-mean": ("verl.actor_rollout_ref.actor.loss_agg_mode=token-mean",),
    "tool-parser-conflict": ("model=qwen3_30b_a3b",),
    "reward-model-colocated": (),
}


def test_every_rule_has_a_passing_case() -> None:
    assert set(PASSING) == set(RULES)


@pytest.mark.parametrize("rule_id", sorted(PASSING))
def test_rule_passes_a_good_config(rule_id: str, ckpt, data, monkeypatch) -> None:
    overrides = expand(PASSING[rule_id], ckpt) + (data if rule_id == "paths-exist" else [])
    ran: list[list] = []  # the rule's own output, recorded where the build calls it (the registry)
    rule = RULES[rule_id]
    monkeypatch.setitem(RULES, rule_id, lambda ctx: ran.append(list(rule(ctx))) or ran[-1])
    got = findings(*overrides).get(rule_id, [])
    assert len(ran) == 1, f"{rule_id} did not run"  # a pass means the rule judged this config
    assert not [f for f in got if f.severity in (FATAL, WARN, SKIP)], got  # ...and could judge it


WARNS = [  # (overrides, rule id): printed and written to the run directory, not blocking
    (("batch=smoke", "train_bsz=16"), "batch-size-named"),
    ((*VE,), "router-replay-unvalidated"),
    ((*VE, "router_replay=disabled"), "router-replay-policy"),  # MoE with R3 off
    (("model=qwen3_30b_a3b", *FS), "router-replay-policy"),  # MoE on FSDP (asked: MoE defaults to VeOmni)
    ((*A3, "verl.rollout.n=16"), "async-rollout-n-unused"),
    (("rollout_is=sequence",), "rollout-is"),
    (("scaffold.harbor.agent_name=null",), "scaffold-agent"),
    (("verl.trainer.test_freq=5", "scaffold.harbor.val_agent_timeout_sec=2400"), "val-timeout"),
    (("model.path=Qwen/Qwen3.5-35B-A3B",), "paths-exist"),
    ((f"{CUSTOM_TEMPLATE}=never-conformed",), "harness-conformance"),
    ((*VE, "model=qwen25_0p5b", "topology=gpu1", "model.rollout_tp=1", "topology.fsdp2_cpu_offload=true"),
     "veomni-one-gpu-fsdp-offload"),
]


@pytest.mark.parametrize("overrides,rule_id", WARNS, ids=[r for _, r in WARNS])
def test_warnings_are_reported_and_written_to_the_run_directory(tmp_path, capsys, overrides, rule_id) -> None:
    code, _, run_dir = run_job(tmp_path, capsys, [*overrides, "launcher=dryrun"])
    assert code == 0
    written = json.loads((run_dir / "checks.json").read_text())
    assert any(f["rule"] == rule_id and f["severity"] == WARN for f in written), written
    assert f"[{rule_id}]" in (run_dir / "summary.txt").read_text()


def test_structure_only_skips_what_needs_this_disk(ckpt) -> None:
    got = findings("model=qwen25_0p5b", "model.path={dense6}".format(**ckpt), "model.rollout_tp=4", structure_only=True)
    assert [f.severity for f in got["rollout-tp-kv-heads"]] == [SKIP]  # the bad checkpoint is not read
    assert {f.severity for f in got["paths-exist"]} == {SKIP}
    assert "smoke-before-official" not in got  # batch=smoke


def test_structure_only_validates_a_new_verl_preset_without_the_checkout(monkeypatch) -> None:
    monkeypatch.setenv("USE_NEW_VERL", "1")
    monkeypatch.setenv("NEW_VERL_DIR", "/nonexistent/new-verl")
    got = findings("experiment=fully_async_3nodes_qwen35_cc_clean", structure_only=True)
    assert [f.severity for f in got["new-verl-dir"]] == [SKIP]
    with pytest.raises(ConfigError):
        findings("experiment=fully_async_3nodes_qwen35_cc_clean")


def test_a_fatal_is_waived_only_by_its_id_and_the_waiver_is_recorded(tmp_path, capsys) -> None:
    # R3 on a dense model: a waivable FATAL (linear-attention-sp is fixed: tests/test_engine_default.py)
    dense_r3 = ["model=qwen25_0p5b", "engine=veomni", "router_replay=R3", "launcher=dryrun"]
    code, err, _ = run_job(tmp_path / "a", capsys, [*dense_r3, "liverl.allow=[memory-fit]"])
    assert code == 2 and "[router-replay-policy]" in err
    code, _, run_dir = run_job(tmp_path / "b", capsys, [*dense_r3, "liverl.allow=[router-replay-policy]"])
    assert code == 0
    assert json.loads((run_dir / "run.json").read_text())["waived"] == ["router-replay-policy"]
    written = json.loads((run_dir / "checks.json").read_text())
    assert [f["severity"] for f in written if f["rule"] == "router-replay-policy"] == ["WAIVED"]
    assert OmegaConf.load(run_dir / "verl.yaml").actor_rollout_ref.actor.veomni.router_replay.mode == "R3"


def test_all_findings_are_reported_at_once(tmp_path, capsys) -> None:
    code, err, _ = run_job(
        tmp_path,
        capsys,
        [
            "sp_size=2",
            "verl.algorithm.rollout_correction.rollout_is=bogus",
            "scaffold=ohsdk",
            "scaffold.harbor.agent_name=openhands-sdk",
            "launcher=dryrun",
        ],
    )
    assert code == 2
    for rule_id in ("linear-attention-sp", "rollout-is", "scaffold-agent"):
        assert f"[{rule_id}]" in err


@pytest.mark.parametrize(
    "facts,refused",
    [
        (((9, 0), "3.6.0", "0.5.2", False), True),  # H200 + torch 2.11's Triton 3.6: the failure seen
        (((9, 0), "3.4.0", "0.5.2", False), True),
        (((9, 0), "3.6.0", "0.5.2", True), False),  # tilelang installed, an nvcc for its JIT
        (((9, 0), "3.6.0", "0.5.2", True, False), True),  # tilelang without nvcc: FLA falls back to Triton, refuses
        (((9, 0), "3.6.0", "0.5.2", True, True, "FLA_TILELANG=0"), True),  # turned off: Triton again
        (((9, 0), "3.7.1", "0.5.2", False), False),  # fixed Triton
        (((9, 0), "3.3.1", "0.5.2", False), False),
        (((8, 0), "3.6.0", "0.5.2", False), False),  # Ampere
        (((10, 0), "3.6.0", "0.5.2", False), False),  # Blackwell
        ((None, "3.6.0", "0.5.2", False), False),  # no GPU here
        (((9, 0), "3.6.0", None, False), False),  # no flash-linear-attention
    ],
)
def test_gdn_kernel_rule(facts, refused: bool) -> None:
    problem = gdn_kernel_problem(*facts)
    assert (problem is not None) is refused
    if refused:
        assert "chunk_bwd_dqkwg" in problem
        tilelang, nvcc, off = facts[3], facts[4] if len(facts) > 4 else True, facts[5] if len(facts) > 5 else None
        assert ("no nvcc" in problem) is (tilelang and not nvcc and not off)
        assert ("turns its tilelang backend off" in problem) is bool(tilelang and off)


def test_gated_delta_net_layers_are_read_from_the_checkpoint(ckpt) -> None:
    # what the checkpoint has decides, not the model group's word (an MoE config was once read as dense)
    under_other_group = findings("model=qwen3_30b_a3b", f"model.path={ckpt['gdn']}")
    assert [f.severity for f in under_other_group["gdn-prefill-flashinfer"]] == [SKIP]
    assert [f.severity for f in under_other_group["gdn-triton-hopper"]] == [SKIP]
    dense_under_qwen35 = findings("model=qwen35", f"model.path={ckpt['dense_kv2']}", "router_replay=disabled")
    assert "gdn-prefill-flashinfer" not in dense_under_qwen35 and "gdn-triton-hopper" not in dense_under_qwen35
    # no checkpoint on this disk: the model group's word
    assert "gdn-prefill-flashinfer" in findings("model=qwen35")


@pytest.mark.parametrize(
    "capability,vllm,flashinfer,backend,cutlass,refused",
    [
        ((9, 0), "0.24.0", None, None, None, True),  # the fifteenth GPU session's H100: died at the first prefill
        ((9, 0), "0.24.0", None, "flashinfer", None, True),  # asked for by name: the same import
        ((9, 0), "0.25.1", None, None, None, True),
        ((9, 0), "0.24.0", "0.6.12", None, None, False),  # the lock's optional pin installed
        ((9, 0), "0.24.0", None, "triton", None, False),  # the fix
        ((8, 0), "0.24.0", None, None, None, False),  # A100: vLLM resolves Triton
        ((10, 0), "0.24.0", None, None, None, False),  # Blackwell without cutlass-dsl's CUDA 13 libraries: Triton
        ((10, 0), "0.24.0", None, None, "4.3.1", True),  # ...with them: FlashInfer
        ((10, 0), "0.24.0", None, "cutedsl", "4.3.1", False),
        ((9, 0), "0.23.1", None, None, None, False),  # before the resolution this rule knows
        ((9, 0), None, None, None, None, False),  # no vLLM on this node
        (None, "0.24.0", None, None, None, False),  # no GPU
    ],
)
def test_gdn_prefill_rule(capability, vllm, flashinfer, backend, cutlass, refused: bool) -> None:
    problem = gdn_prefill_problem(capability, vllm, flashinfer, backend, cutlass)
    assert (problem is not None) is refused
    if refused:
        assert "No module named 'flashinfer'" in problem and f"SM {capability[0]}.{capability[1]}" in problem


@pytest.mark.parametrize(
    "model,scaffold,parser",
    [
        ("qwen35 Qwen/Qwen3.5-35B-A3B", "claude_code", "qwen3_coder"),
        ("qwen36 /ckpt/Qwen3.6-27B", "ohsdk", "qwen3_coder"),
        ("qwen3_30b_a3b Qwen/Qwen3-30B-A3B-Instruct-2507", "claude_code", "hermes"),  # one template, one format
        ("qwen3_30b_a3b Qwen/Qwen3-30B-A3B-Instruct-2507", "ohsdk", "hermes"),
        ("qwen25_0p5b Qwen/Qwen2.5-0.5B", "ohsdk", None),
    ],
)
def test_required_parser(model: str, scaffold: str, parser: str | None) -> None:
    assert required_parser(model, scaffold) == parser


def test_presets_pass_structure_only() -> None:
    for preset in ("sync_1node_cc", "fully_async_2nodes_qwen35_cc_clean", "fully_async_3nodes_qwen35_cc_clean"):
        got = findings(f"experiment={preset}", structure_only=True)
        assert not [f for fs in got.values() for f in fs if f.severity == FATAL]
    assert built("experiment=sync_1node_cc").liverl.batch.name == "official"


def test_veomni_one_gpu_moe_passes_what_runs_on_one_gpu(ckpt) -> None:
    # one trainer GPU is fine for VeOmni when the MoE kernel gets bf16 (mixed_precision off), takes fp32 (eager), or
    # there is no MoE; an MoE checkpoint under a dense model group is judged by its config.json
    one = (*VE, "topology=gpu1", "model.rollout_tp=1", "liverl.allow=[memory-fit]")
    moe = (*one, "model=qwen3_30b_a3b")
    for extra in ("verl.actor_rollout_ref.actor.veomni.mixed_precision=false",
                  "verl.actor_rollout_ref.actor.veomni.moe_implementation=eager"):
        assert "veomni-one-gpu-moe" not in findings(*moe, extra)
    assert "veomni-one-gpu-moe" not in findings(*one, "model=qwen25_0p5b")
    with pytest.raises(ConfigError) as hidden:
        findings(*expand((*one, "model=qwen25_0p5b", "model.path={moe}"), ckpt))
    assert "veomni-one-gpu-moe" in [p.rule for p in hidden.value.problems]


@pytest.mark.parametrize(("corr", "recomputes"), [
    ({"bypass_mode": False}, True), ({"bypass_mode": None}, True), ({}, True), (None, True),
    ({"bypass_mode": True}, False)])
def test_recomputed_old_log_probs_follow_verls_truthiness(corr, recomputes: bool) -> None:
    # verl bypasses only when the section is set and bypass_mode truthy (experimental/separation/ray_trainer.py:510):
    # a null bypass_mode, or no section, recomputes, so the weight-version rules fire on it too
    b = build(compose_liverl([*VE, *A3]), structure_only=True)  # R3: LiveRL writes bypass_mode=false
    assert recomputes_old_log_probs(b.verl)
    verl = OmegaConf.to_container(b.verl)
    verl["algorithm"]["rollout_correction"] = corr
    assert recomputes_old_log_probs(OmegaConf.create(verl)) is recomputes


@pytest.mark.parametrize("rule_id", ["async-veomni-one-gpu-version-copy", "async-offload-version-copy"])
def test_the_weight_version_rules_fire_wherever_verl_recomputes(rule_id: str) -> None:
    # bypass mode (router replay off) plans; then the section's bypass_mode deleted, null or the section gone: verl
    # recomputes old log-probs with a saved version there too, and each rule refuses as for bypass_mode=false
    plans = {"async-veomni-one-gpu-version-copy": (*VE, "topology=gpu2", "model=qwen3_30b_a3b", "model.rollout_tp=1",
                                                   "liverl.allow=[veomni-one-gpu-moe,memory-fit]"),
             "async-offload-version-copy": (*A3, "trigger_parameter_sync_step=2")}
    b = build(compose_liverl([*plans[rule_id], "router_replay=disabled"]), structure_only=True)
    assert OmegaConf.select(b.verl, "algorithm.rollout_correction.bypass_mode") is True

    def fired(edit) -> bool:
        verl = OmegaConf.to_container(b.verl)
        edit(verl["algorithm"])
        ctx = Ctx(b.liverl, OmegaConf.create(verl), {}, "", structure_only=True)
        return any(f.severity == FATAL for f in RULES[rule_id](ctx))

    assert not fired(lambda a: None)
    assert fired(lambda a: a["rollout_correction"].update(bypass_mode=False))
    assert fired(lambda a: a["rollout_correction"].update(bypass_mode=None))
    assert fired(lambda a: a["rollout_correction"].pop("bypass_mode"))
    assert fired(lambda a: a.pop("rollout_correction"))
