"""Peak GPU memory of one trainer training step (FSDP2, gradient checkpointing, AdamW), term by term.

A step has these phases and its peak is the largest of them (bytes, per GPU):

  forward   resident + root_unsharded + saved_activations + logits(fwd)
  backward  resident + root_unsharded + grads so far + saved_activations
            + max(logits(bwd), for each layer kind: layer_comm + layer_recompute_transient)
  optimizer resident_in_step + grads + foreach temporary (one optimizer-state-sized tensor)
  weight_sync (plans only) the weights sent to vLLM after each update (and once before step 1): the resident
            parameters and, unless offloaded, the optimizer states (gradients are freed), one whole parameter
            tensor gathered from its shards, and the sender's bucket (`sync_bucket_bytes`). verl's peak metric
            (actor/perf/max_memory_allocated_gb, verl/workers/engine_workers.py:219) is the process's high-water
            mark, never reset, so this phase is in every step's reading; it is the peak only for small models.
  log_prob  (plans only) the forward-only old-log-prob pass, which verl runs with calculate_entropy=True
            (verl/trainer/ppo/v1/trainer_base.py:1653; ray_trainer.py:1300): resident + root_unsharded + layer_comm
            + its log-prob logits; the optimizer states stay resident (the step-2 peak of the 16k and 32k verl points)

The log-prob logits follow one of two paths (`logits`):
  "fp32"          an fp32 log-softmax over `lm_head_chunk` tokens at a time (0: the whole micro-batch), ~16 bytes
                  per logit element: what benchmarks/memory/measure.py measured, and what verl's fused kernels do per
                  512-token chunk (verl/utils/experimental/torch_functional.py:37-46, upcast, softmax, log-softmax).
  "materialised"  verl with fused kernels off: the HF LM head materialises the whole micro-batch's bf16 logits
                  (transformers' Qwen2/Qwen3-MoE forward does not upcast them, modeling_qwen2.py:473-475) and
                  verl's logprobs_from_logits takes them (verl/utils/torch_functional.py:73-107), by one of two
                  kernels (`flash_ce`), per logit element (counted from the code, not fitted):
                  - flash-attn installed (what attn_implementation=flash_attention_2, verl's default, needs):
                    its Triton cross-entropy with inplace_backward (torch_functional.py:34-39, 95-101; training asks
                    no entropy, so inplace, fsdp/transformer_impl.py:1424-1432): the logits are held from forward
                    to backward and the gradient is written into them: 2 held, 2 in backward.
                  - without flash-attn (the GPU closure, requirements-gpu.lock; sdpa plans):
                    logprobs_from_logits_v2 (torch_functional.py:173-207), a log-softmax per token row that CUDA
                    autocast runs in fp32 (torch's ATen/autocast_mode.h:916-920, log_softmax is
                    fp32_set_opt_dtype; the engine's forward runs under autocast, fsdp/transformer_impl.py:
                    1560-1572), and autograd keeps every fp32 row for backward: 2 (logits) + 4 (saved rows)
                    held, 4 in backward (the saved rows, then the per-row bf16 grads and their stack).
                  Without remove-padding the jagged logits are also copied by torch.cat (transformer_impl.py:
                  1499-1503): +2 held. The 16k and 32k verl points (benchmarks/memory/verl_points.json) peaked
                  in the log-prob pass (`logprob_logits`), not here (Qwen3.5's at 6k: in the optimizer step).

`resident` = sharded parameters (+ fp32 master copy) + AdamW's two states, each over `shards` GPUs; offload takes
the optimizer states (optimizer_offload: off the GPU in the log-prob pass and the weight sync only, as verl loads
them back before the update's first forward) or everything sharded (offload_policy: FSDP2's
CPUOffloadPolicy, the step runs on the CPU) off the GPU.
The coefficients in `COEF` were fitted to the H200 measurements in benchmarks/memory/results_h200.json
(benchmarks/memory/fit.py re-derives them and prints every point's error); the rest are byte counts.
"""

from __future__ import annotations

from dataclasses import dataclass

from liverl.memory.arch import FULL, Arch

GIB = 2**30


def gib(x: float) -> str:
    """Bytes as GiB with one decimal, for messages."""
    return f"{x / GIB:.1f} GiB"


COMPUTE = 2  # bf16 compute: activations, unsharded all-gathered parameters, unsharded gradients

# Fitted on the H200 (benchmarks/memory/fit.py); each is "bytes per nominal byte" of the term it scales unless noted.
COEF = {
    "logits_fwd": 16.05,  # bytes per logit element held in forward (bf16 logits, fp32 copy, log-softmax, exp)
    "logits_bwd_chunked": 15.7,  # per logit element when the chunk is recomputed in backward (checkpointed chunks)
    "logits_bwd_full": 11.6,  # per logit element when the whole sequence's logits are kept for backward
    "saved_per_token_h": 8.5,  # extra saved bytes per token per hidden unit (final hidden, norm, rotary, ids)
    "moe": 2.05,  # grouped_mm dispatch: x nominal (k * (2H + 4I) bf16 per token)
    "gdn_torch": 0.875,  # transformers' torch_chunk_gated_delta_rule: x nominal (see _gdn_tok)
    "gdn_fla": 1.0,  # flash-linear-attention chunk kernels: nominal only (no measured peak is set by this term)
    "attn": 1.0,  # SDPA/flash attention: nominal (q, k, v, gate, output, lse) - never the peak in the measured set
    "mlp": 1.0,  # dense SwiGLU MLP: nominal (input, gate, up, act, product)
    "const": 75 * 2**20,  # CUDA/cuBLAS workspaces and small buffers seen in every measurement
}


@dataclass(frozen=True)
class StepSpec:
    """One training step of one GPU: `tokens` in the micro-batch (packed; one sequence when measured)."""

    arch: Arch
    tokens: int
    shards: int = 1
    param_bytes: int = 4  # fp32 parameters (verl FSDP keeps them so) or bf16
    optim_bytes: int = 4  # AdamW state dtype (two states)
    master_weights: bool = True  # an fp32 master copy; only adds memory when parameters are not already fp32
    grad_ckpt: str = "layer"  # "layer" (verl enable_gradient_checkpointing) or "none"
    lm_head_chunk: int = 0  # log-prob over chunks of this many tokens (0: the whole micro-batch at once)
    optimizer_offload: bool = False
    offload_policy: bool = False
    reduce_fp32: bool = True  # FSDP2 MixedPrecisionPolicy(reduce_dtype=fp32)
    linear_impl: str = "fla"  # linear-attention kernels: "fla" or "torch" (transformers' fallback)
    logits: str = "fp32"  # "fp32" (measured; verl fused kernels per chunk) or "materialised" (fused kernels off)
    logprob_entropy: str = ""  # the log-prob pass's entropy: "" (not modelled), "eager", "full", "chunked", "fused"
    remove_padding: bool = True  # verl's use_remove_padding: False adds a torch.cat copy of the logits
    flash_ce: bool = True  # flash-attn's cross-entropy runs the "materialised" log-probs (else the per-row fp32 one)
    lm_head_unit: bool = False  # verl's FSDP2 wraps an untied lm_head (and embedding) as its own unit
    logprob_tokens: int = 0  # tokens per GPU in the log-prob pass (0: `tokens`)
    fused_possible: bool = True  # False: verl's fused path cannot run here (FSDP2 with untied embeddings, VeOmni)
    fsdp2_offload_possible: bool = True  # False: FSDP2 CPU offload would do nothing here (VeOmni on one trainer GPU)
    sync_bucket_bytes: int = 0  # the weight sync's buffers on this GPU (0: no weight-sync phase, as measure.py)
    accumulation: bool = False  # more than one micro-batch per optimizer step (False: one, as measure.py)
    unsharded_grads: bool = False  # use_no_sync_for_gradient_accumulation=true (FSDP): gradients accumulate unsharded


def _attn_tok(a: Arch) -> float:
    q, kv = a.heads * a.head_dim, a.kv_heads * a.head_dim
    return COMPUTE * (a.hidden + (4 if a.attn_gate else 3) * q + 2 * kv) + 4 * a.heads


def _gdn_tok(a: Arch, impl: str) -> float:
    kd, vd = a.lin_k_heads * a.lin_k_dim, a.lin_v_heads * a.lin_v_dim
    proj = COMPUTE * (a.hidden + 3 * (2 * kd + vd) + 2 * vd)
    chunk = 64
    if impl == "torch":  # fp32 copies, the 64x64 in-chunk solve kept per step, and a (dk x dv) state per chunk
        state = a.lin_k_dim * a.lin_v_dim / chunk
        per_head = 4 * (chunk * chunk / 3 + 2 * chunk + state + 4 * (a.lin_k_dim + a.lin_v_dim))
        return COEF["gdn_torch"] * (proj + a.lin_v_heads * per_head)
    per_head = 4 * (a.lin_k_dim * a.lin_v_dim / chunk + chunk) + COMPUTE * 2 * (a.lin_k_dim + a.lin_v_dim)
    return COEF["gdn_fla"] * (proj + a.lin_v_heads * per_head)


def _mlp_tok(a: Arch, mlp: str) -> float:
    if mlp == "dense":
        return COEF["mlp"] * COMPUTE * (a.hidden + 4 * a.intermediate)
    tok = COEF["moe"] * COMPUTE * a.top_k * (2 * a.hidden + 4 * a.moe_intermediate) + 4 * a.experts
    if a.shared_intermediate:
        tok += COEF["mlp"] * COMPUTE * (a.hidden + 4 * a.shared_intermediate)
    return tok


def layer_transient_tok(a: Arch, kind: str, impl: str, mlp: str = "") -> float:
    """Bytes per token one layer's recompute keeps for its backward (mixer + MLP/MoE)."""
    mixer = COEF["attn"] * _attn_tok(a) if kind == FULL else _gdn_tok(a, impl)
    return mixer + _mlp_tok(a, mlp or ("moe" if a.moe else "dense"))


ENTROPY_CHUNK = 2048  # rows per chunk of entropy_from_logits_with_chunking (verl/utils/torch_functional.py:248)


def _logits(s: StepSpec) -> tuple[float, float, int]:
    if s.logits == "materialised":  # bytes per element: see the module docstring
        elems = s.tokens * s.arch.vocab
        held, bwd = (2, 2) if s.flash_ce else (2 + 4, 4)
        return (held + (0 if s.remove_padding else 2)) * elems, bwd * elems, s.tokens
    c = min(s.lm_head_chunk, s.tokens) if s.lm_head_chunk else s.tokens
    elems = c * s.arch.vocab
    bwd = COEF["logits_bwd_chunked"] if s.lm_head_chunk and s.lm_head_chunk < s.tokens else COEF["logits_bwd_full"]
    return COEF["logits_fwd"] * elems, bwd * elems, c


def logprob_logits(s: StepSpec) -> float:
    """Bytes of the forward-only log-prob pass's logits and entropy (calculate_entropy=True), per GPU.

    The pass runs under CUDA autocast (transformer_impl.py:1560-1572), which computes softmax in fp32
    (torch's ATen/autocast_mode.h:916-920, fp32_set_opt_dtype: an fp32 copy of the input, then an fp32 result) and
    casts logsumexp's input to fp32 (autocast_mode.h:902); logsumexp keeps one input-sized temporary (x - max, then exp_
    in place).
    fused: verl's fused kernels (or VeOmni's chunk_logprobs) compute entropy per chunk: the fp32 chunk term.
    eager: entropy_from_logits (torch_functional.py:231-245) on the whole micro-batch, uncompiled: what verl runs
      without remove-padding, where entropy_from_logits_with_chunking is not read (transformer_impl.py:1489-1492),
      and with remove-padding when neither chunking nor use_torch_compile is on (transformer_impl.py:183-187,
      1397-1405). bf16 logits 2 + softmax result 4 + logsumexp's fp32 input 4 + its temporary 4 = 14 bytes.
      Measured through verl on one H100 (benchmarks/memory/verl_points.json): the 16k points' peak.
    full: the torch.compile'd entropy_from_logits (remove-padding, no chunking, use_torch_compile on): Inductor
      fuses the reductions; 8 bytes per element is kept as an unmeasured upper guess.
    chunked: bf16 logits + one fp32 chunk of ENTROPY_CHUNK rows (.float(), softmax, logsumexp's temporary or the
      product: 12 bytes, torch_functional.py:248-265).
    """
    t, v = s.logprob_tokens or s.tokens, s.arch.vocab
    if s.logprob_entropy == "fused":
        return COEF["logits_fwd"] * min(s.lm_head_chunk or t, t) * v
    if s.logprob_entropy == "eager":
        return 14 * t * v
    if s.logprob_entropy == "full":
        return 8 * t * v
    if s.logprob_entropy == "chunked":
        return 2 * t * v + 12 * min(ENTROPY_CHUNK, t) * v
    return 0.0


def breakdown(s: StepSpec) -> dict:
    """Every term (bytes, per GPU) and the three phase peaks; `peak_bytes` is their maximum."""
    a, k, t = s.arch, max(1, s.shards), s.tokens
    total = a.total_params()
    master = 4 if s.master_weights and s.param_bytes < 4 else 0
    on_gpu = 0 if s.offload_policy else 1
    params = on_gpu * total * s.param_bytes / k
    grads = on_gpu * total * s.param_bytes / k
    masters = on_gpu * total * master / k
    optim = total * 2 * s.optim_bytes / k
    # optimizer_offload: verl's train context loads the states back at its entry, before the update's first forward
    # (verl/workers/engine/base.py:322-332, fsdp/transformer_impl.py:861-862, veomni/transformer_impl.py:528-531),
    # and offloads them at its exit: off the GPU only in the log-prob pass and the weight sync (`optim_idle`)
    optim_fb = 0 if s.offload_policy else optim
    optim_idle = 0 if (s.optimizer_offload or s.offload_policy) else optim
    # gradient accumulation: verl reduce-scatters every micro-batch (engine use_no_sync_for_gradient_accumulation:
    # false, verl/trainer/config/engine/fsdp.yaml:61; transformer_impl.py:691-722) and FSDP2 adds it into the sharded
    # gradients, so from the second micro-batch on forward and backward hold all of them (zero_grad only at the
    # update's start and the train context's exit: verl/workers/engine/base.py:126, fsdp/transformer_impl.py:1138)
    grads_held = grads if s.accumulation else 0
    if s.accumulation and s.unsharded_grads:
        # use_no_sync_for_gradient_accumulation=true: FSDP2 skips the reduce-scatter on every micro-batch but the last
        # (set_requires_gradient_sync(False), fsdp/transformer_impl.py:691-722) and keeps each parameter's unsharded
        # gradient on the GPU until then: the whole model's, not a shard's (not measured on the GPU host)
        grads_held = total * s.param_bytes
    optim_step = 0 if s.offload_policy else optim
    foreach = 0 if s.offload_policy else total * s.optim_bytes / k
    root_unsharded = (a.root_params() + (a.embed_params() if a.tied else 0)) * COMPUTE
    head_comm = 0
    if s.lm_head_unit and not a.tied:  # verl/utils/fsdp_utils.py:549-571: embed_tokens and lm_head are their own
        # units, resharded after their forward: the root keeps the final norm; lm_head is gathered again in
        # backward with its bf16 gradient and the fp32 reduce copy, as a layer is
        head = a.vocab * a.hidden
        root_unsharded = (a.root_params() - head) * COMPUTE
        head_comm = head * (COMPUTE + COMPUTE + (4 if s.reduce_fp32 else 0))
    per_tok = COMPUTE * a.hidden * (a.layers if s.grad_ckpt == "layer" else 0) + COEF["saved_per_token_h"] * a.hidden
    saved = per_tok * t
    if s.grad_ckpt != "layer":  # no recompute: every layer's transient is kept from forward to backward
        saved += sum(layer_transient_tok(a, kind, s.linear_impl, mlp) for kind, mlp in a.kinds()) * t
    logits_f, logits_b, chunk = _logits(s)
    root_grads = on_gpu * a.root_params() * s.param_bytes / k
    layers_bwd = {}
    kinds = a.kinds()
    for kind in sorted(set(kinds)):
        idx = kinds.index(kind)  # backward reaches the first layer of a kind last: most gradients exist
        later = sum(a.layer_params(*x) for x in kinds[idx + 1:])
        p_layer = a.layer_params(*kind)
        comm = p_layer * (COMPUTE + COMPUTE + (4 if s.reduce_fp32 else 0))  # all-gather out, grad, reduce copy
        trans = layer_transient_tok(a, kind[0], s.linear_impl, kind[1]) * t if s.grad_ckpt == "layer" else 0
        so_far = 0 if s.accumulation else root_grads + on_gpu * later * s.param_bytes / k  # else in grads_held
        layers_bwd[kind] = {"grads_so_far": so_far, "comm": comm, "transient": trans}
    base = params + masters + optim_fb + grads_held + COEF["const"] + root_unsharded + saved
    fwd = base + logits_f
    bwd_logits = base + (0 if s.accumulation else root_grads) + logits_b + head_comm
    bwd_layer = max(base + v["grads_so_far"] + v["comm"] + v["transient"] for v in layers_bwd.values())
    opt = params + masters + grads + optim_step + foreach + COEF["const"]
    worst = max(layers_bwd, key=lambda kd: layers_bwd[kd]["comm"] + layers_bwd[kd]["transient"])
    terms = {
        "parameters": params, "master_weights": masters, "gradients": grads, "optimizer_states": optim_fb,
        "optimizer_states_in_step": optim_step, "optimizer_step_temporary": foreach,
        "activations_checkpointed": saved, "layer_recompute_transient": layers_bwd[worst]["transient"],
        "largest_layer_kind": "+".join(worst) if worst[1] == "dense" and a.moe else worst[0],
        "logits_forward": logits_f, "logits_backward": logits_b, "lm_head_chunk": chunk,
        "comm_buffers": root_unsharded + layers_bwd[worst]["comm"], "workspace": COEF["const"],
    }
    phases = {"forward": fwd, "backward": max(bwd_logits, bwd_layer), "optimizer": opt}
    if s.logprob_entropy:
        lp = logprob_logits(s)
        terms["logits_log_prob_pass"] = lp
        phases["log_prob"] = (params + masters + optim_idle + COEF["const"] + root_unsharded
                              + max(lp, layers_bwd[worst]["comm"] / 2 + layers_bwd[worst]["transient"]
                                    * (s.logprob_tokens or t) / t))
    if s.sync_bucket_bytes:
        whole = a.largest_tensor_params() * s.param_bytes  # one parameter's full_tensor(), on the GPU even offloaded
        terms["weight_sync_buffers"] = s.sync_bucket_bytes
        phases["weight_sync"] = params + masters + optim_idle + COEF["const"] + whole + s.sync_bucket_bytes
    peak_phase = max(phases, key=phases.get)
    return {"peak_bytes": int(phases[peak_phase]), "peak_phase": peak_phase,
            "phases": {p: int(v) for p, v in phases.items()},
            "breakdown": {n: (v if isinstance(v, str) else int(v)) for n, v in terms.items()},
            "params_total": total}

