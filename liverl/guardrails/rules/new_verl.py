"""Capabilities of the new verl: the trajectory filter, router replay and MoE policies on the validated checkout."""

from __future__ import annotations

from collections.abc import Iterable

from liverl.errors import Problem
from liverl.guardrails.framework import FATAL, WARN, Ctx, finding, rule
from liverl.guardrails.verl_keys import ROUTER_REPLAY_KEY

NEW_VERL_FIX = "USE_NEW_VERL=1 NEW_VERL_DIR=/path/to/new-verl (the user's document: MoE policies run on the new verl)"


@rule("router-replay-unvalidated", "VeOmni router replay runs on the validated (new) verl")
def _rr_unvalidated(c: Ctx) -> Iterable[Problem]:
    if c.v(ROUTER_REPLAY_KEY) not in (None, "disabled") and "checkout" not in c.verl_label:
        yield finding(
            WARN,
            "verl.source",
            c.verl_label,
            "VeOmni router replay on the installed verl is unvalidated: the "
            "new verl has the engine-worker R3 wiring and the async-rollouter routed_experts fixes",
            "USE_NEW_VERL=1 NEW_VERL_DIR=/path/to/new-verl",
        )


@rule("moe-new-verl", "MoE policies run on the new verl (the R3 fixes), as the user's document says")
def _moe_new_verl(c: Ctx) -> Iterable[Problem]:
    if not c.is_moe or "checkout" in c.verl_label:
        return
    yield finding(
        FATAL if c.launching else WARN,
        "verl.source",
        c.verl_label or "installed",
        f"{c.cfg.model.name} is MoE and the verl that runs has no engine-worker R3 wiring nor the async-rollouter "
        "routed_experts fixes: rollout and training routing diverge"
        + (" (FSDP: no replay at all, workers/engine_workers.py:496-505)" if c.cfg.engine.name == "fsdp" else "")
        + ". A launch refuses this unless waived"
        + ("" if c.launching else " (planning only: WARN)"),
        f"{NEW_VERL_FIX}, or liverl.allow=[moe-new-verl] to run anyway (recorded as WAIVED with this reason)",
    )
