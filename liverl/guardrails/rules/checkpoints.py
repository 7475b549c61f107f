"""Checkpoints: the run writes them (so a relaunch can resume), a resume path names a step, and they are bounded."""

from __future__ import annotations

from collections.abc import Iterable

from liverl.errors import Problem
from liverl.guardrails.framework import FATAL, WARN, Ctx, finding, rule


@rule("checkpoint-save", "the run writes checkpoints (and a relaunch can resume from them), boundedly")
def _checkpoint(c: Ctx) -> Iterable[Problem]:
    t = c.verl.trainer
    if t.save_freq is None or t.save_freq <= 0:
        yield finding(
            FATAL,
            "verl.trainer.save_freq",
            t.save_freq,
            "the run never writes a checkpoint: verl gates every save, the final forced one included, on "
            "save_freq > 0 (fully_async_trainer.py:890-897, trainer/ppo/v1/trainer_base.py:481-485); the weights "
            "are lost at the end and a relaunch can never resume",
            "keep the batch's cadence (batch.save_freq), or liverl.allow=[checkpoint-save] for a throwaway run",
        )
    if t.get("resume_mode") == "resume_path" and "global_step_" not in str(t.get("resume_from_path") or ""):
        yield finding(
            FATAL,
            "verl.trainer.resume_from_path",
            t.get("resume_from_path"),
            "resume_mode=resume_path needs a path to a global_step_N directory; verl asserts it at start "
            "(trainer/ppo/v1/trainer_base.py:867)",
            "point it at RUN_DIR/checkpoints/global_step_N, or resume_mode=auto",
        )
    keep = t.get("max_actor_ckpt_to_keep")
    if t.save_freq and t.save_freq > 0 and (keep is None or keep <= 0):
        yield finding(
            WARN,
            "verl.trainer.max_actor_ckpt_to_keep",
            keep,
            "every checkpoint is kept: with optimizer state a 35B-class checkpoint is ~0.5 TB, so the shared disk "
            "fills mid-run",
            "batch.keep_checkpoints=2",
        )
