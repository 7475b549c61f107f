"""Health checks on the rollout side: idle trainer, off-policy drift, partial rollouts, dropped trajectories."""

from __future__ import annotations

import statistics
from collections import deque

import numpy as np

from liverl.health import remedies
from liverl.health.catalogue import RESP_LEN, SCAFFOLD_TURNS
from liverl.health.findings import Finding, RunView
from liverl.health.signals import breakdown, fmt, reason_shares, runs_of, sustained


def check_idle(ctx: RunView, key: str) -> list[Finding]:
    """Trainer waiting on rollouts for several steps: rollout-bound (the lever: remedies.rollout_capacity)."""
    c = ctx.cfg.idle_ratio
    steps, v = ctx.stream.series(key)
    lever = remedies.rollout_capacity(ctx.get)

    def make(sev: str, first: int, when: str) -> Finding:
        return Finding("rollout_bound", sev, key, first, float(v[-1]),
                       f"The trainer idles waiting on rollouts (idle_ratio > {c.high}, {when}): "
                       "the run is rollout-bound.", lever.fix())

    return sustained(steps, v > c.high, None, c.min_steps, make)


def check_kl(ctx: RunView, key: str) -> list[Finding]:
    """rollout_corr/kl spiking against its own rolling baseline."""
    c = ctx.cfg.rollout_corr_kl
    steps, v = ctx.stream.series(key)
    mag = np.abs(v)
    baseline = np.full(len(mag), np.nan)
    spike = np.zeros(len(mag), dtype=bool)
    history: deque[float] = deque(maxlen=c.baseline_steps)  # recent non-spike values only
    for i, value in enumerate(mag.tolist()):
        if len(history) >= c.min_history:
            baseline[i] = statistics.median(history)
            spike[i] = value > c.spike_factor * baseline[i] and value > c.min_abs
        if not spike[i]:
            history.append(value)
    bad = spike | (mag > c.abs_high)
    runs = runs_of(bad, 1)
    if not runs:
        return []
    first = int(steps[runs[0][0]])
    start, end = runs[-1]
    ongoing = end == len(v)
    severity = "CRIT" if ongoing and end - start >= c.crit_steps else "WARN"
    base = float(baseline[runs[0][0]]) if np.isfinite(baseline[runs[0][0]]) else c.healthy
    longest = max(e - s for s, e in runs)
    status = "still high" if ongoing else f"last bad step {int(steps[end - 1])}"
    return [Finding(
        "rollout_corr_kl_spike", severity, key, first, float(v[-1]),
        (f"Rollout-vs-training KL spiked at step {first} to {fmt(float(mag[runs[0][0]]))} against a baseline "
         f"of {fmt(base)} (healthy ~{c.healthy:g}); {len(runs)} spike(s), longest {longest} step(s), {status}. "
         if runs[0][0] > 0 else  # high from the first logged step: there is no lower baseline to spike against
         f"Rollout-vs-training KL was {fmt(float(mag[0]))} from the first logged step ({first}), above "
         f"{c.abs_high:g} (healthy ~{c.healthy:g}; this run has no lower baseline); longest {longest} step(s), "
         f"{status}. ")
        + "This points at scaffold or routing corruption (the rollout's tokens/logprobs no longer match "
        "what the trainer recomputes), not at learning.",
        "Check the scaffold's trajectories at that step (tool-call parsing, retokenization); on MoE "
        "replay the rollout's routing in training (engine=veomni router_replay=R3).")]


def check_pearson(ctx: RunView, key: str) -> list[Finding]:
    """Rollout-vs-training probability correlation below 0.99."""
    c = ctx.cfg.pearson
    steps, v = ctx.stream.series(key)
    moe = ctx.get("model.moe")
    cause = ("router replay misalignment (MoE experts routed differently in rollout and training)"
             if moe is not False else "a rollout/training mismatch (this run is not MoE: check the "
             "scaffold's tokenization and the weight sync)")

    def make(sev: str, first: int, when: str) -> Finding:
        return Finding("probs_pearson_low", sev, key, first, float(v[-1]),
                       f"Rollout-vs-training probability Pearson is below {c.warn_below} ({when}; healthy "
                       f"~0.999, ~0.75 when replay is off): {cause}.",
                       "Replay the rollout's expert routing in training: engine=veomni router_replay=R3 "
                       "(with USE_NEW_VERL=1, the verl that has the R3 wiring)."
                       if moe is not False else "Compare rollout and training logprobs of one trajectory.")

    return sustained(steps, v < c.warn_below, v < c.crit_below, c.min_steps, make)


def check_partial(ctx: RunView, key: str) -> list[Finding]:
    """Share of partial rollouts: always reported, a warning when it dominates."""
    c = ctx.cfg.partial_ratio
    steps, v = ctx.stream.series(key)
    lever = remedies.rollout_capacity(ctx.get)  # the same lever as rollout_bound: one table (remedies.py)

    def make(sev: str, first: int, when: str) -> Finding:
        return Finding("partial_dominant", sev, key, first, float(v[-1]),
                       f"Partial rollouts dominate (partial_ratio > {c.dominant}, {when}): most samples span "
                       "several policy versions, so updates are increasingly off-policy.",
                       "Raise rollout throughput so episodes finish within one policy version: "
                       + lever.fix() + " Watch rollout_corr/kl meanwhile.")

    found = sustained(steps, v > c.dominant, None, c.min_steps, make)
    if found and found[0].severity != "INFO":
        return found
    recent = v[-10:]
    return [*found, Finding("partial_ratio", "INFO", key, int(steps[0]), float(v[-1]),
                            f"Partial rollouts are {fmt(float(recent.mean()))} of samples over the last "
                            f"{len(recent)} steps (range {fmt(float(v.min()))}-{fmt(float(v.max()))}).",
                            "None needed.")]


def check_invalid(ctx: RunView, key: str) -> list[Finding]:
    """Many trajectories dropped before the update."""
    c = ctx.cfg.invalid_ratio
    steps, v = ctx.stream.series(key)

    def make(sev: str, first: int, when: str) -> Finding:
        return Finding("invalid_trajectories", sev, key, first, float(v[-1]),
                       f"{fmt(float(v[-1]))} of trajectories are dropped as invalid (> {c.warn_above}, {when}); "
                       f"{breakdown(ctx)}.",
                       "Read the dominant reason: timeout -> raise the agent timeout or shorten tasks; "
                       "env_setup_failed -> the scaffold runtime (see that finding); overlong -> window.response.")

    return sustained(steps, v > c.warn_above, v > c.crit_above, c.min_steps, make)


def check_env_setup(ctx: RunView, key: str) -> list[Finding]:
    """Any env_setup_failed share points at the scaffold runtime, not the policy."""
    c = ctx.cfg.env_setup_failed
    logged, shares = reason_shares(ctx)
    share = shares["env_setup_failed"]
    idx = np.flatnonzero(logged)
    steps, v = ctx.stream.steps[idx], share[idx]
    fix = remedies.env_setup(ctx.get).fix()

    def make(sev: str, first: int, when: str) -> Finding:
        return Finding("env_setup_failed", sev, key, first, float(v[-1]),
                       f"env_setup_failed is {v[-1]:.0%} of filtered trajectories ({when}; healthy 0): "
                       "the sandbox/agent runtime fails to start, which is a scaffold problem, not the policy.",
                       fix)

    return sustained(steps, v > c.warn_above, v > c.crit_above, 1, make)


def check_ess(ctx: RunView, key: str) -> list[Finding]:
    """Importance-sampling effective sample size collapsing toward 0."""
    c = ctx.cfg.ess
    steps, v = ctx.stream.series(key)
    length = ctx.stream.first(*RESP_LEN)
    length_note = f" (responses average {fmt(float(ctx.stream.series(length)[1][-1]))} tokens)" if length else ""
    fix = ("rollout_is=null" if ctx.get("rollout_is") == "token"
           else "rollout_is=token (token-level IS), or rollout_is=null")

    def make(sev: str, first: int, when: str) -> Finding:
        return Finding("is_ess_collapse", sev, key, first, float(v[-1]),
                       f"Importance-sampling ESS fell below {c.warn_below} ({when}){length_note}: "
                       "sequence-level IS weights on long responses leave few effective samples.", fix)

    return sustained(steps, v < c.warn_below, v < c.crit_below, c.min_steps, make)


def check_parse_failures(ctx: RunView, key: str) -> list[Finding]:
    """Turns whose tool call the scaffold's parser could not read: the agent acts on nothing and its episode ends."""
    c = ctx.cfg.parse_failures
    steps, fails = ctx.stream.series(key)
    turn_steps, turns = ctx.stream.series(SCAFFOLD_TURNS[0])
    steps, at_fail, at_turns = np.intersect1d(steps, turn_steps, return_indices=True)
    share = fails[at_fail] / np.maximum(turns[at_turns], 1e-9)
    scaffold, parsers = ctx.get("scaffold.name"), ctx.get("model.tool_call_parser")  # a parser per scaffold
    parser = (parsers.get(scaffold) if scaffold else None) if hasattr(parsers, "get") else parsers

    def make(sev: str, first: int, when: str) -> Finding:
        return Finding("tool_parse_failures", sev, key, first, float(share[-1]),
                       f"{share[-1]:.0%} of the policy's turns held a tool call the parser could not read (> "
                       f"{c.warn_above}, {when}): those turns act on nothing and the agent usually stops.",
                       "Check that the tool-call parser matches what the model writes (model.tool_call_parser."
                       f"{scaffold}: {parser}; python -m liverl.conform conform.policy=engine "
                       "measures it on the served model); a policy that has not learnt the format yet needs a warm "
                       "start first.")

    return sustained(steps, share > c.warn_above, share > c.crit_above, c.min_steps, make)
