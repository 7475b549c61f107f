"""Synchronous PPO/GRPO (topology=1node): verl's main_ppo with its v1 task runner.

Run a plan: python -m recipes.sync_ppo RUN_DIR
"""

from __future__ import annotations

import sys

from omegaconf import DictConfig

from liverl.launch.local import run_plan_cli


def run(config: DictConfig, task_runner_class: type | None = None) -> None:
    """What `python -m verl.trainer.main_ppo` does with a composed config: validate, then run_ppo."""
    from verl.trainer.main_ppo import TaskRunnerV1, run_ppo
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config
    from verl.utils.device import auto_set_device

    auto_set_device(config)
    validate_config(config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config))
    run_ppo(config, task_runner_class=task_runner_class or TaskRunnerV1)


if __name__ == "__main__":
    sys.exit(run_plan_cli(sys.argv[1:]))
