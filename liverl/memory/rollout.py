"""Memory of one rollout (vLLM) GPU: weights per TP rank, KV cache per token (full-attention layers only), the fixed
recurrent state per sequence of linear-attention layers, and how many full-window sequences one replica holds at
the configured gpu_memory_utilization, or in a fixed KV cache (vLLM's kv_cache_memory_bytes, which replaces the
utilization-derived cache and skips vLLM's start-up profiling: vllm/v1/worker/gpu_worker.py:412-430).

Per-token KV bytes (2 x kv_heads x head_dim x 2 per full-attention layer) and the linear-attention state (conv
state conv_dim x kernel in bf16 + a fp32 heads x dk x dv recurrent state) reproduce the cache tensors that
transformers kept in benchmarks/memory/results_h200.json (`kv_cache`) exactly; vLLM's reserve for activations,
sampler and CUDA graphs (`RESERVE`) is an allowance, not a measurement.
"""

from __future__ import annotations

import math

from liverl.memory.arch import Arch
from liverl.memory.terms import GIB, gib

RESERVE = 4 * 2**30  # vLLM's profiled activation peak + CUDA graphs + sampler, per GPU (allowance)


def kv_bytes_per_token(a: Arch, tp: int = 1, kv_dtype_bytes: int = 2) -> float:
    """Per TP rank; kv heads are split over TP ranks, replicated once TP exceeds them."""
    heads = math.ceil(a.kv_heads / tp) if a.kv_heads >= tp else 1
    return a.full_layers * 2 * heads * a.head_dim * kv_dtype_bytes


def linear_state_bytes(a: Arch, tp: int = 1) -> float:
    """Fixed per sequence (independent of its length), per TP rank."""
    if not a.linear_layers:
        return 0.0
    conv_dim = 2 * a.lin_k_heads * a.lin_k_dim + a.lin_v_heads * a.lin_v_dim
    per_layer = conv_dim * a.conv_kernel * 2 + a.lin_v_heads * a.lin_k_dim * a.lin_v_dim * 4
    return a.linear_layers * per_layer / tp


def rollout(a: Arch, tp: int, window: int, gpu_bytes: float, utilization: float,
            kv_cache_bytes: float | None = None) -> dict:
    weights = a.total_params() * 2 / tp
    kv_tok = kv_bytes_per_token(a, tp)
    state = linear_state_bytes(a, tp)
    if kv_cache_bytes:
        cache = float(kv_cache_bytes)
        budget = weights + RESERVE + cache  # measured on an H200: 2 GiB fixed KV, tiny model -> 6.2 GiB in nvidia-smi
    else:
        budget = gpu_bytes * utilization  # vLLM takes gpu_memory_utilization of the GPU by design
        cache = budget - weights - RESERVE
    per_seq = window * kv_tok + state
    seqs = int(cache // per_seq) if cache > 0 else 0
    return {
        "peak_bytes": int(budget),
        "breakdown": {"weights_per_rank": int(weights), "reserve": RESERVE, "kv_cache": int(max(cache, 0)),
                      "kv_bytes_per_token": int(kv_tok), "linear_state_per_sequence": int(state),
                      "bytes_per_full_window_sequence": int(per_seq)},
        "full_window_sequences": seqs,
        "fits": cache > 0 and seqs >= 1,
    }


def kv_budget(r: dict) -> str:
    """What sizes a rollout prediction's KV cache (``r``: plan.predict's "rollout"), in words."""
    size = r.get("kv_cache_bytes")
    if size:
        text = gib(size) if size >= GIB else f"{size / 2**20:.0f} MiB"
        return f"a fixed {text} KV cache (kv_cache_memory_bytes)"
    return f"gpu_memory_utilization {r['gpu_memory_utilization']}"
