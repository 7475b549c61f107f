"""Sequence parallel and topology arithmetic: meshes that can be built on the GPUs there are."""

from __future__ import annotations

from collections.abc import Iterable

from liverl.errors import Problem
from liverl.guardrails.framework import FATAL, SKIP, Ctx, finding, rule
from liverl.guardrails.verl_keys import SP_KEYS


@rule("linear-attention-sp", "Qwen3.5 (GatedDeltaNet): Ulysses SP is 1 on every key verl reads (fixed)", waivable=False)
def _linear_attention_sp(c: Ctx) -> Iterable[Problem]:
    if not c.linear_attention:
        return
    wrong = {k: c.v(k) for k in SP_KEYS if c.v(k, 1) != 1}
    if wrong:
        from_knob = c.cfg.sp_size != 1
        yield finding(
            FATAL,
            "sp_size" if from_knob else f"verl.{next(iter(wrong))}",
            c.cfg.sp_size if from_knob else next(iter(wrong.values())),
            f"must be 1 for {c.cfg.model.name}: Ulysses sequence parallel corrupts the GatedDeltaNet "
            "(linear-attention) layers, silently (wrong activations, no crash); verl would read SP>1 from "
            f"{', '.join(wrong)}",
            "keep sp_size=1 (and leave verl's SP keys alone); fit long windows with more trainer GPUs (topology=3node, "
            "fsdp_size) and FSDP2 CPU offload (topology.fsdp2_cpu_offload)",
        )


@rule("sp-divides", "SP divides the trainer GPUs and the attention heads")
def _sp_divides(c: Ctx) -> Iterable[Problem]:
    sp = c.sp
    if sp > 1 and c.trainer_gpus % sp:
        yield finding(
            FATAL,
            "sp_size",
            sp,
            f"Ulysses SP {sp} does not divide the {c.trainer_gpus} trainer GPUs: the "
            "device mesh assertion fails at worker start",
            "choose an sp_size that divides the trainer GPUs",
        )
    if sp > 1:
        hf = c.hf_config
        if hf is None:
            yield finding(
                SKIP,
                "sp_size",
                sp,
                f"SP vs attention heads not checked: {c.checkpoint_unavailable()}",
                "run `python -m liverl.check` where the checkpoint is",
            )
            return
        heads, kv = hf.get("num_attention_heads"), hf.get("num_key_value_heads") or hf.get("num_attention_heads")
        if heads and (heads % sp or (kv % sp and sp % kv)):
            yield finding(
                FATAL,
                "sp_size",
                sp,
                f"SP {sp} must divide the attention heads ({heads}) and divide or be a "
                f"multiple of the key-value heads ({kv}); verl asserts this when it patches the model",
                "choose an sp_size that fits the heads",
            )




@rule("topology-nodes", "nodes = trainer nodes + rollout nodes")
def _topology_nodes(c: Ctx) -> Iterable[Problem]:
    t = c.cfg.topology
    if t.nnodes != t.trainer_nnodes + t.rollout_nnodes:
        yield finding(
            FATAL,
            "topology.nnodes",
            t.nnodes,
            f"nodes must equal trainer nodes ({t.trainer_nnodes}) + "
            f"rollout nodes ({t.rollout_nnodes}): Ray placement would wait for nodes that never come",
            "fix the topology file, or set topology.trainer_nnodes/topology.rollout_nnodes consistently",
        )


@rule("fsdp-fits", "the FSDP group size divides the trainer GPUs")
def _fsdp_fits(c: Ctx) -> Iterable[Problem]:
    key = (
        "actor_rollout_ref.actor.veomni.fsdp_size"
        if c.cfg.engine.name == "veomni"
        else "actor_rollout_ref.actor.fsdp_config.fsdp_size"
    )
    size = c.v(key)
    if size not in (None, -1) and (size > c.trainer_gpus or c.trainer_gpus % size):
        yield finding(
            FATAL,
            "fsdp_size",
            size,
            f"FSDP group size {size} must divide the {c.trainer_gpus} trainer GPUs "
            f"({c.verl.trainer.nnodes} node(s) x {c.verl.trainer.n_gpus_per_node}): the device mesh cannot be "
            "built",
            f"use fsdp_size={c.trainer_gpus} (all trainer GPUs) or a divisor of it",
        )


@rule("rollout-parallel-fits", "rollout TP x DP divides the rollout GPUs")
def _rollout_fits(c: Ctx) -> Iterable[Problem]:
    r = c.verl.actor_rollout_ref.rollout
    gpus = (c.verl.rollout.nnodes * c.verl.rollout.n_gpus_per_node) if c.mode == "fully_async" else c.trainer_gpus
    per_replica = r.tensor_model_parallel_size * r.data_parallel_size
    if per_replica > gpus or gpus % per_replica:
        yield finding(
            FATAL,
            "verl.actor_rollout_ref.rollout.tensor_model_parallel_size",
            per_replica,
            f"rollout TP x DP ({r.tensor_model_parallel_size} x {r.data_parallel_size}) must divide the "
            f"{gpus} rollout GPUs: vLLM replicas cannot be placed",
            "set model.rollout_tp (or verl.actor_rollout_ref.rollout.tensor_model_parallel_size) to a divisor",
        )


@rule("rollout-tp-kv-heads", "rollout TP fits the checkpoint's key-value heads")
def _tp_kv(c: Ctx) -> Iterable[Problem]:
    tp = c.verl.actor_rollout_ref.rollout.tensor_model_parallel_size
    hf = c.hf_config
    if hf is None:
        yield finding(
            SKIP,
            "model.rollout_tp",
            tp,
            f"TP vs key-value heads not checked: {c.checkpoint_unavailable()}",
            "run `python -m liverl.check` where the checkpoint is",
        )
        return
    kv = hf.get("num_key_value_heads") or hf.get("num_attention_heads")
    if kv and kv % tp and tp % kv:
        yield finding(
            FATAL,
            "model.rollout_tp",
            tp,
            f"rollout TP {tp} does not fit the checkpoint's {kv} key-value "
            "heads: vLLM fails with a CUDA illegal memory access at the first forward",
            f"use a TP that divides {kv}",
        )
