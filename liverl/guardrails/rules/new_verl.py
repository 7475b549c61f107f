"""Capabilities of the new verl: the trajectory filter, router replay and MoE policies on the validated checkout."""

from __future__ import annotations

from collections.abc import Iterable

from liverl.errors import Problem
from liverl.guardrails.framework import FATAL, WARN, Ctx, finding, rule
from liverl.guardrails.verl_keys import ROUTER_REPLAY_KEY, missing_new_verl

NEW_VERL_FIX = "USE_NEW_VERL=1 NEW_VERL_DIR=/path/to/new-verl (the user's document: MoE policies run on the new verl)"


@rule("router-replay-unvalidated", "VeOmni router replay runs on the validated (new) verl")
def _rr_unvalidated(c: Ctx) -> Iterable[Problem]:
    if c.v(ROUTER_REPLAY_KEY) in (None, "disabled"):
        return
    missing = missing_new_verl(c.features)
    if "checkout" not in c.verl_label or missing:
        yield finding(
            WARN,
            "verl.source",
            c.verl_label,
            "VeOmni router replay on "
            + (f"a verl that lacks {'; '.join(missing)}" if missing else "the installed verl")
            + " is unvalidated: the new verl has the engine-worker R3 wiring and the async-rollouter routed_experts "
            "fixes",
            "USE_NEW_VERL=1 NEW_VERL_DIR=/path/to/new-verl",
        )


@rule("moe-new-verl", "MoE policies run on the new verl (the R3 fixes), as the user's document says")
def _moe_new_verl(c: Ctx) -> Iterable[Problem]:
    if not c.is_moe:
        return
    missing = missing_new_verl(c.features)
    checkout = "checkout" in c.verl_label
    if checkout and not missing:
        return
    why = (
        f"the checkout ({c.verl_label}) is not the new verl: it lacks {'; '.join(missing)}"
        if checkout
        else "the verl that runs is the installed one, not the new verl (USE_NEW_VERL=1)"
        + (f"; it also lacks {'; '.join(missing)}" if missing else "")
    )
    yield finding(
        FATAL if c.launching else WARN,
        "verl.source",
        c.verl_label or "installed",
        f"{c.cfg.model.name} is MoE and {why}: rollout and training routing can diverge"
        + (" (FSDP: no replay at all, workers/engine_workers.py:496-505)" if c.cfg.engine.name == "fsdp" else "")
        + ". A launch refuses this unless waived"
        + ("" if c.launching else " (planning only: WARN)"),
        f"{NEW_VERL_FIX}, or liverl.allow=[moe-new-verl] to run anyway (recorded as WAIVED with this reason)",
    )
