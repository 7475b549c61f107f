"""Capabilities of the new verl: the trajectory filter and router replay on the validated checkout."""

from __future__ import annotations

from collections.abc import Iterable

from liverl.errors import Problem
from liverl.guardrails.framework import FATAL, WARN, Ctx, finding, rule
from liverl.guardrails.verl_keys import ROUTER_REPLAY_KEY, TRAJ_FILTER_REASONS


@rule("traj-filter-reasons", "trajectory-filter drop reasons are ones the filter knows")
def _traj_reasons(c: Ctx) -> Iterable[Problem]:
    unknown = [r for r in c.cfg.trajectory_filter.drop_reasons if r not in TRAJ_FILTER_REASONS]
    if unknown:
        yield finding(
            FATAL,
            "trajectory_filter.drop_reasons",
            unknown,
            "unknown termination reasons never match, so those trajectories would silently be kept",
            f"use reasons from: {', '.join(TRAJ_FILTER_REASONS)}",
        )


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
