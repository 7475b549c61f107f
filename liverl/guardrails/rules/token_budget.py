"""The per-GPU token budget: a full-window sequence fits it. Whether the micro-batch (its full-vocabulary logits
included) fits the GPU is rule memory-fit's, from the memory model (liverl.memory): one estimate, not two."""

from __future__ import annotations

from collections.abc import Iterable

from liverl.derive import tokens_per_gpu
from liverl.errors import Problem
from liverl.guardrails.framework import FATAL, Ctx, finding, rule
from liverl.guardrails.verl_keys import window


@rule("token-budget", "a full-window sequence fits the per-GPU token budget")
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
