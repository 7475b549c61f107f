"""The metric catalogue: which verl metric keys (alternatives per signal) health checks, advice and plots read."""

from __future__ import annotations

from omegaconf import DictConfig

SCORE = ("critic/score/mean", "critic/rewards/mean")
KL = ("rollout_corr/kl", "actor/rollout_corr/kl")
ESS = ("rollout_corr/rollout_is_eff_sample_size", "actor/rollout_corr/rollout_is_eff_sample_size")
# the names verl 0.9.1 logs (tests/test_metric_names.py: each is in a real GPU stream, tests/fixtures/gpu_*, or
# tests/metric_sources.py cites the line that emits it in a mode those runs do not cover)
PEARSON = ("training/rollout_actor_probs_pearson_corr",)  # verl/utils/debug/metrics.py:120, driver-side: no actor/
IDLE = ("fully_async/trainer/idle_ratio",)
PARTIAL = ("fully_async/partial/partial_ratio",)
INVALID = ("trajectory_filter/invalid_ratio",)
REASON_PREFIX = "trajectory_filter/reason/"
ENV_SETUP = REASON_PREFIX + "env_setup_failed"
LR = ("actor/lr",)
GRAD = ("actor/grad_norm",)
TURNS = ("num_turns/mean",)
RESP_LEN = ("response_length/mean",)
CLIP = ("response_length/clip_ratio",)
ADV_MAX = ("critic/advantages/max",)
ADV_MIN = ("critic/advantages/min",)
STEP_TIME = ("timing_s/step", "perf/time_per_step")
GEN_TIME = ("timing_s/gen",)
# the engine worker's perf/max_memory_* (verl/workers/engine_workers.py:219-220) reach the log renamed actor/
# (verl/trainer/ppo/ray_trainer.py:1371): the plain perf/ names are never logged
MEMORY = ("actor/perf/max_memory_reserved_gb", "actor/perf/max_memory_allocated_gb")
# LiveRL's own per-step scaffold figures (liverl/scaffold/loop_metrics.py batch_metrics; the Harbor agent loop only)
PARSE_FAILURES = ("scaffold/parse_failures/mean",)  # per trial: turns whose tool-call block did not parse
SCAFFOLD_TURNS = ("scaffold/turns/mean",)  # per trial: model calls answered
# R3: whether the rollout returned routed experts (verl's v1 trainer, rollout.moe_load_balance_metrics_interval > 0)
ROUTES_FOUND = ("rollout/moe/routed_experts_found",)
PLOT_SERIES = (SCORE, RESP_LEN, IDLE, KL, PEARSON, PARTIAL, INVALID, ESS, LR, GRAD, TURNS)
REPORT_ONLY = {"partial_ratio"}  # informational readings, not events worth marking on a plot
# final states (run.json): a refused launch or a configuration error ran nothing, so old metrics are not a stall
TERMINAL_STATUS = {"finished", "completed", "succeeded", "success", "failed", "error", "stopped", "cancelled",
                   "refused", "config_error"}


def wanted_keys(cfg: DictConfig) -> tuple[set[str], tuple[str, ...]]:
    """Metric keys (and prefixes) that checks, advice and plots read."""
    keys: set[str] = set(cfg.nonfinite.metrics)
    for group in (SCORE, KL, ESS, PEARSON, IDLE, PARTIAL, INVALID, LR, GRAD, TURNS, RESP_LEN, CLIP,
                  ADV_MAX, ADV_MIN, STEP_TIME, GEN_TIME, MEMORY, ROUTES_FOUND, PARSE_FAILURES, SCAFFOLD_TURNS):
        keys.update(group)
    return keys, (REASON_PREFIX,)
