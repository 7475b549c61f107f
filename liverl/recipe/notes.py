"""What the derived defaults chose (checkpoints, validation, rollout concurrency, tokens per GPU), as notes for
the plan's summary."""

from __future__ import annotations

from omegaconf import DictConfig

from liverl.guardrails.verl_keys import chunked_log_probs, in_flight_cap


def plan_notes(cfg: DictConfig, verl_cfg: DictConfig) -> list[str]:
    """One line per derived default, read from the built verl config."""
    t, a = verl_cfg.trainer, verl_cfg.actor_rollout_ref.actor
    notes = [
        f"checkpoints: every {t.save_freq} step(s) and at the end, keep {t.max_actor_ckpt_to_keep}, under "
        f"{t.default_local_dir}",
        f"validation: every {t.test_freq} step(s){', and before training' if t.val_before_train else ''}, "
        f"{'all' if verl_cfg.data.val_max_samples < 0 else verl_cfg.data.val_max_samples} task(s), temperature "
        f"{verl_cfg.actor_rollout_ref.rollout.val_kwargs.temperature}",
    ]
    if cfg.mode.name == "fully_async":
        replicas, cap, required = in_flight_cap(verl_cfg)
        notes.append(
            f"rollout concurrency: {replicas} replica(s) x {verl_cfg.async_training.concurrent_samples_per_replica} "
            f"= up to {cap} prompts in flight ({required} per trainer step)"
        )
    tokens = a.ppo_max_token_len_per_gpu
    path = (
        "log-probs chunked (fused kernels): no full-vocabulary logits"
        if chunked_log_probs(verl_cfg)
        else "log-probs materialise the micro-batch's full-vocabulary logits (the memory line: rule memory-fit)"
    )
    notes.append(f"tokens/GPU: {tokens} (one full window / SP, utils/seqlen_balancing.py:384); {path}")
    g = cfg.gpu
    default = ", the default: gpu=h100|a100_80gb|b200 for another" if g.name == "h200" else ""
    notes.append(f"GPU: {g.name} ({g.memory_bytes / 2**30:.1f} GiB each{default}); memory-fit judges the plan against "
                 "it, and a launch re-judges against the GPUs the node probe finds")
    return notes
