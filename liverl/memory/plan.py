"""Plan-level prediction from plain inputs: one trainer GPU and one rollout GPU, with the biggest terms and the
cheapest fix when either is over its memory; and the largest per-GPU token budget that fits.

This module takes numbers, never a config: `liverl.guardrails.memory_inputs` reads the verl config (and cites what
verl 0.9.1 does with each key) and builds `PlanInputs`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from liverl.memory import arch as archmod
from liverl.memory import rollout as rollmod
from liverl.memory import terms

H200_BYTES = 150_109_880_320  # torch.cuda.get_device_properties(0).total_memory on the H200 that was measured
# What runs out is the caching allocator's reserved memory, and the model predicts allocated bytes. memory-fit keeps
# an explicit headroom instead of predicting fragmentation: a trainer GPU fits when its predicted allocated peak
# x (1 + RESERVED_HEADROOM) is within the GPU. Measured through verl's own step (benchmarks/memory/verl_points.json:
# one H100, sync gpu1, FSDP2, fused kernels off, 16k-token sequences, 2 steps): max_memory_reserved was 39.2%
# (dense 7B width) and 37.5% (Qwen3-30B-A3B shape) above max_memory_allocated at the step-2 peak, 52.8% and 51.3% in
# step 1. The excess was ~20 GiB on both shapes and both steps, and 12.7 GiB (39.2%) on the same MoE shape with
# FSDP2 CPU offload, whose logits are the same 16k x 152k: neither the logits nor the total set it alone. verl's
# per-token fp32 log-softmax rows (594 KiB each, verl/utils/torch_functional.py:199-205) live in the allocator's
# small-block pool, which large blocks do not reuse, beside the log-prob pass's large blocks. verl turns
# expandable_segments on for training (verl/workers/engine_workers.py:827); it did not close the gap. 40% covers
# every stored point (tests/test_memory_verl.py checks each one's reserved peak against it): 35.5% at 32k on an H200,
# 27% on VeOmni and on Qwen3.5's 6k point, whose peak is the optimizer step (run on an H100 under the waiver: 58.6
# GiB x 1.4 is over the 79.2 GiB its probe read; nvidia-smi peaked at 77.6 of 79.6 GiB). The fused path's reserved
# peak is not measured yet and keeps the same headroom.
RESERVED_HEADROOM = 0.40
# FSDP2 CPU offload, as LiveRL's overrides: conf/engine/{fsdp,veomni}.yaml map topology.fsdp2_cpu_offload to
# fsdp_config.offload_policy / veomni.enable_fsdp_offload. verl's FSDP engine turns its offload flags off under
# offload_policy (verl/workers/engine/fsdp/transformer_impl.py:459-463); VeOmni's keeps them and would move the model
# and the states back for every update (veomni/transformer_impl.py:181-182, 528-532), so both go off with it (rule
# veomni-fsdp-offload-flags)
FSDP2_OFFLOAD = "topology.fsdp2_cpu_offload=true topology.optimizer_offload=false topology.param_offload=false"



@dataclass(frozen=True)
class PlanInputs:
    """One plan as the model sees it: the trainer's training step on one GPU, and the rollout replica."""

    trainer: terms.StepSpec
    trainer_gpus: int
    rollout_tp: int
    gpu_memory_utilization: float
    window: int  # prompt + response: one full-window sequence
    colocated: bool  # sync runs: vLLM sleeps while the trainer steps, so the trainer has the whole GPU
    gpu_bytes: float = H200_BYTES
    kv_cache_bytes: float | None = None  # vLLM's kv_cache_memory_bytes: a fixed KV cache instead of the utilization's


def arch_for(model_path: str, arch_name: str) -> archmod.Arch:
    """The checkpoint's config.json when it is on this disk, else the bundled one named `arch_name`."""
    path = Path(str(model_path or "")).expanduser()
    if model_path and (path / "config.json").is_file():
        return archmod.load(path)
    bundled = archmod.bundled(str(arch_name))
    if not bundled.is_file():
        raise archmod.ArchError(f"model.arch: no config.json on this disk and none bundled (got: {arch_name}); "
                                f"put the checkpoint at model.path or add liverl/memory/archs/{arch_name}.json")
    return archmod.load(bundled)


def biggest(b: dict, n: int = 3) -> list[tuple[str, int]]:
    items = [(k, v) for k, v in b.items() if isinstance(v, int) and k != "lm_head_chunk"]
    return sorted(items, key=lambda kv: -kv[1])[:n]


def fix_candidates(spec: terms.StepSpec, gpu_bytes: float, min_tokens: int = 0) -> list[tuple[str, terms.StepSpec]]:
    """Single changes, cheapest first: offload, a chunked log-prob path, more trainer GPUs, a smaller per-GPU token
    budget (never below `min_tokens`: verl asserts one full-window sequence fits, utils/seqlen_balancing.py:384),
    FSDP2 offload. Changes that would change nothing are left out."""
    out = []
    if not (spec.optimizer_offload or spec.offload_policy):  # FSDP2 offload keeps the states on the CPU already
        out.append(("offload the optimizer to the CPU (topology.optimizer_offload=true)",
                    replace(spec, optimizer_offload=True)))
    if spec.logprob_entropy in ("full", "eager") and spec.remove_padding:
        out.append(("chunk the old-log-prob entropy (entropy_from_logits_with_chunking=true)",
                    replace(spec, logprob_entropy="chunked")))
    if spec.logprob_entropy == "eager" and not spec.remove_padding:  # the chunking key is read only with it
        out.append(("remove padding, so the old-log-prob entropy is chunked (model.use_remove_padding=true and "
                    "entropy_from_logits_with_chunking=true)",
                    replace(spec, remove_padding=True, logprob_entropy="chunked")))
    if spec.logits == "materialised" and spec.fused_possible:
        out.append(("log-probs without whole-micro-batch logits (use_fused_kernels=true)",
                    replace(spec, logits="fp32", lm_head_chunk=512, logprob_entropy="fused" if spec.logprob_entropy
                            else "")))
    out.append(("shard over twice the trainer GPUs (more trainer nodes, fsdp_size)",
                replace(spec, shards=spec.shards * 2)))
    most = max_tokens_per_gpu(spec, gpu_bytes)
    if max(1, min_tokens) <= most < spec.tokens:
        out.append((f"a per-GPU token budget of at most {most} (ppo_max_token_len_per_gpu and the log-prob budget)",
                    replace(spec, tokens=most, logprob_tokens=min(spec.logprob_tokens, most))))
    if not spec.offload_policy and spec.fsdp2_offload_possible:
        out.append((f"FSDP2 CPU offload ({FSDP2_OFFLOAD})",
                    replace(spec, offload_policy=True, optimizer_offload=False)))
    return out


def cheapest_fix(spec: terms.StepSpec, gpu_bytes: float, min_tokens: int = 0) -> str:
    """The first single change, cheapest first, that the model predicts fits."""
    for text, s in fix_candidates(spec, gpu_bytes, min_tokens):
        if terms.breakdown(s)["peak_bytes"] <= gpu_bytes:
            return text
    return "no single change fits: combine more trainer GPUs, offload and a smaller per-GPU token budget"


def rollout_fix(a: archmod.Arch, p: PlanInputs) -> str:
    for tp in (p.rollout_tp * 2, p.rollout_tp * 4):
        if tp <= 8 and rollmod.rollout(a, tp, p.window, p.gpu_bytes, p.gpu_memory_utilization,
                                       p.kv_cache_bytes)["fits"]:
            return f"a larger rollout TP: {tp} (model.rollout_tp={tp})"
    if p.kv_cache_bytes:
        return ("a larger KV cache (verl.actor_rollout_ref.rollout.engine_kwargs.vllm.kv_cache_memory_bytes), a larger "
                "rollout TP (model.rollout_tp), or a shorter window")
    return "a larger rollout TP (model.rollout_tp), a higher gpu_memory_utilization, or a shorter window"


def trainer_budget(gpu_bytes: float) -> float:
    """The allocated bytes a trainer GPU may peak at: its memory less the allocator headroom."""
    return gpu_bytes / (1 + RESERVED_HEADROOM)


def predict(p: PlanInputs) -> dict:
    spec, a = p.trainer, p.trainer.arch
    step = terms.breakdown(spec)
    roll = rollmod.rollout(a, p.rollout_tp, p.window, p.gpu_bytes, p.gpu_memory_utilization, p.kv_cache_bytes)
    budget = trainer_budget(p.gpu_bytes)
    trainer_fits = step["peak_bytes"] <= budget
    return {
        "model": a.name, "params_total": a.total_params(), "gpu_bytes": int(p.gpu_bytes), "colocated": p.colocated,
        "trainer": {**step, "gpus": p.trainer_gpus, "shards": spec.shards, "tokens_per_gpu": spec.tokens,
                    "lm_head_chunk": spec.lm_head_chunk, "optimizer_offload": spec.optimizer_offload,
                    "fsdp2_cpu_offload": spec.offload_policy, "accumulation": spec.accumulation,
                    "fits": trainer_fits, "biggest": biggest(step["breakdown"]), "budget_bytes": int(budget),
                    "reserved_headroom": RESERVED_HEADROOM,
                    "fix": None if trainer_fits else cheapest_fix(spec, budget, min(spec.tokens, p.window))},
        "rollout": {**roll, "tp": p.rollout_tp, "gpu_memory_utilization": p.gpu_memory_utilization,
                    "kv_cache_bytes": int(p.kv_cache_bytes) if p.kv_cache_bytes else None,
                    "window": p.window, "fix": None if roll["fits"] else rollout_fix(a, p)},
    }


def max_tokens_per_gpu(spec: terms.StepSpec, gpu_bytes: float = H200_BYTES, step: int = 1024) -> int:
    """The largest per-GPU token budget (multiple of `step`) the model predicts fits, the log-prob pass's budget
    moving with it; 0 if none."""
    lo, hi = 0, 1 << 22
    while hi - lo > step:
        mid = (lo + hi) // 2 // step * step or step
        if terms.breakdown(replace(spec, tokens=mid, logprob_tokens=0))["peak_bytes"] <= gpu_bytes:
            lo = mid
        else:
            hi = mid
    return lo
