"""The trajectory filter on the public verl 0.9.1, through its extension points (no edit to verl).

A dropped trajectory (termination reason in `trajectory_filter.drop_reasons`, default timeout,env_setup_failed;
the reasons are the ones verl's own filter knows, liverl/guardrails/verl_keys.py TRAJ_FILTER_REASONS)
leaves HarborAgentLoop with a response mask of zeros (agent_loop.py) and `extra_fields.trajectory_filter_drop`.
  - Policy loss: verl masks every loss term with the response mask (`agg_loss` over `response_mask`,
    verl/trainer/ppo/core_algos.py; the v1 trainer stores it as `loss_mask`, trainer/ppo/v1/agent_loop_tq.py:200),
    so a zero mask contributes nothing.
  - Group baseline: the advantage estimator `liverl_grpo_filtered`, registered with verl's `register_adv_est`
    (core_algos.py:116) and selected by `algorithm.adv_estimator`, runs verl's own GRPO
    (`compute_grpo_outcome_advantage`) over the kept trajectories only; dropped rows get advantage 0. verl calls
    registered estimators with token_level_rewards, response_mask, index (uid) and config
    (trainer/ppo/ray_trainer.py:248-259, reached from v1's compute_advantage_for_multi_trajectories,
    trainer/ppo/v1/utils.py:164, for any estimator other than "grpo").
  - Metrics: the v1 trainer loads a custom replay buffer from `trainer.v1.sampler.custom_sampler.{path,name}`
    (trainer/ppo/v1/trainer_base.py:139-151) and logs the metrics its `sample` returns with the step's metrics
    (trainer_base.py:570-572, 559, 514). `TrajectoryFilterReplayBuffer` adds `trajectory_filter/invalid_ratio` and
    `trajectory_filter/reason/<reason>` (counts) for the sampled batch. Loading it in the trainer process also
    registers the estimator there.
"""

from __future__ import annotations

from typing import Any

import transfer_queue as tq
from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer

from liverl.guardrails.verl_keys import TRAJ_FILTER_REASONS
from liverl.scaffold.filter_algos import ESTIMATOR, METRIC_INVALID, grpo_filtered_advantage  # noqa: F401 (registers)
from liverl.scaffold.loop_metrics import batch_metrics

METRIC_REASON = "trajectory_filter/reason/"


def judged(extra_fields: list[dict | None]) -> list[dict]:
    """The rows the filter judged: those of the Harbor loop, which carry a termination reason."""
    return [f for f in extra_fields if isinstance(f, dict) and "termination_reason" in f]


def filter_metrics(extra_fields: list[dict | None]) -> dict[str, float]:
    """invalid_ratio (share dropped) and, per termination reason, how many trajectories ended that way."""
    fields = judged(extra_fields)
    if not fields:
        return {}
    reasons = [f["termination_reason"] for f in fields]
    metrics = {METRIC_INVALID: sum(bool(f.get("trajectory_filter_drop")) for f in fields) / len(fields)}
    for reason in sorted(set(TRAJ_FILTER_REASONS) | set(reasons)):
        metrics[METRIC_REASON + reason] = float(reasons.count(reason))
    return metrics


def extra_fields_of(data: Any) -> list[dict | None]:
    """The per-row `extra_fields` of a TransferQueue read as plain dicts.

    TransferQueue packs non-tensor columns into a `NonTensorStack` (transfer_queue/storage/managers/
    simple_storage_manager.py:589,649-651); tensordict 0.10 hands its items back as a `LinkedList`, a `list`
    subclass with no `.tolist()` (tensordict/base.py:6737-6738, utils.py:1750), or as `NonTensorData` wrappers.
    `list(...)` is how verl reads such a column (trainer/ppo/v1/trainer_base.py:1548-1551)."""
    return [getattr(v, "data", v) for v in list(data["extra_fields"])]


class TrajectoryFilterReplayBuffer(ReplayBuffer):
    """verl's sync replay buffer, plus the trajectory-filter metrics of each sampled batch.

    verl constructs a custom sampler with the base arguments only (trainer_base.py:155-162); the sync buffer's
    batch sizes come through `trainer.v1.sampler.sampler_kwargs` (LiveRL's plan writes them).
    """

    def __init__(self, *args, sampler_kwargs=None, **kwargs):
        extra = dict(sampler_kwargs or {})
        kwargs.setdefault("train_batch_size", extra.get("train_batch_size"))
        kwargs.setdefault("gen_batch_size", extra.get("gen_batch_size") or extra.get("train_batch_size"))
        super().__init__(*args, sampler_kwargs=sampler_kwargs, **kwargs)

    def sample(self, global_steps: int, partition_id: str, batch_size: int):
        batch, metrics = super().sample(global_steps=global_steps, partition_id=partition_id, batch_size=batch_size)
        if partition_id != "val" and batch.keys:
            data = tq.kv_batch_get(keys=batch.keys, partition_id=partition_id, select_fields=["extra_fields"])
            fields = extra_fields_of(data)
            metrics.update(filter_metrics(fields))
            metrics.update(batch_metrics(fields))
            nothing_left(global_steps, fields)
        return batch, metrics


def nothing_left(step: int, extra_fields: list[dict | None]) -> None:
    """Stop, saying why, when the filter dropped every trajectory of a batch: verl would go on and stop in its
    rollout correction with "response_mask must contain at least one valid token (1)" (rollout_corr_helper.py:838),
    which is how a GPU-host run whose agent runtime never started ended (2026-12-06)."""
    fields = judged(extra_fields)
    if not fields or len(fields) < len(extra_fields) or not all(f.get("trajectory_filter_drop") for f in fields):
        return  # a kept trajectory, or rows of another agent loop, which the filter does not judge
    reasons = [str(f["termination_reason"]) for f in fields]
    counts = ", ".join(f"{r}: {reasons.count(r)}" for r in sorted(set(reasons)))
    raise RuntimeError(
        f"step {step}: the trajectory filter dropped all {len(fields)} trajectories of the batch ({counts}), so "
        "nothing is left to train on. env_setup_failed: the sandbox or the agent's runtime does not start (read "
        "RUN_DIR/trials/*/exception.txt); timeout: raise scaffold.harbor.agent_timeout_sec or give the tasks less work")
