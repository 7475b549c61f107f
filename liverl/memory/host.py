"""Host (CPU) memory of one trainer node: what verl's FSDP offload keeps there, the model load, and the processes.

Per trainer rank (one per GPU), each parameter tensor sharded on dim 0 over `shards` ranks (FSDP2's Shard(0)):
  optimizer_offload  AdamW's two states per parameter (exp_avg, exp_avg_sq: optim_bytes each) between steps:
                     offload_fsdp_optimizer moves each with `.to("cpu", non_blocking=True)` (verl/utils/
                     fsdp_utils.py:249), which PyTorch backs with pinned host memory (the comment at :197-201)
  param_offload      the fp32 parameters (the master weights: verl keeps model_dtype fp32) between phases,
                     `model.to("cpu", non_blocking=True)` (fsdp_utils.py:209): pinned as well
  offload_policy     FSDP2's CPUOffloadPolicy(pin_memory=True) (workers/engine/fsdp/transformer_impl.py:463): the
                     parameters and their gradients pinned on the host; the optimizer states are made there
                     (zeros_like of a CPU tensor: not pinned) and the step runs there
Pinned memory comes from PyTorch's caching host allocator, which rounds every block up to a power of two and keeps
freed blocks for reuse, never returning them to the OS (aten/src/ATen/core/CachingHostAllocator.h: `PowerOf2Ceil`
under the default pinned_max_round_threshold, "Round up the allocation to the nearest power of two"): each offloaded
tensor holds the next power of two of its bytes, up to twice them, for the rest of the run. Measured on the GPU host
(tests/test_memory_verl.py): the node's used memory rose 23.2 GiB at the first optimizer offload of a 1.56B-parameter
shard, against 22.6 GiB rounded and 11.6 GiB unrounded.
Model load (before any state is offloaded): the engine builds the Hugging Face model in fp32 on the CPU
(transformer_impl.py:258-278) on the rank of mesh coordinate 0 only when embeddings are untied, and on every rank
when they are tied (fsdp_utils.get_init_weight_context_manager: use_meta_tensor = not tie_word_embeddings):
4 bytes x every parameter, once per rank that builds it.
Processes: the node's used memory beside any offloaded state, measured on a one-GPU colocated node (LiveRL's plan:
one trainer rank, one vLLM server, the agent-loop workers, the task runner, Ray): NODE_PROCESSES; each further GPU of
the node adds a trainer rank and a rollout worker, PER_RANK_BASE each (an allowance: one GPU host cannot split it).
One reading: the step-2 reading of a run without offload on the H200 host, where step 1 read the same; two earlier
no-offload runs on an H100 host read 12-22 GiB more after step 1 than after step 2 (43.1 -> 30.9, 53.4 -> 31.7 GiB),
a transient not attributed (no baseline was sampled there) and not counted here.
The processes depend on the model, which this constant does not follow. The FSDP2-offload point
(moe30b_fsdp_16k_fsdp2off, an H100, 2026-12-08) peaked 10.34 GiB above its prediction (the sampler's peak): what
offload added (its step-end reading less the same shape's run without offload) was 1.75 GiB over the state terms
(35.95 vs 34.2), the node's processes read about 6.24 GiB more at step end on this MoE shape than on the dense one
(read without offload), and 2.35 GiB was a rise within the step above its end. None of it attributed: the trainer's
fp32 load is freed (a CPU load of this checkpoint kept 1.2 GiB after `del`). So host-memory-fit keeps
PROCESS_HEADROOM per node beside the prediction, as memory-fit keeps the allocator's headroom on the GPU. It is
calibrated on that one node with one trainer rank; whether the excess grows with the ranks of an 8-GPU node is not
measured.
"""

from __future__ import annotations

from dataclasses import dataclass

GIB = 2**30
NODE_PROCESSES = int(29.2 * GIB)  # measured: a one-GPU colocated sync run's node, no offload (verl_points.json)
PER_RANK_BASE = 4 * GIB  # allowance: one more trainer rank and its colocated rollout worker on the node
LOAD_BYTES = 4  # fp32 model built on the CPU at load (transformer_impl.py:258-262)
PROCESS_HEADROOM = int(10.5 * GIB)  # the largest reading over the prediction (10.34 GiB, one rank: above)


def pow2(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


def shard_bytes(ts: tuple[tuple[int, int, int], ...], shards: int, width: int, pinned: bool) -> int:
    """One rank's bytes of these tensors at `width` bytes per element: each a dim-0 shard (rank 0's, the largest),
    a power of two when pinned."""
    total = 0
    for count, dim0, row in ts:
        n = -(-dim0 // max(1, shards)) * row * width
        total += count * (pow2(n) if pinned else n)
    return total


@dataclass(frozen=True)
class HostSpec:
    tensors: tuple[tuple[int, int, int], ...]  # the model's parameter tensors (Arch.tensors)
    shards: int  # ranks the parameters, gradients and optimizer states are sharded over
    ranks_per_node: int  # trainer ranks (GPUs) on one node
    param_bytes: int = 4
    optim_bytes: int = 4
    optimizer_offload: bool = False
    param_offload: bool = False
    offload_policy: bool = False
    tied: bool = False

    @property
    def params(self) -> int:
        return sum(c * d * r for c, d, r in self.tensors)


def host(s: HostSpec) -> dict:
    """Bytes of host memory one trainer node needs, term by term; `peak_bytes` is the larger of the steady state
    (offloaded state of every rank on the node) and the model load, plus the node's processes."""
    def state(width: int, pinned: bool = True) -> int:
        return shard_bytes(s.tensors, s.shards, width, pinned)

    if s.offload_policy:
        per_rank = {"parameters": state(s.param_bytes), "gradients": state(s.param_bytes),
                    "optimizer_states": 2 * state(s.optim_bytes, pinned=False)}
        pinned = per_rank["parameters"] + per_rank["gradients"]
    else:
        per_rank = {"parameters": state(s.param_bytes) if s.param_offload else 0, "gradients": 0,
                    "optimizer_states": 2 * state(s.optim_bytes) if s.optimizer_offload else 0}
        pinned = per_rank["parameters"] + per_rank["optimizer_states"]
    steady = s.ranks_per_node * sum(per_rank.values())
    load = LOAD_BYTES * s.params * (s.ranks_per_node if s.tied else 1)
    base = NODE_PROCESSES + max(0, s.ranks_per_node - 1) * PER_RANK_BASE
    phase = "steady" if steady >= load else "load"
    return {
        "peak_bytes": int(base + max(steady, load)), "peak_phase": phase,
        "pinned_bytes": int(s.ranks_per_node * pinned),
        "breakdown": {**{k: int(v * s.ranks_per_node) for k, v in per_rank.items()}, "model_load": int(load),
                      "processes": int(base)},
        "ranks_per_node": s.ranks_per_node, "headroom_bytes": PROCESS_HEADROOM,
    }
