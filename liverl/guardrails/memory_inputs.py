"""The memory model's inputs read from a plan: LiveRL's config and the verl config it builds -> `PlanInputs`.

`liverl.memory` takes plain numbers; this module is where the verl keys are read. What verl 0.9.1 does with them:
- actor.ppo_max_token_len_per_gpu (use_dynamic_bsz): the packed tokens of one micro-batch on one GPU
  (verl/workers/actor/dp_actor.py, rearrange_micro_batches by max_token_len).
- actor.fsdp_config / actor.veomni fsdp_size (-1: every trainer GPU) shards parameters, gradients and optimizer
  states (verl/workers/engine/fsdp, create_device_mesh); param_offload / optimizer_offload move them to the CPU
  between phases and back for compute (verl/utils/fsdp_utils.py load_fsdp_optimizer/offload_fsdp_optimizer);
  offload_policy uses FSDP2's CPUOffloadPolicy (the optimizer step runs on the CPU).
- actor.fsdp_config.model_dtype fp32 + mixed_precision.param_dtype bf16: fp32 parameters, bf16 compute.
- model.enable_gradient_checkpointing: per-layer recompute.
- rollout.tensor_model_parallel_size and rollout.gpu_memory_utilization: vLLM's split and budget.
"""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf

from liverl.memory import plan as memplan
from liverl.memory import terms
from liverl.memory.arch import Arch


def _get(cfg: Any, dotted: str, default: Any = None) -> Any:
    value = OmegaConf.select(cfg, dotted, default=None, throw_on_resolution_failure=False)
    return default if value is None else value


def arch(cfg: Any, structure_only: bool = False) -> Arch:
    """The checkpoint's config.json when it is read here, else the model group's bundled one (`model.arch`)."""
    path = "" if structure_only else str(_get(cfg, "model.path", ""))
    return memplan.arch_for(path, str(_get(cfg, "model.arch") or _get(cfg, "model.name")))


def window(verl: Any) -> int:
    return int(_get(verl, "data.max_prompt_length")) + int(_get(verl, "data.max_response_length"))


def trainer_spec(cfg: Any, verl: Any, a: Arch) -> tuple[terms.StepSpec, int]:
    """One trainer GPU's training step, and how many trainer GPUs there are."""
    actor = _get(verl, "actor_rollout_ref.actor")
    engine = _get(actor, "veomni") if _get(actor, "strategy") == "veomni" else _get(actor, "fsdp_config")
    gpus = int(_get(verl, "trainer.nnodes", 1)) * int(_get(verl, "trainer.n_gpus_per_node", 8))
    fsdp_size = int(_get(engine, "fsdp_size", -1))
    shards = gpus if fsdp_size in (-1, 0) else min(fsdp_size, gpus)
    if _get(actor, "use_dynamic_bsz", False):
        tokens = int(_get(actor, "ppo_max_token_len_per_gpu"))
    else:
        tokens = int(_get(actor, "ppo_micro_batch_size_per_gpu", 1) or 1) * window(verl)
    fp32 = str(_get(engine, "model_dtype", "fp32")) in ("fp32", "float32")
    fused = bool(_get(verl, "actor_rollout_ref.model.use_fused_kernels", False))
    spec = terms.StepSpec(
        arch=a, tokens=tokens, shards=shards, param_bytes=4 if fp32 else 2, optim_bytes=4 if fp32 else 2,
        master_weights=fp32, lm_head_chunk=memplan.FUSED_CHUNK if fused else 0,
        grad_ckpt="layer" if _get(verl, "actor_rollout_ref.model.enable_gradient_checkpointing", True) else "none",
        optimizer_offload=bool(_get(engine, "optimizer_offload", False)),
        offload_policy=bool(_get(engine, "offload_policy", False)))
    return spec, gpus


def plan_inputs(cfg: Any, verl: Any, structure_only: bool = False) -> memplan.PlanInputs:
    spec, gpus = trainer_spec(cfg, verl, arch(cfg, structure_only))
    return memplan.PlanInputs(
        trainer=spec, trainer_gpus=gpus,
        rollout_tp=int(_get(verl, "actor_rollout_ref.rollout.tensor_model_parallel_size", 1)),
        gpu_memory_utilization=float(_get(verl, "actor_rollout_ref.rollout.gpu_memory_utilization", 0.85)),
        window=window(verl), colocated=int(_get(cfg, "topology.rollout_nnodes", 0)) == 0)


def predict(cfg: Any, verl: Any, structure_only: bool = False) -> dict:
    return memplan.predict(plan_inputs(cfg, verl, structure_only))
