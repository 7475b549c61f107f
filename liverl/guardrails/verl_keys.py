"""The verl keys the guardrails and the plan read, and what they add up to (batch shape per step).

The named batch shapes (smoke, official) are read from `conf/batch/`, their one home.
"""

from __future__ import annotations

import functools

from omegaconf import DictConfig, OmegaConf

from liverl.paths import CONF_DIR

# Every key verl reads for Ulysses sequence parallelism (actor engine key, the deprecated actor key the
# reference model follows, the ref's copies, VeOmni's).
SP_KEYS = (
    "actor_rollout_ref.actor.ulysses_sequence_parallel_size",
    "actor_rollout_ref.actor.fsdp_config.ulysses_sequence_parallel_size",
    "actor_rollout_ref.ref.ulysses_sequence_parallel_size",
    "actor_rollout_ref.ref.fsdp_config.ulysses_sequence_parallel_size",
    "actor_rollout_ref.actor.veomni.ulysses_parallel_size",
    "actor_rollout_ref.ref.veomni.ulysses_parallel_size",
)
ROUTER_REPLAY_KEY = "actor_rollout_ref.actor.veomni.router_replay.mode"
ROLLOUT_REPLAY_KEY = "actor_rollout_ref.rollout.enable_rollout_routing_replay"
TOOL_PARSER_KEY = "actor_rollout_ref.rollout.engine_kwargs.vllm.tool-call-parser"
# termination reasons the new verl's trajectory filter knows (the traj-filter-reasons rule, the knob schema)
TRAJ_FILTER_REASONS = ("agent_completed", "overlong", "max_turns_reached", "timeout", "env_setup_failed")


def batch_shape(verl_cfg: DictConfig, mode: str) -> tuple[int, int]:
    """(prompts, responses per prompt) that reach the trainer each step, read from the verl config."""
    n = verl_cfg.actor_rollout_ref.rollout.n
    if mode == "fully_async":
        return verl_cfg.actor_rollout_ref.actor.ppo_mini_batch_size * verl_cfg.async_training.require_batches, n
    return verl_cfg.data.train_batch_size, n


@functools.cache
def named_batch(name: str) -> tuple[int, int] | None:
    """(prompts, responses per prompt) of the batch group `conf/batch/<name>.yaml` (None: no such group file)."""
    path = CONF_DIR / "batch" / f"{name}.yaml"
    if not path.is_file():
        return None
    group = OmegaConf.load(path)
    return int(group.train_bsz), int(group.n_resp_per_prompt)
