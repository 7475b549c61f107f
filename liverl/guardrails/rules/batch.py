"""Batch arithmetic: what reaches the trainer each step, and how it splits."""

from __future__ import annotations

from collections.abc import Iterable

from liverl.errors import Problem
from liverl.guardrails.framework import FATAL, WARN, Ctx, finding, rule
from liverl.guardrails.verl_keys import batch_shape, named_batch


@rule("batch-reach", "train_bsz x n_resp_per_prompt is what the trainer gets")
def _batch_reach(c: Ctx) -> Iterable[Problem]:
    prompts, n = batch_shape(c.verl, c.mode)
    where = (
        "actor_rollout_ref.actor.ppo_mini_batch_size x async_training.require_batches"
        if c.mode == "fully_async"
        else "data.train_batch_size"
    )
    if prompts != c.cfg.train_bsz:
        yield finding(
            FATAL,
            f"verl.{where}",
            prompts,
            f"the trainer would get {prompts} prompts per step, not train_bsz={c.cfg.train_bsz}",
            "set the batch with train_bsz=N (or batch=smoke|official), not verl keys",
        )
    if n != c.cfg.n_resp_per_prompt:
        yield finding(
            FATAL,
            "verl.actor_rollout_ref.rollout.n",
            n,
            f"the trainer would get {n} responses per prompt, not n_resp_per_prompt={c.cfg.n_resp_per_prompt}",
            "set n_resp_per_prompt=N, not the verl key",
        )


@rule("batch-dp-divisible", "each update's trajectories split over the data-parallel ranks")
def _batch_dp(c: Ctx) -> Iterable[Problem]:
    mini = c.verl.actor_rollout_ref.actor.ppo_mini_batch_size * c.verl.actor_rollout_ref.rollout.n
    dp = max(1, c.trainer_gpus // max(1, c.sp))
    if mini % dp:
        yield finding(
            FATAL,
            "train_bsz, n_resp_per_prompt",
            f"{c.cfg.train_bsz} x {c.cfg.n_resp_per_prompt}",
            f"each update's {mini} trajectories (mini-batch x responses) must split evenly over the "
            f"{dp} data-parallel trainer ranks: verl asserts it at the first update, after rollouts ran",
            f"make (prompts per mini-batch x n_resp_per_prompt) a multiple of {dp}",
        )


@rule("mini-batch-le-batch", "the PPO mini-batch fits in the batch")
def _mini_le_batch(c: Ctx) -> Iterable[Problem]:
    if c.mode == "sync" and c.verl.actor_rollout_ref.actor.ppo_mini_batch_size > c.verl.data.train_batch_size:
        yield finding(
            FATAL,
            "verl.actor_rollout_ref.actor.ppo_mini_batch_size",
            c.verl.actor_rollout_ref.actor.ppo_mini_batch_size,
            f"the PPO mini-batch cannot exceed the {c.verl.data.train_batch_size}-prompt batch",
            "lower the mini-batch or raise train_bsz",
        )


_SMOKE, _OFFICIAL = named_batch("smoke"), named_batch("official")


@rule(
    "batch-size-named",
    f"smoke = {_SMOKE[0]}x{_SMOKE[1]} and official = {_OFFICIAL[0]}x{_OFFICIAL[1]} unless deliberately changed",
)
def _batch_named(c: Ctx) -> Iterable[Problem]:
    named = named_batch(c.cfg.batch.name)
    actual = (c.cfg.train_bsz, c.cfg.n_resp_per_prompt)
    if named and actual != named:
        yield finding(
            WARN,
            "batch",
            f"{actual[0]} x {actual[1]}",
            f"batch={c.cfg.batch.name} is {named[0]} x "
            f"{named[1]}, but this run was changed to {actual[0]} x {actual[1]} prompts x responses",
            "fine if deliberate; otherwise drop the train_bsz / n_resp_per_prompt (TRAIN_BSZ / N_RESP) override",
        )
