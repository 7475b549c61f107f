"""The per-GPU token budget: a full-window sequence fits it, and its full-vocabulary logits are chunked."""

from __future__ import annotations

from collections.abc import Iterable

from liverl.derive import logits_gib, tokens_per_gpu
from liverl.errors import Problem
from liverl.guardrails.framework import FATAL, WARN, Ctx, finding, rule
from liverl.guardrails.verl_keys import chunked_log_probs, window

# above this many GiB of full-vocabulary logits per micro-batch the log-prob path is a memory risk
LOGITS_WARN_GIB = 16.0


@rule("token-budget", "a full-window sequence fits the per-GPU token budget and its logits are chunked")
def _token_budget(c: Ctx) -> Iterable[Problem]:
    a = c.verl.actor_rollout_ref.actor
    need = tokens_per_gpu(window(c.verl), c.sp)
    keys = {
        "actor_rollout_ref.actor.ppo_max_token_len_per_gpu": a.ppo_max_token_len_per_gpu,
        "actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu": c.v(
            "actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu"
        ),
    }
    for key, value in keys.items():
        if a.use_dynamic_bsz and value is not None and value < need:
            yield finding(
                FATAL,
                f"verl.{key}",
                value,
                f"a full-window sequence ({window(c.verl)} tokens / SP {c.sp}) does not fit: verl asserts every "
                "sequence fits a micro-batch (utils/seqlen_balancing.py:384)",
                f"leave it derived ({need}), or a smaller window",
            )
    vocab = c.cfg.model.get("vocab_size")
    if vocab and not chunked_log_probs(c.verl):
        gib = logits_gib(a.ppo_max_token_len_per_gpu, vocab)
        if gib > LOGITS_WARN_GIB:
            yield finding(
                WARN,
                "verl.actor_rollout_ref.model.use_fused_kernels",
                False,
                f"log-probs materialise full-vocabulary logits: {a.ppo_max_token_len_per_gpu} tokens x {vocab} vocab "
                f"~ {gib:.0f} GiB (bf16 + fp32 upcast) per micro-batch before weights and activations; a "
                "full-window micro-batch can OOM",
                "a chunked log-prob path (engine=fsdp turns on verl's fused kernels; VeOmni's sits behind "
                "use_fused_kernels, kept off by rule veomni-fused-offload), or a smaller window",
            )
