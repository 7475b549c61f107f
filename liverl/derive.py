"""Values derived from the batch, the topology and the model: the Hydra resolvers `liverl.*` that
liverl.recipe.compose registers, and the arithmetic guardrails and health advice redo on a built config.

Pure arithmetic, below every step (as liverl.rundir): each function is the one place a derived default is
computed, so that a better model (e.g. the GPU memory model) can replace it without touching `conf/`.
"""

from __future__ import annotations

import math

# bytes per logit verl materialises without a chunked/fused log-prob path: bf16 logits plus their fp32 upcast in
# log_softmax (verl/utils/torch_functional.py logprobs_from_logits)
LOGIT_BYTES = 2 + 4
# async_training.concurrent_samples_per_replica's default (fully_async_rollouter.py:425)
VERL_DEFAULT_CONCURRENCY = 16


def rollout_replicas(rollout_gpus: int, tp: int, dp: int = 1, pp: int = 1) -> int:
    """vLLM replicas of the rollout pool: GPUs / (TP x DP x PP) (verl workers/rollout/llm_server.py)."""
    return max(rollout_gpus // (tp * dp * pp), 0)


def concurrency_per_replica(prompts: int, staleness: float, sync_step: int, rollout_gpus: int, tp: int) -> int:
    """async_training.concurrent_samples_per_replica that lets the rollouter keep as many prompts in flight as its
    queue admits: verl caps in-flight prompts at replicas x per_replica, then at
    required x (staleness + 1) x trigger_parameter_sync_step (fully_async_rollouter.py:494-506, 970)."""
    replicas = rollout_replicas(rollout_gpus, tp)
    if replicas <= 0:  # a broken rollout pool: rules rollout-parallel-fits / fully-async-invariant name it
        return VERL_DEFAULT_CONCURRENCY
    queue = int(prompts * (staleness + 1) * sync_step)
    return math.ceil(queue / replicas)


def tokens_per_gpu(window: int, sp: int) -> int:
    """ppo_max_token_len_per_gpu / log_prob_max_token_len_per_gpu: the smallest budget that still admits one
    full-window sequence. verl multiplies it by the SP size per micro-batch and asserts that every sequence fits
    (verl/utils/seqlen_balancing.py:384); more tokens per GPU only packs more short sequences into one micro-batch,
    which is where the full-vocabulary logits grow."""
    return math.ceil(window / sp)


def logits_gib(tokens: int, vocab: int) -> float:
    """GiB of full-vocabulary logits for `tokens` tokens when no chunked/fused log-prob path runs."""
    return tokens * vocab * LOGIT_BYTES / 2**30
