"""Which trajectory filter a plan runs, and the verl keys that turn LiveRL's on (public verl, no new-verl feature).

- new verl (its schema has algorithm.trajectory_filter): verl's built-in filter (build.py sets its keys).
- public verl 0.9.1, GRPO, the scaffold's Harbor loop (the loop that reports termination reasons), sync or fully
  async: LiveRL's filter through verl's extension points. The loop zeroes dropped rows' masks (the fully-async
  rollouter copies the loop's extra_fields and masks, experimental/agent_loop/agent_loop.py:1118-1133);
  `VERL_USE_EXTERNAL_MODULES=liverl.scaffold.filter_algos` (`filter_env`, verl/__init__.py:48-52) registers, in
  every verl process, the estimator `algorithm.adv_estimator=liverl_grpo_filtered` (core_algos.py:116-137) and the
  policy loss `liverl_vanilla` (no NaN on a wholly dropped mini-batch; set where the loss mode is vanilla), or
  `liverl_bypass_mode` where it is bypass_mode (fully async without R3, for rollout_corr/*).
  Sync (v1 trainer): `trainer.v1.sampler.custom_sampler` = TrajectoryFilterReplayBuffer (trainer/ppo/v1/
  trainer_base.py:139-151) logs the filter and scaffold metrics with verl's. Fully async: verl's trainer forwards
  no sampler metrics, so the estimator appends them to RUN_DIR/liverl_metrics.jsonl (`LIVERL_METRICS_PATH`).
- otherwise: off, and the plan says why.
Pure functions of the configs (no verl import, no scaffold import: verl loads the scaffold's code by these strings).
"""

from __future__ import annotations

import os
from typing import Any

from omegaconf import OmegaConf

from liverl.guardrails.verl_keys import FILTER_BYPASS_LOSS, FILTER_POLICY_LOSS, HARBOR_LOOP
from liverl.guardrails.verl_keys import FILTER_ESTIMATOR as ESTIMATOR
from liverl.health.streams import LIVERL_METRICS as METRICS_FILE
from liverl.health.streams import LIVERL_METRICS_ENV

SAMPLER_PATH = "pkg://liverl.scaffold.traj_filter"
SAMPLER_NAME = "TrajectoryFilterReplayBuffer"
ALGOS_MODULE = "liverl.scaffold.filter_algos"  # imported by verl itself in every process (VERL_USE_EXTERNAL_MODULES)
LOSS_MODE_KEY = "actor_rollout_ref.actor.policy_loss.loss_mode"


def _why_off(cfg: Any, values: dict[str, Any]) -> str | None:
    """Why LiveRL's filter cannot run on this plan (None: it can)."""
    loop = cfg.scaffold.agent_loop.name
    if loop != HARBOR_LOOP:
        return f"scaffold {cfg.scaffold.name}: its agent loop {loop} reports no termination reasons"
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
    loss_mode = values.get(LOSS_MODE_KEY, OmegaConf.select(cfg.verl, LOSS_MODE_KEY, default=None))
    if loss_mode in (None, "vanilla"):  # verl's default (workers/config/actor.py:94)
        values[LOSS_MODE_KEY] = FILTER_POLICY_LOSS
    elif loss_mode == "bypass_mode":  # fully async without R3 (conf/mode/fully_async.yaml): rollout_corr/* logged
        values[LOSS_MODE_KEY] = FILTER_BYPASS_LOSS
    if cfg.mode.name != "sync":
        return None, (f"trajectory filter: on (LiveRL's on the public verl: estimator {ESTIMATOR}, metrics in "
                      f"RUN_DIR/{METRICS_FILE}), dropping {','.join(tf.drop_reasons)}")
    values["trainer.v1.sampler.custom_sampler.path"] = SAMPLER_PATH
    values["trainer.v1.sampler.custom_sampler.name"] = SAMPLER_NAME
    if values.get("data.train_batch_size") is not None:  # verl passes a custom sampler no batch sizes
        values["trainer.v1.sampler.sampler_kwargs.train_batch_size"] = values["data.train_batch_size"]
    return None, (f"trajectory filter: on (LiveRL's on the public verl: estimator {ESTIMATOR}, "
                  f"metrics from {SAMPLER_NAME}), dropping {','.join(tf.drop_reasons)}")


def filter_env(cfg: Any, verl_cfg: Any, run_dir: Any) -> dict[str, str]:
    """Environment of a run with LiveRL's filter: verl imports its registrations in every process; fully async
    also gets the metrics file the estimator writes (verl's fully-async trainer logs no sampler metrics)."""
    if verl_cfg.algorithm.adv_estimator != ESTIMATOR:
        return {}
    others = [m for m in os.environ.get("VERL_USE_EXTERNAL_MODULES", "").split(",") if m and m != ALGOS_MODULE]
    env = {"VERL_USE_EXTERNAL_MODULES": ",".join([*others, ALGOS_MODULE])}
    if cfg.mode.name != "sync":
        env[LIVERL_METRICS_ENV] = f"{run_dir}/{METRICS_FILE}"
    return env


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
