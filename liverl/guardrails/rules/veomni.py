"""The VeOmni engine: settings its backward cannot run with."""

from __future__ import annotations

from collections.abc import Iterable

from liverl.errors import Problem
from liverl.guardrails.framework import FATAL, Ctx, finding, rule


@rule("veomni-fused-offload", "VeOmni: fused kernels and activation offload off")
def _veomni_fused(c: Ctx) -> Iterable[Problem]:
    if c.cfg.engine.name != "veomni":
        return
    for key in ("actor_rollout_ref.model.use_fused_kernels", "actor_rollout_ref.model.enable_activation_offload"):
        if c.v(key):
            yield finding(
                FATAL,
                f"verl.{key}",
                True,
                "VeOmni's backward crashes with 'storage of size 0' after the FSDP2 reshard when this is on",
                f"verl.{key}=false",
            )
