"""Fully-async invariants (verl asserts them inside Ray actors, after the cluster is up) and the sync trainer's."""

from __future__ import annotations

from collections.abc import Iterable

from liverl.errors import Problem
from liverl.guardrails.framework import FATAL, WARN, Ctx, finding, rule
from liverl.guardrails.verl_keys import fsdp2_offload_applies, fsdp2_wraps, recomputes_old_log_probs


@rule("fully-async-invariant", "what verl's fully-async actors assert at run time")
def _async_invariants(c: Ctx) -> Iterable[Problem]:
    if c.mode != "fully_async":
        return
    want = {
        "data.train_batch_size": (lambda x: x == 0, "== 0"),
        "data.gen_batch_size": (lambda x: x == 1, "== 1"),
        "actor_rollout_ref.hybrid_engine": (lambda x: x is False, "false (dedicated rollout GPUs)"),
        "actor_rollout_ref.rollout.calculate_log_probs": (lambda x: x is True, "true"),
        "actor_rollout_ref.rollout.mode": (lambda x: x == "async", "async"),
        "async_training.staleness_threshold": (lambda x: x is not None and x >= 0, ">= 0"),
        "async_training.trigger_parameter_sync_step": (lambda x: x is not None and x >= 1, ">= 1"),
        "rollout.nnodes": (lambda x: x is not None and x > 0, "> 0"),
        "rollout.n_gpus_per_node": (lambda x: x is not None and x > 0, "> 0"),
    }
    for key, (ok, text) in want.items():
        if not ok(c.v(key)):
            yield finding(
                FATAL,
                f"verl.{key}",
                c.v(key),
                f"verl's fully-async trainer asserts {key} {text} inside a "
                "Ray actor, after the cluster and vLLM are up",
                f"leave {key} to LiveRL's topology ({text})",
            )


@rule("sync-hybrid-engine", "the synchronous trainer runs with the hybrid engine")
def _sync_hybrid(c: Ctx) -> Iterable[Problem]:
    if c.mode == "sync" and c.v("actor_rollout_ref.hybrid_engine") is not True:
        yield finding(
            FATAL,
            "verl.actor_rollout_ref.hybrid_engine",
            c.v("actor_rollout_ref.hybrid_engine"),
            "the synchronous trainer colocates vLLM with the trainer and requires the hybrid engine",
            "leave it true, or use a fully-async topology (topology=2node|3node) for dedicated rollout GPUs",
        )


@rule("async-rollout-n-unused", "the fully-async top-level rollout.n is read by no code")
def _rollout_n_unused(c: Ctx) -> Iterable[Problem]:
    top = c.v("rollout.n")
    if (
        c.mode == "fully_async"
        and top is not None
        and top != c.v("actor_rollout_ref.rollout.n")
        and "n" in (c.cfg.verl.get("rollout") or {})
    ):
        yield finding(
            WARN,
            "verl.rollout.n",
            top,
            "the fully-async config's top-level rollout.n is read by no verl "
            "code; responses per prompt come from actor_rollout_ref.rollout.n",
            "use n_resp_per_prompt=N",
        )


@rule("async-offload-version-copy", "fully async with old log-probs recomputed: the trainer's saved weight version "
      "is a copy, not the live CPU-offloaded shard")
def _async_offload_version_copy(c: Ctx) -> Iterable[Problem]:
    # with bypass_mode off (R3 router replay on) the fully-async trainer recomputes old log-probs with version 1's
    # weights for local steps 2..trigger_parameter_sync_step (experimental/fully_async_policy/fully_async_trainer.py:
    # 665-673): save_model_to_cpu takes each shard's `.detach().cpu()` (utils/fsdp_utils.py:1180), which under FSDP2's
    # CPUOffloadPolicy is the live CPU shard itself, not a copy (separation/engine_workers.py:127-129 expects the
    # parameters on the GPU). The optimizer updates it in place, so "version 1" is the current weights
    trigger = c.v("async_training.trigger_parameter_sync_step")
    offload = fsdp2_offload_applies(c.verl, c.trainer_gpus)  # the engine's own key, where that engine applies it
    if (c.mode != "fully_async" or not isinstance(trigger, int) or trigger <= 1 or not offload
            or not recomputes_old_log_probs(c.verl)):
        return
    yield finding(
        FATAL, "trigger_parameter_sync_step", trigger,
        "with FSDP2 CPU offload the trainer's copy of weight version 1 is the live CPU shard: for local steps 2 to "
        f"{trigger} verl recomputes the old log-probs with the current weights instead of version 1's, silently (the "
        "importance ratios and the rollout correction are computed against the wrong policy)",
        "trigger_parameter_sync_step=1 (LiveRL's default), or topology.fsdp2_cpu_offload=false where the trainer GPUs "
        "hold the update (python -m liverl.memory)")


@rule("async-veomni-one-gpu-version-copy", "fully async with old log-probs recomputed on VeOmni: two or more trainer "
      "GPUs (the weight-version copy needs FSDP2's sharded parameters)")
def _async_veomni_one_gpu_version_copy(c: Ctx) -> Iterable[Problem]:
    # with bypass_mode off the trainer saves weight version 1 at every local step 1 (fully_async_trainer.py:665-667);
    # for VeOmni verl uses fsdp2_sharded_save_to_cpu (experimental/separation/engine_workers.py:93-99), which asserts
    # DTensor parameters (utils/fsdp_utils.py:1184). VeOmni on one trainer GPU never wraps the model in FSDP2
    # (verl_keys.fsdp2_wraps), so its parameters are plain tensors and the first step dies
    if (c.mode != "fully_async" or fsdp2_wraps(c.v("actor_rollout_ref.actor.strategy"), c.trainer_gpus)
            or not recomputes_old_log_probs(c.verl)):
        return
    yield finding(
        FATAL, "verl.algorithm.rollout_correction.bypass_mode", c.v("algorithm.rollout_correction.bypass_mode"),
        "fully async with old log-probs recomputed (bypass_mode unset or false; R3 and R2 set false) saves weight "
        "version 1 through verl's FSDP2 sharded copy, which asserts DTensor parameters; on one trainer GPU VeOmni "
        "never wraps the model in FSDP2, so the first step dies (verl/utils/fsdp_utils.py:1184)",
        "two or more trainer GPUs (topology.trainer_nnodes / gpus_per_node); or engine=fsdp (FSDP2 wraps one GPU); or "
        "router_replay=disabled (bypass mode: old log-probs from the rollout)")
