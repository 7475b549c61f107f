"""Which trajectory filter a plan runs, and the verl keys that turn LiveRL's on (public verl, no new-verl feature).

- new verl (its schema has algorithm.trajectory_filter): verl's built-in filter (build.py sets its keys).
- public verl 0.9.1, sync mode (the v1 trainer), GRPO, the scaffold's Harbor loop (the loop that reports
  termination reasons): LiveRL's filter (liverl/scaffold/traj_filter.py, which verl loads from the keys below)
  through verl's extension points: `algorithm.adv_estimator=liverl_grpo_filtered` (a registered estimator,
  core_algos.py:116-137) and `trainer.v1.sampler.custom_sampler` = TrajectoryFilterReplayBuffer
  (trainer/ppo/v1/trainer_base.py:139-151).
- otherwise: off, and the plan says why.
Pure functions of the configs (no verl import, no scaffold import: verl loads the scaffold's code by these strings).
"""

from __future__ import annotations

from typing import Any

from liverl.guardrails.verl_keys import FILTER_ESTIMATOR as ESTIMATOR
from liverl.guardrails.verl_keys import HARBOR_LOOP

SAMPLER_PATH = "pkg://liverl.scaffold.traj_filter"
SAMPLER_NAME = "TrajectoryFilterReplayBuffer"


def _why_off(cfg: Any, values: dict[str, Any]) -> str | None:
    """Why LiveRL's filter cannot run on this plan (None: it can)."""
    loop = cfg.scaffold.agent_loop.name
    if loop != HARBOR_LOOP:
        return f"scaffold {cfg.scaffold.name}: its agent loop {loop} reports no termination reasons"
    if cfg.mode.name != "sync":
        return f"mode {cfg.mode.name}: LiveRL's filter runs on the v1 (sync) trainer only; use the new verl's"
    estimator = values.get("algorithm.adv_estimator", cfg.verl.algorithm.adv_estimator)
    if estimator not in ("grpo", ESTIMATOR):
        return f"algorithm.adv_estimator={estimator}: LiveRL's filter keeps dropped rows out of GRPO baselines only"
    return None


def liverl_filter_values(cfg: Any, values: dict[str, Any]) -> tuple[str | None, str]:
    """On the public verl: add the keys of LiveRL's filter to `values` when it can run; (refusal, note).
    The refusal is set only where trajectory_filter.enable=true asked for a filter that cannot run."""
    tf = cfg.trajectory_filter
    if tf.enable is False:
        return None, "trajectory filter: off (asked)"
    why = _why_off(cfg, values)
    if why:
        return (why if tf.enable is True else None), f"trajectory filter: off ({why})"
    values["algorithm.adv_estimator"] = ESTIMATOR
    values["trainer.v1.sampler.custom_sampler.path"] = SAMPLER_PATH
    values["trainer.v1.sampler.custom_sampler.name"] = SAMPLER_NAME
    if values.get("data.train_batch_size") is not None:  # verl passes a custom sampler no batch sizes
        values["trainer.v1.sampler.sampler_kwargs.train_batch_size"] = values["data.train_batch_size"]
    return None, (f"trajectory filter: on (LiveRL's on the public verl: estimator {ESTIMATOR}, "
                  f"metrics from {SAMPLER_NAME}), dropping {','.join(tf.drop_reasons)}")


def filter_entry(verl_cfg: Any, cfg: Any) -> dict[str, Any]:
    """The agent loop's `trajectory_filter` argument: which filter runs and what it drops."""
    builtin = verl_cfg.algorithm.get("trajectory_filter", None)
    if builtin is not None and builtin.get("enable", False):
        kind = "builtin"
    elif verl_cfg.algorithm.adv_estimator == ESTIMATOR:
        kind = "liverl"
    else:
        kind = "off"
    return {"filter": kind, "drop_reasons": list(cfg.trajectory_filter.drop_reasons)}
