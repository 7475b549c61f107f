"""What LiveRL's trajectory filter registers in verl, in every process that imports verl.

verl imports the modules named in `VERL_USE_EXTERNAL_MODULES` when it is imported (verl/__init__.py:48-52); the
plan sets it to this module (liverl/recipe/filter_plan.py `filter_env`) and verl's ray.init hands the variable to
every Ray worker (ray_kwargs.ray_init.runtime_env.env_vars), so the registrations below exist in the trainer, the
fully-async trainer and the actor workers alike. Only verl, torch and numpy are imported here.

  - `liverl_grpo_filtered` (register_adv_est, core_algos.py:116): verl's GRPO over the kept trajectories (a
    sampled token); a dropped row, and a group left with fewer than two kept rows, gets advantage 0.
  - `liverl_vanilla` (register_policy_loss, core_algos.py:53): verl's vanilla PPO loss, except that a mini-batch
    the filter dropped whole (loss-mask sum 0) is aggregated over 1 token instead of 0. verl's v1 loss takes the
    global token count from the loss mask (workers/engine/fsdp/transformer_impl.py:730-734), puts it in
    config.global_batch_info before the policy loss runs and aggregates entropy and KL with the same dict after it
    (workers/utils/losses.py:63-66,104-138): every masked sum is 0, so 0/1 = 0 where verl computes 0/0 = NaN for
    pg_loss, entropy and KL. The gradient is 0 either way (masked_sum uses torch.where).
  - `liverl_bypass_mode`: the same guard around verl's bypass-mode loss (core_algos.py:2414), which fully-async
    plans use so that verl logs rollout_corr/* (conf/mode/fully_async.yaml); a micro-batch with no kept token skips
    the rollout-correction metrics (their mean over no token is undefined) and returns verl's vanilla loss, 0.
  - Fully async: the fully-async trainer logs no sampler metrics, so the estimator appends the step's filter
    figures to `$LIVERL_METRICS_PATH` (RUN_DIR/liverl_metrics.jsonl, verl's FileLogger row format) where the plan
    sets it; `liverl.watch` reads that file beside verl's (liverl/health/streams.py).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import numpy as np
import torch
from verl.trainer.ppo.core_algos import (
    compute_grpo_outcome_advantage,
    compute_policy_loss_bypass_mode,
    compute_policy_loss_vanilla,
    register_adv_est,
    register_policy_loss,
)

from liverl.guardrails.verl_keys import FILTER_BYPASS_LOSS, FILTER_POLICY_LOSS
from liverl.guardrails.verl_keys import FILTER_ESTIMATOR as ESTIMATOR
from liverl.health.streams import LIVERL_METRICS_ENV as METRICS_ENV
from liverl.scaffold.loop_metrics import KEPT_SCORE

METRIC_INVALID = "trajectory_filter/invalid_ratio"
METRIC_UNBASELINED = "trajectory_filter/unbaselined_rows"
_CALLS = {"n": 0}


@register_adv_est(ESTIMATOR)
def grpo_filtered_advantage(token_level_rewards: torch.Tensor, response_mask: torch.Tensor, index: np.ndarray,
                            config: Any = None, epsilon: float = 1e-6, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """verl's GRPO over the trajectories that have a sampled token; the others are outside every baseline.

    A group left with fewer than two kept trajectories has no baseline: verl's GRPO would give a group of one mean
    0 and std 1 (core_algos.py:316-317), i.e. its raw reward as advantage, so the survivors of failed groups would
    be pushed up or down by their reward alone (upward bias toward whatever succeeds while infrastructure fails).
    Such a group contributes no advantage, as a group whose rewards are all equal does."""
    kept_mask = response_mask.sum(dim=-1) > 0
    ids = np.asarray(index, dtype=object)
    kept_ids = ids[kept_mask.cpu().numpy()]
    counts = {uid: int((kept_ids == uid).sum()) for uid in set(kept_ids.tolist())}
    pairs = zip(kept_mask.tolist(), ids, strict=True)
    baselined = torch.tensor([bool(k) and counts.get(uid, 0) >= 2 for k, uid in pairs],
                             dtype=torch.bool, device=response_mask.device)
    keep = baselined.nonzero(as_tuple=True)[0]
    advantages = torch.zeros_like(token_level_rewards)
    if len(keep):
        norm = True if config is None else bool(config.get("norm_adv_by_std_in_grpo", True))
        kept, _ = compute_grpo_outcome_advantage(
            token_level_rewards=token_level_rewards[keep], response_mask=response_mask[keep],
            index=ids[keep.cpu().numpy()], epsilon=epsilon, norm_adv_by_std_in_grpo=norm)
        advantages[keep] = kept
    _write_step(step_figures(token_level_rewards, response_mask, baselined))
    return advantages, advantages


@register_policy_loss(FILTER_POLICY_LOSS)  # type: ignore[arg-type]
def filtered_vanilla_loss(old_log_prob: torch.Tensor, log_prob: torch.Tensor, advantages: torch.Tensor,
                          response_mask: torch.Tensor, loss_agg_mode: str = "token-mean", config: Any = None,
                          rollout_is_weights: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
    _guard_empty(config)
    return compute_policy_loss_vanilla(old_log_prob=old_log_prob, log_prob=log_prob, advantages=advantages,
                                       response_mask=response_mask, loss_agg_mode=loss_agg_mode, config=config,
                                       rollout_is_weights=rollout_is_weights)


def _guard_empty(config: Any) -> None:
    info = getattr(config, "global_batch_info", None)
    if isinstance(info, dict) and info.get("batch_num_tokens") == 0:
        info["batch_num_tokens"] = 1  # a wholly dropped mini-batch: every masked sum is 0; 0/1, not 0/0


@register_policy_loss(FILTER_BYPASS_LOSS)  # type: ignore[arg-type]
def filtered_bypass_loss(old_log_prob: torch.Tensor, log_prob: torch.Tensor, advantages: torch.Tensor,
                         response_mask: torch.Tensor, loss_agg_mode: str = "token-mean", config: Any = None,
                         rollout_is_weights: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
    if not bool(response_mask.any()):  # nothing kept here: no rollout-vs-training figures to take
        return filtered_vanilla_loss(old_log_prob, log_prob, advantages, response_mask, loss_agg_mode, config,
                                     rollout_is_weights)
    _guard_empty(config)
    return compute_policy_loss_bypass_mode(old_log_prob=old_log_prob, log_prob=log_prob, advantages=advantages,
                                           response_mask=response_mask, loss_agg_mode=loss_agg_mode, config=config,
                                           rollout_is_weights=rollout_is_weights)


def step_figures(token_level_rewards: torch.Tensor, response_mask: torch.Tensor,
                 baselined: torch.Tensor) -> dict[str, float]:
    """The filter's figures for one advantage computation (no NaN: an empty mean is left out)."""
    kept = response_mask.sum(dim=-1) > 0
    rows = max(1, int(response_mask.shape[0]))
    figures = {METRIC_INVALID: float((~kept).sum()) / rows, METRIC_UNBASELINED: float((kept & ~baselined).sum())}
    if bool(kept.any()):
        figures[KEPT_SCORE] = float(token_level_rewards[kept].sum(dim=-1).mean())
    return figures


def _write_step(figures: dict[str, float]) -> None:
    path = os.environ.get(METRICS_ENV)
    if not path:
        return
    _CALLS["n"] += 1
    with open(path, "a") as fh:
        fh.write(json.dumps({"step": _CALLS["n"], "timestamp": time.time(), "data": figures}) + "\n")
