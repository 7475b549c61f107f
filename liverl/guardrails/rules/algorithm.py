"""The algorithm: rollout importance sampling and the learning-rate schedule."""

from __future__ import annotations

from collections.abc import Iterable

from liverl.errors import Problem
from liverl.guardrails.framework import FATAL, WARN, Ctx, finding, rule

# sequence-level IS: ESS ~0.06 measured on ~54k-token responses; warn from 16k on
LONG_RESPONSE_TOKENS = 16384


@rule("rollout-is", "rollout importance sampling is null, token or sequence (not sequence on long responses)")
def _rollout_is(c: Ctx) -> Iterable[Problem]:
    value = c.v("algorithm.rollout_correction.rollout_is")
    if value not in (None, "token", "sequence"):
        yield finding(
            FATAL,
            "rollout_is",
            value,
            "verl accepts any value at config time and fails only when it computes the first IS weights",
            "rollout_is=null, token or sequence",
        )
    elif value == "sequence" and c.verl.data.max_response_length >= LONG_RESPONSE_TOKENS:
        yield finding(
            WARN,
            "rollout_is",
            value,
            f"sequence-level IS on responses up to {c.verl.data.max_response_length} "
            "tokens: the effective sample size collapses (ESS ~0.06 measured on ~54k tokens)",
            "rollout_is=token, or rollout_is=null",
        )




@rule("lr-schedule-steps", "a decaying lr schedule knows the total steps")
def _lr_steps(c: Ctx) -> Iterable[Problem]:
    sched = c.v("actor_rollout_ref.actor.optim.lr_scheduler_type")
    steps = c.v("trainer.total_training_steps") if c.mode == "sync" else c.v("rollout.total_rollout_steps")
    if sched not in (None, "constant") and steps in (None, -1):
        yield finding(
            FATAL,
            "verl.actor_rollout_ref.actor.optim.lr_scheduler_type",
            sched,
            f"a {sched} schedule decays "
            "over the total training steps, which are unknown here (-1): the lr collapses to 0 and the "
            "model freezes",
            "set total_training_steps=N, or lr_scheduler_type=constant",
        )
