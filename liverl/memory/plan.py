"""Plan-level prediction: a composed LiveRL config and the verl config it builds -> one trainer GPU and one rollout
GPU, with the biggest terms and the cheapest fix when either is over its memory.

The verl keys read here, and what verl 0.9.1 does with them:
- actor.ppo_max_token_len_per_gpu (use_dynamic_bsz): the packed tokens of one micro-batch on one GPU
  (verl/workers/actor/dp_actor.py, rearrange_micro_batches by max_token_len).
- actor.fsdp_config.fsdp_size (-1: every trainer GPU) shards parameters, gradients and optimizer states
  (verl/workers/engine/fsdp, create_device_mesh); param_offload / optimizer_offload move them to the CPU between
  phases and back for compute (verl/utils/fsdp_utils.py load_fsdp_optimizer/offload_fsdp_optimizer);
  offload_policy uses FSDP2's CPUOffloadPolicy (the optimizer step runs on the CPU).
- actor.fsdp_config.model_dtype fp32 + mixed_precision.param_dtype bf16: fp32 parameters, bf16 compute.
- model.enable_gradient_checkpointing: per-layer recompute; model.use_fused_kernels: the LM head and log-probs
  without the whole micro-batch's logits (else verl keeps logits for every token of the micro-batch).
- rollout.tensor_model_parallel_size and rollout.gpu_memory_utilization: vLLM's split and budget.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from liverl.memory import arch as archmod
from liverl.memory import rollout as rollmod
from liverl.memory import terms

H200_BYTES = 150_109_880_320  # torch.cuda.get_device_properties(0).total_memory on the H200 that was measured
FUSED_CHUNK = 4096  # tokens per LM-head chunk assumed for verl's fused log-prob kernels (not measured)


def _get(cfg: Any, dotted: str, default: Any = None) -> Any:
    cur = cfg
    for part in dotted.split("."):
        if cur is None or not hasattr(cur, "get"):
            return default
        cur = cur.get(part)
    return default if cur is None else cur


def arch_for(cfg: Any) -> archmod.Arch:
    """The checkpoint's config.json when it is on this disk, else the model group's bundled one."""
    path = Path(str(_get(cfg, "model.path", ""))).expanduser()
    if (path / "config.json").is_file():
        return archmod.load(path)
    name = _get(cfg, "model.arch") or _get(cfg, "model.name")
    bundled = archmod.bundled(str(name))
    if not bundled.is_file():
        raise archmod.ArchError(f"model.arch: no config.json on this disk and none bundled (got: {name}); "
                                f"put the checkpoint at model.path or add liverl/memory/archs/{name}.json")
    return archmod.load(bundled)


def trainer_spec(cfg: Any, verl: Any, a: archmod.Arch) -> tuple[terms.StepSpec, int]:
    actor = _get(verl, "actor_rollout_ref.actor")
    fsdp = _get(actor, "fsdp_config") or _get(actor, "veomni")  # engine=fsdp or engine=veomni
    gpus = int(_get(cfg, "topology.trainer_nnodes", 1)) * int(_get(cfg, "topology.gpus_per_node", 8))
    fsdp_size = int(_get(fsdp, "fsdp_size", -1))
    shards = gpus if fsdp_size in (-1, 0) else min(fsdp_size, gpus)
    if _get(actor, "use_dynamic_bsz", False):
        tokens = int(_get(actor, "ppo_max_token_len_per_gpu"))
    else:
        window = int(_get(verl, "data.max_prompt_length")) + int(_get(verl, "data.max_response_length"))
        tokens = int(_get(actor, "ppo_micro_batch_size_per_gpu", 1) or 1) * window
    fp32 = str(_get(fsdp, "model_dtype", "fp32")) in ("fp32", "float32")
    fused = bool(_get(verl, "actor_rollout_ref.model.use_fused_kernels", False))
    spec = terms.StepSpec(
        arch=a, tokens=tokens, shards=shards, param_bytes=4 if fp32 else 2, optim_bytes=4 if fp32 else 2,
        master_weights=fp32, lm_head_chunk=FUSED_CHUNK if fused else 0,
        grad_ckpt="layer" if _get(verl, "actor_rollout_ref.model.enable_gradient_checkpointing", True) else "none",
        optimizer_offload=bool(_get(fsdp, "optimizer_offload", False)),
        offload_policy=bool(_get(fsdp, "offload_policy", False)))
    return spec, gpus


def biggest(b: dict, n: int = 3) -> list[tuple[str, int]]:
    items = [(k, v) for k, v in b.items() if isinstance(v, int) and k != "lm_head_chunk"]
    return sorted(items, key=lambda kv: -kv[1])[:n]


def cheapest_fix(spec: terms.StepSpec, gpu_bytes: float) -> str:
    """The first single change, cheapest first, that the model predicts fits."""
    tries = [
        ("offload the optimizer to the CPU (optimizer_offload=true)", replace(spec, optimizer_offload=True)),
        ("compute log-probs without whole-sequence logits (use_fused_kernels=true)",
         replace(spec, lm_head_chunk=FUSED_CHUNK)),
        ("shard over twice the trainer GPUs (more trainer nodes, fsdp_size)", replace(spec, shards=spec.shards * 2)),
        ("halve the per-GPU token budget (ppo_max_token_len_per_gpu)", replace(spec, tokens=spec.tokens // 2)),
        ("FSDP2 CPU offload (offload_policy=true)", replace(spec, offload_policy=True, optimizer_offload=True)),
    ]
    for text, s in tries:
        if terms.breakdown(s)["peak_bytes"] <= gpu_bytes:
            return text
    return "no single change fits: combine more trainer GPUs, offload and a smaller per-GPU token budget"


def predict(cfg: Any, verl: Any, gpu_bytes: float = H200_BYTES) -> dict:
    a = arch_for(cfg)
    spec, gpus = trainer_spec(cfg, verl, a)
    step = terms.breakdown(spec)
    tp = int(_get(verl, "actor_rollout_ref.rollout.tensor_model_parallel_size", 1))
    util = float(_get(verl, "actor_rollout_ref.rollout.gpu_memory_utilization", 0.85))
    window = int(_get(verl, "data.max_prompt_length")) + int(_get(verl, "data.max_response_length"))
    roll = rollmod.rollout(a, tp, window, gpu_bytes, util)
    colocated = int(_get(cfg, "topology.rollout_nnodes", 0)) == 0
    # colocated (sync) runs put vLLM to sleep while the trainer steps, so the trainer has the whole GPU
    trainer_fits = step["peak_bytes"] <= gpu_bytes
    return {
        "model": a.name, "params_total": a.total_params(), "gpu_bytes": int(gpu_bytes), "colocated": colocated,
        "trainer": {**step, "gpus": gpus, "shards": spec.shards, "tokens_per_gpu": spec.tokens,
                    "lm_head_chunk": spec.lm_head_chunk, "optimizer_offload": spec.optimizer_offload,
                    "fits": trainer_fits, "biggest": biggest(step["breakdown"]),
                    "fix": None if trainer_fits else cheapest_fix(spec, gpu_bytes)},
        "rollout": {**roll, "tp": tp, "gpu_memory_utilization": util, "window": window,
                    "fix": None if roll["fits"] else "a larger rollout TP (model.rollout_tp) or a higher "
                                                     "gpu_memory_utilization"},
    }


def max_tokens_per_gpu(spec: terms.StepSpec, gpu_bytes: float = H200_BYTES, step: int = 1024) -> int:
    """The largest per-GPU token budget (multiple of `step`) the model predicts fits; 0 if none."""
    lo, hi = 0, 1 << 22
    while hi - lo > step:
        mid = (lo + hi) // 2 // step * step or step
        if terms.breakdown(replace(spec, tokens=mid))["peak_bytes"] <= gpu_bytes:
            lo = mid
        else:
            hi = mid
    return lo
