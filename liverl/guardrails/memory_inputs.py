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
- The log-prob logits, per engine (`logits_path`): see there.
- rollout.tensor_model_parallel_size and rollout.gpu_memory_utilization: vLLM's split and budget.
"""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf

from liverl.guardrails.verl_keys import fsdp2_offload_applies, fsdp2_wraps, window
from liverl.memory import host as hostmod
from liverl.memory import plan as memplan
from liverl.memory import rollout as rollmod
from liverl.memory import terms
from liverl.memory.arch import Arch, ArchError


def _get(cfg: Any, dotted: str, default: Any = None) -> Any:
    value = OmegaConf.select(cfg, dotted, default=None, throw_on_resolution_failure=False)
    return default if value is None else value


def arch(cfg: Any, structure_only: bool = False) -> Arch:
    """The checkpoint's config.json when it is read here, else the model group's bundled one (`model.arch`)."""
    path = "" if structure_only else str(_get(cfg, "model.path", ""))
    return memplan.arch_for(path, str(_get(cfg, "model.arch") or _get(cfg, "model.name")))


FUSED_KEY = "actor_rollout_ref.model.use_fused_kernels"
STRATEGY_KEY = "actor_rollout_ref.actor.strategy"


def tied_embeddings(cfg: Any, structure_only: bool = False) -> bool | None:
    """tie_word_embeddings of the checkpoint's config.json (or the model group's bundled one); None if unknown."""
    try:
        return arch(cfg, structure_only).tied
    except ArchError:
        return None


FSDP_FUSED_CHUNK = 512  # FusedLinearForPPO(chunk_size=512): verl/utils/experimental/torch_functional.py:221,
# built without a chunk size by verl/models/transformers/qwen3_5.py:586 (and dense_common.py for Qwen2/Qwen3)
VEOMNI_FUSED_CHUNK = 4096  # VeOmni's chunk_logprobs: VeOmni is not installed here, its chunk is assumed, not read


def logits_path(verl: Any) -> dict:
    """How verl 0.9.1 computes log-probs (and the old-log-prob pass's entropy) on this plan's engine.

    FSDP, use_fused_kernels=true: the model's forward is patched (verl/models/transformers/monkey_patch.py:270-290)
      to FusedLinearForPPO, fp32 log-softmax and entropy over 512-token chunks recomputed in backward
      (verl/utils/experimental/torch_functional.py:96-151): the measured "fp32" chunked term.
    VeOmni, use_fused_kernels=true (with use_remove_padding): VeOmni's chunk_logprobs through ForCausalLMLoss with
      return_log_probs=True (verl/workers/engine/veomni/transformer_impl.py:848-853): chunked, chunk assumed.
    Either engine, use_fused_kernels=false: the HF LM head materialises the whole micro-batch's bf16 logits
      (verl/workers/engine/fsdp/transformer_impl.py:1383; VeOmniEngineWithLMHead inherits this
      prepare_model_outputs), log-probs by logprobs_from_logits (fsdp/transformer_impl.py:1424-1432, 1520;
      verl/utils/torch_functional.py:73), and the old-log-prob pass's entropy by entropy_from_logits: chunked when
      the engine's entropy_from_logits_with_chunking is set and remove-padding is on (fsdp/transformer_impl.py:
      1397-1405; torch_functional.py:248), torch.compile'd when use_torch_compile is on (transformer_impl.py:
      183-187), and eager on the whole micro-batch without remove-padding, which never reads the chunking key
      (transformer_impl.py:1489-1492).
    """
    actor = _get(verl, "actor_rollout_ref.actor")
    veomni = _get(actor, "strategy") == "veomni"
    engine = _get(actor, "veomni") if veomni else _get(actor, "fsdp_config")
    fused = bool(_get(verl, "actor_rollout_ref.model.use_fused_kernels", False))
    if veomni and not _get(verl, "actor_rollout_ref.model.use_remove_padding", True):
        fused = False  # VeOmni's fused path needs remove-padding (transformer_impl.py:849)
    if fused:
        chunk = VEOMNI_FUSED_CHUNK if veomni else FSDP_FUSED_CHUNK
        return {"logits": "fp32", "lm_head_chunk": chunk, "logprob_entropy": "fused"}
    rmpad = bool(_get(verl, "actor_rollout_ref.model.use_remove_padding", True))
    if not rmpad:
        entropy = "eager"
    elif _get(engine, "entropy_from_logits_with_chunking", False):
        entropy = "chunked"
    else:
        entropy = "full" if _get(engine, "use_torch_compile", True) else "eager"
    return {"logits": "materialised", "lm_head_chunk": 0, "logprob_entropy": entropy}


def attn_implementation(cfg: Any, verl: Any) -> str:
    """The trainer's attention kernel: verl reads override_config.attn_implementation, default flash_attention_2
    (verl/workers/config/model.py:185); engine=veomni and the model group name it as model.attn_implementation.
    flash_attention_2 needs flash-attn installed, and with it verl's log-probs use flash-attn's cross-entropy
    (verl/utils/torch_functional.py:34-39, 95): the memory model's `flash_ce`."""
    impl = _get(verl, "actor_rollout_ref.model.override_config.attn_implementation") or _get(
        cfg, "model.attn_implementation", "flash_attention_2")
    return str(impl)


def sync_bucket_bytes(verl: Any) -> int:
    """The weight sync's buffers on a trainer GPU. verl's default `naive` checkpoint engine sends through vLLM's
    BucketedWeightSender: one torch.empty of update_weights_bucket_megabytes on the actor's GPU
    (verl/workers/rollout/vllm_rollout/vllm_rollout.py:235-240, bucketed_weight_transfer.py:183), freed after each
    sync (:201-221); the nccl and nixl engines keep a send and a receive buffer of that size
    (verl/checkpoint_engine/nccl_checkpoint_engine.py:124-125, 169-173)."""
    engine = _get(verl, "actor_rollout_ref.rollout.checkpoint_engine")
    megabytes = int(_get(engine, "update_weights_bucket_megabytes", 2048) or 0)
    return megabytes * 2**20 * (1 if str(_get(engine, "backend", "naive")) == "naive" else 2)


def accumulates(verl: Any, gpus: int, tokens: int) -> bool:
    """Whether a trainer GPU's mini-batch takes more than one micro-batch at full windows (gradient accumulation).
    verl scales ppo_mini_batch_size by rollout.n and splits it over the data-parallel ranks (GPUs / sequence
    parallel); dynamic batches pack up to ppo_max_token_len_per_gpu x SP tokens (verl/workers/engine_workers.py
    train_batch). Unknown: True, the larger prediction."""
    actor = _get(verl, "actor_rollout_ref.actor")
    mini, n = _get(actor, "ppo_mini_batch_size"), _get(verl, "actor_rollout_ref.rollout.n", 1)
    if mini is None:
        return True
    sp = int(_get(actor, "ulysses_sequence_parallel_size", 1) or 1)
    per_rank = -(-int(mini) * int(n) // max(1, gpus // sp))
    if _get(actor, "use_dynamic_bsz", False):
        return per_rank * window(verl) > tokens * sp
    return per_rank > int(_get(actor, "ppo_micro_batch_size_per_gpu", 1) or 1)


def trainer_spec(cfg: Any, verl: Any, a: Arch) -> tuple[terms.StepSpec, int]:
    """One trainer GPU's training step, and how many trainer GPUs there are."""
    actor = _get(verl, "actor_rollout_ref.actor")
    veomni = _get(actor, "strategy") == "veomni"
    engine = _get(actor, "veomni") if veomni else _get(actor, "fsdp_config")
    gpus = int(_get(verl, "trainer.nnodes", 1)) * int(_get(verl, "trainer.n_gpus_per_node", 8))
    fsdp_size = int(_get(engine, "fsdp_size", -1))
    shards = gpus if fsdp_size in (-1, 0) else min(fsdp_size, gpus)
    if _get(actor, "use_dynamic_bsz", False):
        tokens = int(_get(actor, "ppo_max_token_len_per_gpu"))
    else:
        tokens = int(_get(actor, "ppo_micro_batch_size_per_gpu", 1) or 1) * window(verl)
    if veomni:  # fp32 load iff mixed_precision (veomni/transformer_impl.py:337-343)
        fp32 = bool(_get(engine, "mixed_precision", True))
    else:
        fp32 = str(_get(engine, "model_dtype", "fp32")) in ("fp32", "float32")
    lp_tokens = int(_get(verl, "actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu", tokens) or tokens)
    spec = terms.StepSpec(
        arch=a, tokens=tokens, shards=shards, param_bytes=4 if fp32 else 2, optim_bytes=4 if fp32 else 2,
        master_weights=fp32, **logits_path(verl), logprob_tokens=lp_tokens if _get(actor, "use_dynamic_bsz") else 0,
        grad_ckpt="layer" if _get(verl, "actor_rollout_ref.model.enable_gradient_checkpointing", True) else "none",
        optimizer_offload=bool(_get(engine, "optimizer_offload", False)),
        # FSDP2's CPUOffloadPolicy: VeOmni's key is enable_fsdp_offload (veomni/transformer_impl.py:361). FSDP's
        # engine clears its offload flags under it (fsdp/transformer_impl.py:459-463); VeOmni's keeps
        # optimizer_offload (transformer_impl.py:182) and its train context still loads the states onto the GPU
        # (528-532), so there the states are judged as plain optimizer offload leaves them. On one trainer GPU VeOmni's
        # offload does nothing (verl_keys.fsdp2_wraps)
        offload_policy=fsdp2_offload_applies(verl, gpus) and not (veomni and _get(engine, "optimizer_offload", False)),
        fsdp2_offload_possible=fsdp2_wraps(_get(actor, "strategy"), gpus),
        # no fused path to advise: FSDP2 with an untied lm_head (rule fsdp-fused-untied), or VeOmni, whose backward
        # crashes with it (rule veomni-fused-offload)
        fused_possible=not (veomni or (_get(actor, "strategy") == "fsdp2" and a.tied is False)),
        remove_padding=bool(_get(verl, "actor_rollout_ref.model.use_remove_padding", True)),
        flash_ce=attn_implementation(cfg, verl).startswith("flash_attention"),
        lm_head_unit=_get(actor, "strategy") == "fsdp2",  # verl/utils/fsdp_utils.py:549-571 (untied only)
        sync_bucket_bytes=sync_bucket_bytes(verl), accumulation=accumulates(verl, gpus, tokens),
        # FSDP's engine only: VeOmni's forward_backward_batch has no gradient-sync context
        unsharded_grads=not veomni and bool(_get(engine, "use_no_sync_for_gradient_accumulation", False)))
    return spec, gpus


def gpu_bytes(cfg: Any) -> float:
    """The memory of the GPU the plan is judged against: the `gpu` group's (conf/gpu/*.yaml; h200 by default)."""
    return float(_get(cfg, "gpu.memory_bytes", memplan.H200_BYTES))


def plan_inputs(cfg: Any, verl: Any, structure_only: bool = False, gpu: float | None = None) -> memplan.PlanInputs:
    """`gpu`: judge against these bytes per GPU instead of the gpu group's (a launch: what the probe found)."""
    spec, gpus = trainer_spec(cfg, verl, arch(cfg, structure_only))
    return memplan.PlanInputs(
        trainer=spec, trainer_gpus=gpus, gpu_bytes=gpu or gpu_bytes(cfg),
        rollout_tp=int(_get(verl, "actor_rollout_ref.rollout.tensor_model_parallel_size", 1)),
        gpu_memory_utilization=float(_get(verl, "actor_rollout_ref.rollout.gpu_memory_utilization", 0.85)),
        window=window(verl), colocated=int(_get(cfg, "topology.rollout_nnodes", 0)) == 0,
        kv_cache_bytes=_get(verl, "actor_rollout_ref.rollout.engine_kwargs.vllm.kv_cache_memory_bytes", None))


def predict(cfg: Any, verl: Any, structure_only: bool = False, gpu: float | None = None) -> dict:
    return predict_from(cfg, plan_inputs(cfg, verl, structure_only, gpu), probed=bool(gpu))


def predict_from(cfg: Any, inputs: memplan.PlanInputs, probed: bool = False) -> dict:
    """The memory model's prediction for these inputs, naming the GPU judged against (the plan's group, or probed)."""
    out = memplan.predict(inputs)
    out["gpu"] = "probed" if probed else str(_get(cfg, "gpu.name", "h200"))
    return out


def host_prediction(cfg: Any, verl: Any, structure_only: bool = False, node_bytes: float | None = None) -> dict:
    """Host memory of one trainer node (liverl.memory.host) against the node's memory: `node_bytes` (a launch: the
    smallest node the probe found), else `cluster.host_memory_gib` (plans), else not judged (`fits` None)."""
    a = arch(cfg, structure_only)
    spec, _ = trainer_spec(cfg, verl, a)
    engine_key = "veomni" if _get(verl, "actor_rollout_ref.actor.strategy") == "veomni" else "fsdp_config"
    engine = _get(verl, f"actor_rollout_ref.actor.{engine_key}")
    out = hostmod.host(hostmod.HostSpec(
        tensors=a.tensors(), shards=spec.shards, ranks_per_node=int(_get(verl, "trainer.n_gpus_per_node", 8)),
        param_bytes=spec.param_bytes, optim_bytes=spec.optim_bytes, optimizer_offload=spec.optimizer_offload,
        param_offload=bool(_get(engine, "param_offload", False)), offload_policy=spec.offload_policy, tied=a.tied))
    gib = _get(cfg, "cluster.host_memory_gib")
    node = node_bytes or (float(gib) * 2**30 if gib else None)
    out["node_bytes"] = int(node) if node else None
    out["fits"] = None if node is None else out["peak_bytes"] + out["headroom_bytes"] <= node
    out["offload"] = bool(spec.optimizer_offload or spec.offload_policy or _get(engine, "param_offload", False))
    return out


def summary_line(cfg: Any, verl: Any, structure_only: bool = False) -> str:
    """summary.txt's `memory` line: the predicted peak of one trainer GPU and one rollout GPU."""
    try:
        inputs = plan_inputs(cfg, verl, structure_only)
    except ArchError as exc:
        return f"not predicted: {exc}"
    p = predict_from(cfg, inputs)
    t, r, gib = p["trainer"], p["rollout"], 2**30
    return (f"predicted trainer GPU peak {t['peak_bytes'] / gib:.1f} of {t['budget_bytes'] / gib:.1f} GiB ({p['gpu']} "
            f"{p['gpu_bytes'] / gib:.1f} GiB less {t['reserved_headroom']:.0%} allocator headroom) "
            f"({t['peak_phase']}, {t['tokens_per_gpu']} tokens/GPU{'' if t['fits'] else ', OVER'}); rollout GPU "
            f"{r['peak_bytes'] / gib:.1f} GiB at {rollmod.kv_budget(r)}, "
            f"{r['full_window_sequences']} full-window sequences per TP-{r['tp']} replica (python -m liverl.memory)")
