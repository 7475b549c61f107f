"""Fully async (topology=2node|3node): verl's fully_async_main with its FullyAsyncTaskRunner.

Run a plan: python -m recipes.fully_async RUN_DIR
"""

from __future__ import annotations

import sys

from omegaconf import DictConfig

from liverl.launch.local import run_plan_cli
from liverl.recipe.build import copy_rollout_pool


def run(config: DictConfig, task_runner_class: type | None = None) -> None:
    """What `python -m verl.experimental.fully_async_policy.fully_async_main` does with a composed config."""
    from verl.experimental.fully_async_policy.fully_async_main import FullyAsyncTaskRunner
    from verl.experimental.reward_loop.reward_loop import migrate_legacy_reward_impl
    from verl.trainer.main_ppo import run_ppo
    from verl.utils.device import auto_set_device

    auto_set_device(config)
    copy_rollout_pool(config)
    config = migrate_legacy_reward_impl(config)
    run_ppo(config, task_runner_class=task_runner_class or FullyAsyncTaskRunner)


if __name__ == "__main__":
    sys.exit(run_plan_cli(sys.argv[1:]))
