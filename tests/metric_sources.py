"""Metric names LiveRL's health checks read that no real stream in tests/fixtures/gpu_* carries, each with the source
line that emits it and the mode it needs (one the GPU fixtures do not run). Paths under verl/ are in the installed
verl 0.9.1 (site-packages); tests/test_metric_names.py checks that each cited line names the metric."""

from __future__ import annotations

_BYPASS = "the actor's bypass-mode policy loss (actor policy_loss.loss_mode=bypass_mode) adds the rollout_corr/ " \
          "metrics to the actor's, which the trainer renames actor/ (verl/trainer/ppo/ray_trainer.py:1371)"
_IS_ON = "rollout importance sampling on (rollout_is=token|sequence; the fixtures run rollout_is=null), decoupled mode"
_R3_SYNC = ("R3 router replay on a MoE in sync mode, rollout.moe_load_balance_metrics_interval > 0 (conf/engine/"
            "veomni.yaml sets 1; the GPU fixtures run dense models)")

# name -> (file:line that emits it, the words on that line that name it, the mode it needs)
NOT_IN_FIXTURES: dict[str, tuple[str, str, str]] = {
    "actor/rollout_corr/kl": ("verl/trainer/ppo/core_algos.py:2547", "pg_metrics.update(rollout_metrics)", _BYPASS),
    "actor/rollout_corr/rollout_is_eff_sample_size": ("verl/trainer/ppo/core_algos.py:2547",
                                                      "pg_metrics.update(rollout_metrics)", _BYPASS),
    "rollout_corr/rollout_is_eff_sample_size": ("verl/trainer/ppo/rollout_corr_helper.py:757",
                                                'metrics["rollout_is_eff_sample_size"]', _IS_ON),
    "rollout/moe/routed_experts_found": ("verl/trainer/ppo/metric_utils.py:330",
                                         'metrics["rollout/moe/routed_experts_found"]', _R3_SYNC),
}
