"""The verl keys the guardrails and the plan read, and what they add up to (batch shape per step, prompts in
flight, the trainer's extra imports).

The named batch shapes (smoke, official) are read from `conf/batch/`, their one home.
"""

from __future__ import annotations

import functools

from omegaconf import DictConfig, OmegaConf

from liverl.derive import VERL_DEFAULT_CONCURRENCY, rollout_replicas
from liverl.paths import CONF_DIR

# Every key verl reads for Ulysses sequence parallelism (actor engine key, the deprecated actor key the
# reference model follows, the ref's copies, VeOmni's).
SP_KEYS = (
    "actor_rollout_ref.actor.ulysses_sequence_parallel_size",
    "actor_rollout_ref.actor.fsdp_config.ulysses_sequence_parallel_size",
    "actor_rollout_ref.ref.ulysses_sequence_parallel_size",
    "actor_rollout_ref.ref.fsdp_config.ulysses_sequence_parallel_size",
    "actor_rollout_ref.actor.veomni.ulysses_parallel_size",
    "actor_rollout_ref.ref.veomni.ulysses_parallel_size",
)
ROUTER_REPLAY_KEY = "actor_rollout_ref.actor.veomni.router_replay.mode"
ROLLOUT_REPLAY_KEY = "actor_rollout_ref.rollout.enable_rollout_routing_replay"
TOOL_PARSER_KEY = "actor_rollout_ref.rollout.engine_kwargs.vllm.tool-call-parser"
# FSDP2's CPUOffloadPolicy for the actor, per engine (actor.strategy): what conf/engine/*.yaml set from
# topology.fsdp2_cpu_offload (VeOmni passes its key to build_parallelize_model, veomni/transformer_impl.py:361)
FSDP2_OFFLOAD_KEYS = {"fsdp2": "actor_rollout_ref.actor.fsdp_config.offload_policy",
                      "veomni": "actor_rollout_ref.actor.veomni.enable_fsdp_offload"}


def fsdp2_wraps(strategy: str | None, trainer_gpus: int) -> bool:
    """Whether the actor's engine wraps the model in FSDP2 (DTensor parameters, mixed precision, CPU offload): verl's
    FSDP engine always, one GPU too (workers/engine/fsdp/transformer_impl.py:450-472); VeOmni only when
    world // (pp x tp) > 1 (veomni 0.1.12 distributed/parallel_state.py:250-255, torch_parallelize.py:489-502,
    830-838; verl passes it no tp or pp, workers/engine/veomni/transformer_impl.py:167-174)."""
    return strategy != "veomni" or trainer_gpus > 1


def fsdp2_offload_applies(verl_cfg: DictConfig, trainer_gpus: int) -> bool:
    """Whether the actor's FSDP2 CPU offload takes effect: its engine's key is on and the engine wraps in FSDP2."""
    strategy = OmegaConf.select(verl_cfg, "actor_rollout_ref.actor.strategy")
    key = FSDP2_OFFLOAD_KEYS.get(strategy)
    on = bool(key and OmegaConf.select(verl_cfg, key, default=False))
    return on and fsdp2_wraps(strategy, trainer_gpus)


def recomputes_old_log_probs(verl_cfg: DictConfig) -> bool:
    """Whether the fully-async trainer recomputes old log-probs with a saved weight version instead of taking them
    from the rollout (bypass mode): verl bypasses only when rollout_correction is set and its bypass_mode is truthy
    (experimental/separation/ray_trainer.py:510, `rollout_corr_config and rollout_corr_config.get("bypass_mode",
    False)`), so a missing section or a null bypass_mode recomputes too."""
    corr = OmegaConf.select(verl_cfg, "algorithm.rollout_correction")
    return not (corr and corr.get("bypass_mode", False))


# The termination reasons the new verl's trajectory filter knows (its `drop_reasons` vocabulary,
# the new verl's TerminationReason in verl/trainer/ppo/trajectory_filter.py). The scaffold's
# agent loop reports exactly these (liverl/scaffold/termination.py), so one set of names runs from the loop through
# both filters (verl's built-in, LiveRL's on the public verl) to the `trajectory_filter/reason/<reason>` metrics.
AGENT_COMPLETED = "agent_completed"
OVERLONG = "overlong"
MAX_TURNS_REACHED = "max_turns_reached"
TIMEOUT = "timeout"
ENV_SETUP_FAILED = "env_setup_failed"
TRAJ_FILTER_REASONS = (AGENT_COMPLETED, OVERLONG, MAX_TURNS_REACHED, TIMEOUT, ENV_SETUP_FAILED)
# LiveRL's Harbor agent loop (conf/train.yaml scaffold.agent_loop.name) and the advantage estimator of LiveRL's
# filter on the public verl (liverl/scaffold/traj_filter.py registers it; liverl/recipe/filter_plan.py selects it)
HARBOR_LOOP = "liverl_harbor"
FILTER_ESTIMATOR = "liverl_grpo_filtered"
FILTER_POLICY_LOSS = "liverl_vanilla"  # verl's vanilla loss, safe for a wholly dropped mini-batch
FILTER_BYPASS_LOSS = "liverl_bypass_mode"  # verl's bypass-mode loss (fully async, rollout_corr/*), the same guard
# vLLM that records routed experts correctly for hybrid-attention MoE (vllm_async_server.py:437-450)
VLLM_R3_MIN = (0, 22, 0)


def batch_shape(verl_cfg: DictConfig, mode: str) -> tuple[int, int]:
    """(prompts, responses per prompt) that reach the trainer each step, read from the verl config."""
    n = verl_cfg.actor_rollout_ref.rollout.n
    if mode == "fully_async":
        return verl_cfg.actor_rollout_ref.actor.ppo_mini_batch_size * verl_cfg.async_training.require_batches, n
    return verl_cfg.data.train_batch_size, n


@functools.cache
def named_batch(name: str) -> tuple[int, int] | None:
    """(prompts, responses per prompt) of the batch group `conf/batch/<name>.yaml` (None: no such group file)."""
    path = CONF_DIR / "batch" / f"{name}.yaml"
    if not path.is_file():
        return None
    group = OmegaConf.load(path)
    return int(group.train_bsz), int(group.n_resp_per_prompt)


# VeOmni's MoE kernel (actor_rollout_ref.actor.veomni.moe_implementation; the ref follows the actor's): verl's
# default `fused` is VeOmni's deprecated alias for `fused_quack` on a GPU (veomni/arguments/arguments_types.py:
# 1253-1268), whose kernel imports the `quack` package (veomni/ops/kernels/moe/__init__.py:237, quack_gemm.py:28) and
# needs SM90+; `fused_triton` (VeOmni's own default) needs only Triton, SM70+
MOE_IMPL_KEY = "actor_rollout_ref.actor.veomni.moe_implementation"
QUACK_MOE_IMPLS = ("fused", "fused_quack")
# why each module trainer_imports names is imported, and the fix when it is missing
IMPORT_REASONS = {
    "transfer_queue": ("verl's sync trainer (v1 task runner) imports it at start: trainer/main_ppo.py:137",
                       "make install (requirements.lock pins TransferQueue), or verl.trainer.use_v1=false"),
    "quack": (f"VeOmni's MoE experts import it as the model is built when {MOE_IMPL_KEY} is fused or fused_quack; "
              "VeOmni resolves fused to fused_quack on a GPU: veomni/arguments/arguments_types.py:1257-1268",
              f"{MOE_IMPL_KEY}=fused_triton (the engine=veomni default), or install quack-kernels (pinned in "
              "requirements-gpu.lock, optional there) on every node"),
}


def trainer_imports(verl_cfg: DictConfig, mode: str) -> tuple[str, ...]:
    """Modules the chosen trainer imports at run time beyond verl itself (IMPORT_REASONS says why): the synchronous
    entry's v1 task runner (trainer.use_v1, default true) imports transfer_queue (package TransferQueue, verl's
    verl-core extra); VeOmni's quack MoE kernel imports quack."""
    modules = []
    if mode == "sync" and OmegaConf.select(verl_cfg, "trainer.use_v1", default=True):
        modules.append("transfer_queue")
    if OmegaConf.select(verl_cfg, "model_engine") == "veomni" and \
            OmegaConf.select(verl_cfg, MOE_IMPL_KEY, default="fused") in QUACK_MOE_IMPLS:
        modules.append("quack")
    return tuple(modules)


def in_flight_cap(verl_cfg: DictConfig) -> tuple[int, int, int]:
    """(replicas, prompts verl keeps in flight, prompts one trainer step needs) for a fully-async config:
    min(replicas x concurrent_samples_per_replica, required x (staleness + 1) x sync steps)
    (fully_async_rollouter.py:425, 494-506, 970)."""
    r, a = verl_cfg.actor_rollout_ref.rollout, verl_cfg.async_training
    gpus = int(r.nnodes) * int(r.n_gpus_per_node)
    replicas = rollout_replicas(gpus, r.tensor_model_parallel_size, r.data_parallel_size)
    required, _ = batch_shape(verl_cfg, "fully_async")
    queue = int(required * (a.staleness_threshold + 1) * a.trigger_parameter_sync_step)
    return replicas, min(replicas * a.get("concurrent_samples_per_replica", VERL_DEFAULT_CONCURRENCY), queue), required


def window(verl_cfg: DictConfig) -> int:
    return int(verl_cfg.data.max_prompt_length + verl_cfg.data.max_response_length)


def chunked_log_probs(verl_cfg: DictConfig) -> bool:
    """Whether the engine computes log-probs without materialising full-vocabulary logits: use_fused_kernels on
    FSDP (workers/engine/fsdp/transformer_impl.py:1158-1165) and on VeOmni (its chunk_logprobs path,
    workers/engine/veomni/transformer_impl.py:842-853)."""
    return bool(verl_cfg.actor_rollout_ref.model.get("use_fused_kernels", False))


# the new verl's MoE capabilities (the user's page: "only that tree has the VeOmni engine_workers R3 wiring and the
# async-rollouter routed_experts concat fixes"), each probed on the checkout's schema or code
# (liverl.recipe.verl_source.VerlSource.features; fixture checkouts with and without each: tests/test_new_verl.py)
NEW_VERL_CAPABILITIES = {
    "veomni_router_replay": "the VeOmni R3 schema key actor.veomni.router_replay.mode (trainer/config/engine/"
    "veomni.yaml)",
    "veomni_r3_worker": "the engine-worker R3 replay path (workers/engine_workers.py reading "
    "actor.veomni.router_replay.mode)",
    "async_routed_experts_concat": "the async-rollouter routed_experts concat on partial-rollout resume "
    "(workers/rollout/llm_server.py)",
}


def missing_new_verl(features: dict[str, bool]) -> list[str]:
    """The new verl's MoE capabilities this verl lacks (what was looked for, one line each)."""
    return [text for key, text in NEW_VERL_CAPABILITIES.items() if not features.get(key)]
