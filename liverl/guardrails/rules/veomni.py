"""The VeOmni engine: settings its backward cannot run with."""

from __future__ import annotations

from collections.abc import Iterable

from liverl.errors import Problem
from liverl.guardrails.framework import FATAL, Ctx, finding, rule


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


MOE_KERNEL_KEY = "actor_rollout_ref.actor.veomni.moe_implementation"
MIXED_KEY = "actor_rollout_ref.actor.veomni.mixed_precision"


@rule("veomni-one-gpu-moe", "VeOmni on one trainer GPU: the MoE group-GEMM kernels get bf16 inputs")
def _veomni_one_gpu_moe(c: Ctx) -> Iterable[Problem]:
    # verl loads the model in fp32 when mixed_precision is on (workers/engine/veomni/transformer_impl.py:337-343,
    # trainer/config/engine/veomni.yaml:17) and VeOmni casts it to bf16 only through FSDP2's MixedPrecisionPolicy,
    # which it applies only when world // (pp x tp) > 1 (veomni 0.1.12 distributed/parallel_state.py:250-255,
    # torch_parallelize.py:480-487, 802-803, 830-838). On one trainer GPU the whole model stays fp32; autocast
    # leaves the residual stream and RMSNorm output fp32, and the Triton group GEMM asserts bf16/fp16 input
    # (ops/kernels/moe/_kernels/kernel/group_gemm.py:188): the GPU host's one-GPU run died there in its first
    # old-log-prob pass (2026-12-07). `eager` is a Python loop over experts that accepts fp32.
    if c.cfg.engine.name != "veomni" or c.trainer_gpus > 1 or not c.is_moe:
        return
    kernel = str(c.v(MOE_KERNEL_KEY, "fused"))
    if c.v(MIXED_KEY, True) and kernel.startswith("fused"):
        yield finding(
            FATAL, f"verl.{MIXED_KEY}", True,
            f"on one trainer GPU VeOmni never wraps the model in FSDP2, so mixed precision never casts it to bf16: "
            f"the fp32 activations reach the MoE kernel (moe_implementation={kernel}), whose Triton group GEMM "
            "asserts bf16/fp16 input in the first log-prob pass",
            f"two or more trainer GPUs (topology=...); or verl.{MIXED_KEY}=false (pure bf16: weights, gradients "
            f"and AdamW states in bf16, no fp32 master: for a smoke, not for training); or verl.{MOE_KERNEL_KEY}"
            "=eager (fp32, a loop over experts: slow)")


FSDP_OFFLOAD_KEY = "actor_rollout_ref.actor.veomni.enable_fsdp_offload"


@rule("veomni-fsdp-offload-flags", "VeOmni with FSDP2 CPU offload: parameter and optimizer offload off")
def _veomni_fsdp_offload_flags(c: Ctx) -> Iterable[Problem]:
    # verl's FSDP engine clears its offload flags under FSDP2's CPUOffloadPolicy (workers/engine/fsdp/
    # transformer_impl.py:459-463); VeOmni's keeps them (veomni/transformer_impl.py:181-182), so its train context
    # still moves the model (param_offload) and the AdamW states (optimizer_offload) onto the GPU at every update
    # (engine/base.py:322-332, veomni/transformer_impl.py:528-532) while the policy keeps the parameters on the CPU:
    # verl's own comment (veomni/transformer_impl.py:183-187) records the DTensor device mismatch a manual move causes
    if c.cfg.engine.name != "veomni" or not c.v(FSDP_OFFLOAD_KEY, False):
        return
    on = [k for k in ("param_offload", "optimizer_offload") if c.v(f"actor_rollout_ref.actor.veomni.{k}", False)]
    if on:
        yield finding(
            FATAL, f"verl.{FSDP_OFFLOAD_KEY}", True,
            f"with FSDP2 CPU offload VeOmni's engine still honours {' and '.join(on)} (verl's FSDP engine turns them "
            "off): each update moves the model or the optimizer states onto the GPU while FSDP2 keeps the parameters "
            "on the CPU, which undoes the offload and breaks FSDP2's placement (verl/workers/engine/veomni/"
            "transformer_impl.py:181-187, 528-532)",
            " ".join(f"topology.{k}=false" for k in on) + " (FSDP2 CPU offload keeps both on the CPU itself)")
