"""The VeOmni engine: settings its backward cannot run with."""

from __future__ import annotations

from collections.abc import Iterable

from liverl.errors import Problem
from liverl.guardrails.framework import FATAL, WARN, Ctx, finding, rule
from liverl.guardrails.verl_keys import FSDP2_OFFLOAD_KEYS, MOE_IMPL_KEY, fsdp2_offload_applies, fsdp2_wraps


@rule("veomni-fused-offload", "VeOmni: fused kernels and activation offload off")
def _veomni_fused(c: Ctx) -> Iterable[Problem]:
    if c.cfg.engine.name != "veomni":
        return
    for key in ("actor_rollout_ref.model.use_fused_kernels", "actor_rollout_ref.model.enable_activation_offload"):
        if c.v(key):
            yield finding(
                FATAL,
                f"verl.{key}",
                True,
                "VeOmni's backward crashes with 'storage of size 0' after the FSDP2 reshard when this is on",
                f"verl.{key}=false",
            )


MIXED_KEY = "actor_rollout_ref.actor.veomni.mixed_precision"


@rule("veomni-one-gpu-moe", "VeOmni on one trainer GPU: the MoE group-GEMM kernels get bf16 inputs")
def _veomni_one_gpu_moe(c: Ctx) -> Iterable[Problem]:
    # verl loads the model in fp32 when mixed_precision is on (workers/engine/veomni/transformer_impl.py:337-343,
    # trainer/config/engine/veomni.yaml:17) and VeOmni casts it to bf16 only through FSDP2's MixedPrecisionPolicy
    # (veomni 0.1.12 torch_parallelize.py:480-487, 802-803), which it applies only on two or more trainer GPUs
    # (verl_keys.fsdp2_wraps). On one trainer GPU the whole model stays fp32; autocast
    # leaves the residual stream and RMSNorm output fp32, and the Triton group GEMM asserts bf16/fp16 input
    # (ops/kernels/moe/_kernels/kernel/group_gemm.py:188): the GPU host's one-GPU run died there in its first
    # old-log-prob pass (2026-12-07). `eager` is a Python loop over experts that accepts fp32.
    if fsdp2_wraps(c.v("actor_rollout_ref.actor.strategy"), c.trainer_gpus) or not c.is_moe:
        return
    kernel = str(c.v(MOE_IMPL_KEY, "fused"))
    if c.v(MIXED_KEY, True) and kernel.startswith("fused"):
        yield finding(
            FATAL, f"verl.{MIXED_KEY}", True,
            f"on one trainer GPU VeOmni never wraps the model in FSDP2, so mixed precision never casts it to bf16: "
            f"the fp32 activations reach the MoE kernel (moe_implementation={kernel}), whose Triton group GEMM "
            "asserts bf16/fp16 input in the first log-prob pass",
            f"two or more trainer GPUs (topology=...); or verl.{MIXED_KEY}=false (pure bf16: weights, gradients "
            f"and AdamW states in bf16, no fp32 master: for a smoke, not for training); or verl.{MOE_IMPL_KEY}"
            "=eager (fp32, a loop over experts: slow)")


FSDP_OFFLOAD_KEY = FSDP2_OFFLOAD_KEYS["veomni"]


@rule("veomni-fsdp-offload-flags", "VeOmni with FSDP2 CPU offload: parameter and optimizer offload off")
def _veomni_fsdp_offload_flags(c: Ctx) -> Iterable[Problem]:
    # verl's FSDP engine clears its offload flags under FSDP2's CPUOffloadPolicy (workers/engine/fsdp/
    # transformer_impl.py:459-463); VeOmni's keeps them (veomni/transformer_impl.py:181-182), and its to() has no
    # check on the policy (528-532): the train and eval contexts (engine/base.py:314-332) still move the model onto the
    # GPU (param_offload), which verl's own comment says breaks FSDP2's placement (transformer_impl.py:183-187), and
    # the train context the AdamW states (optimizer_offload), which then sit on the GPU beside parameters and
    # gradients FSDP2 keeps on the CPU. The actor only: LiveRL never sets the ref's enable_fsdp_offload
    if c.cfg.engine.name != "veomni" or not c.v(FSDP_OFFLOAD_KEY, False):
        return
    on = [k for k in ("param_offload", "optimizer_offload") if c.v(f"actor_rollout_ref.actor.veomni.{k}", False)]
    if not on:
        return
    harm = []
    if "param_offload" in on:
        harm.append("param_offload moves the model onto the GPU at every train and log-prob pass, against FSDP2's own "
                    "placement (the DTensor device mismatch verl's comment records)")
    if "optimizer_offload" in on:
        harm.append("optimizer_offload moves AdamW's states onto the GPU for every update while FSDP2 keeps the "
                    "parameters and gradients on the CPU, so the optimizer step mixes devices")
    yield finding(
        FATAL, f"verl.{FSDP_OFFLOAD_KEY}", True,
        "verl's VeOmni engine keeps its offload flags under FSDP2 CPU offload (its FSDP engine turns them off): "
        + "; ".join(harm) + " (verl/workers/engine/veomni/transformer_impl.py:181-187, 528-532)",
        " ".join(f"topology.{k}=false" for k in on) + " (FSDP2 CPU offload keeps both on the CPU itself; where set "
        "directly: " + " ".join(f"verl.actor_rollout_ref.actor.veomni.{k}=false" for k in on) + ")")


@rule("veomni-one-gpu-fsdp-offload", "VeOmni on one trainer GPU: FSDP2 CPU offload does nothing")
def _veomni_one_gpu_fsdp_offload(c: Ctx) -> Iterable[Problem]:
    # verl_keys.fsdp2_wraps says why; verl's engine still skips its own offload moves
    # (veomni/transformer_impl.py:188, 596, 631): the whole model, its gradients and AdamW's states stay on the one
    # GPU, and memory-fit judges them there (memory_inputs.trainer_spec)
    asked = c.cfg.engine.name == "veomni" and c.v(FSDP_OFFLOAD_KEY, False)
    if not asked or fsdp2_offload_applies(c.verl, c.trainer_gpus):
        return
    yield finding(
        WARN, f"verl.{FSDP_OFFLOAD_KEY}", True,
        "on one trainer GPU VeOmni never wraps the model in FSDP2, so its CPU offload policy is never applied: "
        "parameters, gradients and optimizer states stay on the GPU, and memory-fit judges them there",
        "topology.fsdp2_cpu_offload=false (it does nothing here); two or more trainer GPUs to offload; or "
        "engine=fsdp, whose FSDP2 wraps one GPU too")
