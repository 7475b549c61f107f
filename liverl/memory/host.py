"""Host (CPU) memory of one trainer node: what verl's FSDP offload keeps there, and the model load.

Per trainer rank (one per GPU), over `shards` ranks (bytes per parameter of the rank's shard):
  optimizer_offload  AdamW's two states (2 x optim_bytes) between steps: offload_fsdp_optimizer moves them with
                     `.to("cpu", non_blocking=True)` (verl/utils/fsdp_utils.py:249), which PyTorch backs with
                     pinned host memory (the comment at fsdp_utils.py:197-201)
  param_offload      the fp32 parameters (the master weights: verl keeps model_dtype fp32) between phases,
                     `model.to("cpu", non_blocking=True)` (fsdp_utils.py:209): pinned as well
  offload_policy     FSDP2's CPUOffloadPolicy(pin_memory=True) (workers/engine/fsdp/transformer_impl.py:463): the
                     parameters, their gradients and the optimizer states live on the host (the step runs there)
Model load (before any state is offloaded): the engine builds the Hugging Face model in fp32 on the CPU
(transformer_impl.py:258-278) on the rank of mesh coordinate 0 only when embeddings are untied, and on every rank
when they are tied (fsdp_utils.get_init_weight_context_manager: use_meta_tensor = not tie_word_embeddings):
4 bytes x every parameter, once per rank that builds it.
Each rank's process also holds torch, CUDA and verl (`PER_RANK_BASE`, an allowance until measured:
benchmarks/memory/verl_points.py --host measures a process's resident memory with optimizer offload on).
"""

from __future__ import annotations

from dataclasses import dataclass

GIB = 2**30
PER_RANK_BASE = 4 * GIB  # allowance: a verl FSDP worker's resident memory besides offloaded state (not measured)
LOAD_BYTES = 4  # fp32 model built on the CPU at load (transformer_impl.py:258-262)


@dataclass(frozen=True)
class HostSpec:
    params: int  # the model's parameter count
    shards: int  # ranks the parameters, gradients and optimizer states are sharded over
    ranks_per_node: int  # trainer ranks (GPUs) on one node
    param_bytes: int = 4
    optim_bytes: int = 4
    optimizer_offload: bool = False
    param_offload: bool = False
    offload_policy: bool = False
    tied: bool = False


def host(s: HostSpec) -> dict:
    """Bytes of host memory one trainer node needs, term by term; `peak_bytes` is the larger of the steady state
    (offloaded state of every rank on the node) and the model load, plus each rank's process."""
    shard = s.params / max(1, s.shards)
    if s.offload_policy:
        per_rank = {"parameters": s.param_bytes * shard, "gradients": s.param_bytes * shard,
                    "optimizer_states": 2 * s.optim_bytes * shard}
    else:
        per_rank = {"parameters": s.param_bytes * shard if s.param_offload else 0,
                    "gradients": 0, "optimizer_states": 2 * s.optim_bytes * shard if s.optimizer_offload else 0}
    steady = s.ranks_per_node * sum(per_rank.values())
    load = LOAD_BYTES * s.params * (s.ranks_per_node if s.tied else 1)
    base = s.ranks_per_node * PER_RANK_BASE
    phase = "steady" if steady >= load else "load"
    return {
        "peak_bytes": int(base + max(steady, load)), "peak_phase": phase, "pinned_bytes": int(steady),
        "breakdown": {**{k: int(v * s.ranks_per_node) for k, v in per_rank.items()}, "model_load": int(load),
                      "processes": int(base)},
        "ranks_per_node": s.ranks_per_node,
    }
