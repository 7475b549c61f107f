"""Run health: read a run's metrics and report what is wrong, since which step, and the fix.

``python -m liverl.watch RUN_DIR [--follow] [--plot out.png] [--json] [--stop-on-critical]``
Exit code: 0 healthy, 1 warnings only, 2 critical finding (or an unreadable run).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from liverl.metrics import RunNotFoundError, Stream, StreamReader

DEFAULT_THRESHOLDS = Path(__file__).resolve().parent.parent / "conf" / "watch" / "default.yaml"
SEVERITY_RANK = {"INFO": 0, "WARN": 1, "CRIT": 2}

SCORE = ("critic/score/mean", "critic/rewards/mean")
KL = ("rollout_corr/kl", "actor/rollout_corr/kl")
ESS = ("rollout_corr/rollout_is_eff_sample_size", "actor/rollout_corr/rollout_is_eff_sample_size")
PEARSON = ("training/rollout_actor_probs_pearson_corr", "actor/training/rollout_actor_probs_pearson_corr")
IDLE = ("fully_async/trainer/idle_ratio",)
PARTIAL = ("fully_async/partial/partial_ratio",)
INVALID = ("trajectory_filter/invalid_ratio",)
REASON_PREFIX = "trajectory_filter/reason/"
ENV_SETUP = REASON_PREFIX + "env_setup_failed"
LR = ("actor/lr",)
GRAD = ("actor/grad_norm",)
TURNS = ("num_turns/mean",)
RESP_LEN = ("response_length/mean",)
CLIP = ("response_length/clip_ratio",)
ADV_MAX = ("critic/advantages/max",)
ADV_MIN = ("critic/advantages/min",)
STEP_TIME = ("timing_s/step", "perf/time_per_step")
GEN_TIME = ("timing_s/gen",)
MEMORY = ("perf/max_memory_reserved_gb", "actor/perf/max_memory_reserved_gb",
          "perf/max_memory_allocated_gb", "actor/perf/max_memory_allocated_gb")
PLOT_SERIES = (SCORE, RESP_LEN, IDLE, KL, PEARSON, PARTIAL, INVALID, ESS, LR, GRAD, TURNS)
REPORT_ONLY = {"partial_ratio"}  # informational readings, not events worth marking on a plot
# final states (run.json): a refused launch or a configuration error ran nothing, so old metrics are not a stall
TERMINAL_STATUS = {"finished", "completed", "succeeded", "success", "failed", "error", "stopped", "cancelled",
                   "refused", "config_error"}


@dataclass
class Finding:
    """One diagnosis: what is wrong, since which step, and what to change."""

    id: str
    severity: str
    metric: str
    first_step: int | None
    current: float | None
    message: str
    fix: str


@dataclass
class Skipped:
    """A check that could not run, and the metrics it lacked."""

    check: str
    needs: list[str]
    reason: str


@dataclass
class Report:
    """All findings for a run plus what could not be judged."""

    run: str
    steps: int
    first_step: int | None
    last_step: int | None
    findings: list[Finding]
    skipped: list[Skipped]
    notes: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 healthy, 1 warnings only, 2 critical."""
        return max((SEVERITY_RANK[f.severity] for f in self.findings), default=0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (non-finite numbers become null)."""
        out = asdict(self)
        out["exit_code"] = self.exit_code
        for f in out["findings"]:
            if f["current"] is not None and not math.isfinite(f["current"]):
                f["current"] = None
        return out


@dataclass
class Ctx:
    """What a check sees: the stream, thresholds, the run's config and the clock."""

    stream: Stream
    cfg: DictConfig
    run_config: DictConfig
    run_status: str | None
    now: float

    def get(self, dotted: str, default: Any = None) -> Any:
        """A value of the run's liverl.yaml by dotted key (``default`` if absent/unresolvable)."""
        value = OmegaConf.select(self.run_config, dotted, default=None, throw_on_resolution_failure=False)
        return default if value is None else value

    @property
    def is_smoke(self) -> bool:
        """Whether the run uses a smoke-sized batch (by name or by size)."""
        if self.get("batch.name") == "smoke":
            return True
        bsz, n = self.get("train_bsz"), self.get("n_resp_per_prompt")
        return isinstance(bsz, int) and isinstance(n, int) and bsz * n <= self.cfg.same_reward.smoke_max_batch


# ---------------------------------------------------------------- sequence helpers


def _runs(mask: np.ndarray, min_len: int) -> list[tuple[int, int]]:
    """[start, end) index ranges where ``mask`` holds for at least ``min_len`` entries."""
    if not mask.any():
        return []
    padded = np.concatenate(([False], mask, [False])).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(s), int(e)) for s, e in zip(edges[::2], edges[1::2], strict=True) if e - s >= min_len]


def _fmt(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def _sustained(steps: np.ndarray, warn: np.ndarray, crit: np.ndarray | None,
               min_steps: int, make: Callable[[str, int, str], Finding]) -> list[Finding]:
    """A finding from the first sustained run of ``warn``; CRIT if ``crit`` holds sustained
    in the ongoing run; INFO when the condition ended before the last step."""
    runs = _runs(warn, min_steps)
    if not runs:
        return []
    first = int(steps[runs[0][0]])
    last_start, last_end = runs[-1]
    if last_end < len(steps):
        when = f"steps {first}-{int(steps[runs[-1][1] - 1])}; recovered by step {int(steps[last_end])}"
        return [make("INFO", first, when)]
    severity = "WARN"
    if crit is not None and _runs(crit[last_start:last_end], min_steps):
        severity = "CRIT"
    return [make(severity, first, f"since step {first}")]


def _window_diff(values: np.ndarray, window: int, min_after: int) -> tuple[np.ndarray, np.ndarray]:
    """Per index t: mean(values[t:t+window]) - mean(values[t-window:t]), and the before mean."""
    n = len(values)
    cs = np.concatenate(([0.0], np.cumsum(values)))
    t = np.arange(window, n - min_after + 1)
    if len(t) == 0:
        return t.astype(float), t.astype(float)
    after_len = np.minimum(window, n - t)
    before = (cs[t] - cs[t - window]) / window
    after = (cs[t + after_len] - cs[t]) / after_len
    diff = np.full(n, np.nan)
    base = np.full(n, np.nan)
    diff[t], base[t] = after - before, before
    return diff, base


def _mean_between(stream: Stream, key: str, lo: int, hi: int) -> float:
    """Mean of finite ``key`` values for steps in [lo, hi)."""
    steps, values = stream.series(key)
    sel = values[(steps >= lo) & (steps < hi)]
    return float(sel.mean()) if len(sel) else math.nan


# ---------------------------------------------------------------- checks


def check_idle(ctx: Ctx, key: str) -> list[Finding]:
    """Trainer waiting on rollouts for several steps: rollout-bound."""
    c = ctx.cfg.idle_ratio
    steps, v = ctx.stream.series(key)
    workers = ctx.get("verl.actor_rollout_ref.rollout.agent.num_workers")
    more = int(workers) * 2 if isinstance(workers, int) else 256
    nodes, total = ctx.get("topology.rollout_nnodes"), ctx.get("topology.nnodes")
    node_fix = (f"topology.rollout_nnodes={nodes + 1} topology.nnodes={total + 1}"
                if isinstance(nodes, int) and isinstance(total, int) else "topology.rollout_nnodes=<one more>")

    def make(sev: str, first: int, when: str) -> Finding:
        return Finding("rollout_bound", sev, key, first, float(v[-1]),
                       f"The trainer idles waiting on rollouts (idle_ratio > {c.high}, {when}): "
                       "the run is rollout-bound.",
                       f"Raise rollout concurrency (verl.actor_rollout_ref.rollout.agent.num_workers={more}) "
                       f"or add rollout nodes ({node_fix}).")

    return _sustained(steps, v > c.high, None, c.min_steps, make)


def check_kl(ctx: Ctx, key: str) -> list[Finding]:
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
    runs = _runs(bad, 1)
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
        f"Rollout-vs-training KL spiked at step {first} to {_fmt(float(mag[runs[0][0]]))} against a baseline "
        f"of {_fmt(base)} (healthy ~{c.healthy:g}); {len(runs)} spike(s), longest {longest} step(s), {status}. "
        "This points at scaffold or routing corruption (the rollout's tokens/logprobs no longer match "
        "what the trainer recomputes), not at learning.",
        "Check the scaffold's trajectories at that step (tool-call parsing, retokenization); on MoE "
        "replay the rollout's routing in training (engine=veomni router_replay=R3).")]


def check_pearson(ctx: Ctx, key: str) -> list[Finding]:
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

    return _sustained(steps, v < c.warn_below, v < c.crit_below, c.min_steps, make)


def check_partial(ctx: Ctx, key: str) -> list[Finding]:
    """Share of partial rollouts: always reported, a warning when it dominates."""
    c = ctx.cfg.partial_ratio
    steps, v = ctx.stream.series(key)

    def make(sev: str, first: int, when: str) -> Finding:
        return Finding("partial_dominant", sev, key, first, float(v[-1]),
                       f"Partial rollouts dominate (partial_ratio > {c.dominant}, {when}): most samples span "
                       "several policy versions, so updates are increasingly off-policy.",
                       "Lower staleness (staleness_threshold=0) or raise rollout throughput so episodes "
                       "finish within one policy version; watch rollout_corr/kl meanwhile.")

    found = _sustained(steps, v > c.dominant, None, c.min_steps, make)
    if found and found[0].severity != "INFO":
        return found
    recent = v[-10:]
    return [*found, Finding("partial_ratio", "INFO", key, int(steps[0]), float(v[-1]),
                            f"Partial rollouts are {_fmt(float(recent.mean()))} of samples over the last "
                            f"{len(recent)} steps (range {_fmt(float(v.min()))}-{_fmt(float(v.max()))}).",
                            "None needed.")]


def _reason_shares(ctx: Ctx) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Per step, each trajectory_filter reason's share of all reasons (NaN where not logged)."""
    keys = ctx.stream.keys_with_prefix(REASON_PREFIX)
    table = np.vstack([ctx.stream.columns[k] for k in keys])
    total = np.nansum(table, axis=0)
    logged = np.isfinite(table).any(axis=0) & (total > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = {k[len(REASON_PREFIX):]: np.where(logged, np.nan_to_num(table[i]) / total, np.nan)
                  for i, k in enumerate(keys)}
    return logged, shares


def _breakdown(ctx: Ctx) -> str:
    if not ctx.stream.keys_with_prefix(REASON_PREFIX):
        return "no per-reason breakdown logged"
    logged, shares = _reason_shares(ctx)
    if not logged.any():
        return "no per-reason breakdown logged"
    last = int(np.flatnonzero(logged)[-1])
    parts = sorted(((s[last], r) for r, s in shares.items()), reverse=True)
    return "reasons at step {}: {}".format(
        int(ctx.stream.steps[last]), ", ".join(f"{r} {share:.0%}" for share, r in parts if share > 0))


def check_invalid(ctx: Ctx, key: str) -> list[Finding]:
    """Many trajectories dropped before the update."""
    c = ctx.cfg.invalid_ratio
    steps, v = ctx.stream.series(key)

    def make(sev: str, first: int, when: str) -> Finding:
        return Finding("invalid_trajectories", sev, key, first, float(v[-1]),
                       f"{_fmt(float(v[-1]))} of trajectories are dropped as invalid (> {c.warn_above}, {when}); "
                       f"{_breakdown(ctx)}.",
                       "Read the dominant reason: timeout -> raise the agent timeout or shorten tasks; "
                       "env_setup_failed -> the scaffold runtime (see that finding); overlong -> window.response.")

    return _sustained(steps, v > c.warn_above, v > c.crit_above, c.min_steps, make)


def check_env_setup(ctx: Ctx, key: str) -> list[Finding]:
    """Any env_setup_failed share points at the scaffold runtime, not the policy."""
    c = ctx.cfg.env_setup_failed
    logged, shares = _reason_shares(ctx)
    share = shares["env_setup_failed"]
    idx = np.flatnonzero(logged)
    steps, v = ctx.stream.steps[idx], share[idx]
    scaffold = ctx.get("scaffold.name")
    if scaffold == "ohsdk":
        fix = ("Keep the agent name null so harbor loads the image-mounted runtime through the import "
               "path (scaffold=ohsdk sets it; check nothing overrides HARBOR_AGENT_NAME).")
    else:
        fix = ("If task pods have no egress, the in-pod agent install fails: use the image-mounted "
               "runtime (scaffold=ohsdk, which loads the agent through its import path).")

    def make(sev: str, first: int, when: str) -> Finding:
        return Finding("env_setup_failed", sev, key, first, float(v[-1]),
                       f"env_setup_failed is {v[-1]:.0%} of filtered trajectories ({when}; healthy 0): "
                       "the sandbox/agent runtime fails to start, which is a scaffold problem, not the policy.",
                       fix)

    return _sustained(steps, v > c.warn_above, v > c.crit_above, 1, make)


def check_ess(ctx: Ctx, key: str) -> list[Finding]:
    """Importance-sampling effective sample size collapsing toward 0."""
    c = ctx.cfg.ess
    steps, v = ctx.stream.series(key)
    length = ctx.stream.first(*RESP_LEN)
    length_note = f" (responses average {_fmt(float(ctx.stream.series(length)[1][-1]))} tokens)" if length else ""
    fix = ("rollout_is=null" if ctx.get("rollout_is") == "token"
           else "rollout_is=token (token-level IS), or rollout_is=null")

    def make(sev: str, first: int, when: str) -> Finding:
        return Finding("is_ess_collapse", sev, key, first, float(v[-1]),
                       f"Importance-sampling ESS fell below {c.warn_below} ({when}){length_note}: "
                       "sequence-level IS weights on long responses leave few effective samples.", fix)

    return _sustained(steps, v < c.warn_below, v < c.crit_below, c.min_steps, make)


def check_reward_drop(ctx: Ctx, key: str) -> list[Finding]:
    """A sustained reward drop, and whether response length or the filter shifted with it."""
    c = ctx.cfg.reward_drop
    steps, v = ctx.stream.series(key)
    w = c.window
    diff, before = _window_diff(v, w, max(3, w // 2))
    with np.errstate(invalid="ignore"):
        thr = np.maximum(c.min_abs, c.min_rel * np.abs(before))
        cand = diff < -thr
    t = None
    for s, e in _runs(cand, 1):
        at = s + int(np.argmin((diff[s:e] + thr[s:e]) / thr[s:e]))
        if np.any(np.abs(v[at:at + w]) > ctx.cfg.reward_zero.eps):  # a fall to 0 is reward_flat_zero
            t = at
            break
    if t is None:
        return []
    first, lo, hi = int(steps[t]), int(steps[t - w]), int(steps[min(t + w, len(v) - 1)])
    shifts = []
    length_key = ctx.stream.first(*RESP_LEN)
    if length_key:
        b, a = _mean_between(ctx.stream, length_key, lo, first), _mean_between(ctx.stream, length_key, first, hi + 1)
        if abs(a - b) > c.length_shift_rel * abs(b):
            shifts.append(f"response_length/mean {_fmt(b)} -> {_fmt(a)}")
    invalid_key = ctx.stream.first(*INVALID)
    if invalid_key:
        b, a = _mean_between(ctx.stream, invalid_key, lo, first), _mean_between(ctx.stream, invalid_key, first, hi + 1)
        if abs(a - b) > c.invalid_shift_abs:
            shifts.append(f"trajectory_filter/invalid_ratio {_fmt(b)} -> {_fmt(a)}")
    level_before = float(before[t])
    now = float(v[-max(3, w // 2):].mean())
    ongoing = now < level_before - float(thr[t]) / 2
    drop = f"{_fmt(level_before)} -> {_fmt(float(v[t:t + w].mean()))}"
    if shifts:
        severity = "CRIT" if ongoing else "INFO"
        message = (f"Reward dropped at step {first} ({drop}) together with a distribution shift "
                   f"({'; '.join(shifts)}): the filtering/sequence-length silent killer, the policy is "
                   "training on a different distribution than before.")
        fix = ("Find what changed at that step (trajectory filter drop reasons, response window, data "
               "mix) and revert it; compare trajectory_filter/reason/* and response_length/clip_ratio "
               "before and after.")
    else:
        severity = "WARN" if ongoing else "INFO"
        lacking = [g[0] for g, found in ((RESP_LEN, length_key), (INVALID, invalid_key)) if not found]
        note = f" (could not check {', '.join(lacking)}: not logged)" if lacking else ""
        message = (f"Reward dropped at step {first} ({drop}) with no length or filter shift{note}.")
        fix = "Check the reward pipeline and the data at that step (verifier output, task mix)."
    if not ongoing:
        message += f" It has since recovered (recent mean {_fmt(now)})."
    return [Finding("reward_drop", severity, key, first, float(v[-1]), message, fix)]


def check_lr_zero(ctx: Ctx, key: str) -> list[Finding]:
    """Learning rate 0: the model is frozen."""
    c = ctx.cfg.lr_zero
    steps, v = ctx.stream.series(key)
    configured = ctx.get("verl.actor_rollout_ref.actor.optim.lr")
    lr = configured if isinstance(configured, float) and configured > 0 else 1e-6

    def make(sev: str, first: int, when: str) -> Finding:
        return Finding("lr_zero", "CRIT" if sev == "WARN" else sev, key, first, float(v[-1]),
                       f"The learning rate is 0 ({when}): the model is frozen and nothing is learned.",
                       f"Set a non-zero learning rate (verl.actor_rollout_ref.actor.optim.lr={lr}) and check the "
                       "warmup/scheduler.")

    return _sustained(steps, np.abs(v) <= c.eps, None, c.min_steps, make)


def check_grad_starvation(ctx: Ctx, key: str) -> list[Finding]:
    """Gradient norm far below its healthy 0.2-0.5."""
    c = ctx.cfg.grad_norm
    steps, v = ctx.stream.series(key)
    response = ctx.get("window.response")
    shorter = f"window.response={int(response) // 2}" if isinstance(response, int) else "window.response=<smaller>"

    def make(sev: str, first: int, when: str) -> Finding:
        return Finding("grad_starvation", sev, key, first, float(v[-1]),
                       f"Gradient norm is below {c.starved_below} ({when}; healthy ~0.2-0.5): the update "
                       "signal is starved, typically by very long responses diluting the loss.",
                       f"Shorten responses ({shorter}) or check verl.actor_rollout_ref.actor.loss_agg_mode.")

    return _sustained(steps, v < c.starved_below, None, c.min_steps, make)


def check_reward_zero(ctx: Ctx, key: str) -> list[Finding]:
    """Reward flat at 0: infrastructure, not learning."""
    c = ctx.cfg.reward_zero
    steps, v = ctx.stream.series(key)

    def make(sev: str, first: int, when: str) -> Finding:
        return Finding("reward_flat_zero", "CRIT" if sev == "WARN" else sev, key, first, float(v[-1]),
                       f"Reward is exactly 0 ({when}): this is infrastructure (verifier, test harness, "
                       "egress), not learning.",
                       "Open a trial's verifier output (reward.txt, test-stdout.txt) and fix the grading "
                       "environment before training further.")

    return _sustained(steps, np.abs(v) <= c.eps, None, c.min_steps, make)


def check_turns(ctx: Ctx, key: str) -> list[Finding]:
    """num_turns/mean collapsing toward 1: tool calls are no longer parsed."""
    c = ctx.cfg.num_turns
    steps, v = ctx.stream.series(key)
    baseline = float(np.median(v[: c.baseline_steps]))
    scaffold = ctx.get("scaffold.name", "<scaffold>")
    warn = v <= c.collapse_at
    if baseline > 2 * c.collapse_at:
        warn = warn | (v <= c.decline_factor * baseline)

    def make(sev: str, first: int, when: str) -> Finding:
        return Finding("tool_call_collapse", sev, key, first, float(v[-1]),
                       f"Turns per episode fell toward 1 ({when}; early median {_fmt(baseline)}): the agent "
                       "stops making tool calls, usually a tool-call parse failure.",
                       "Match the tool-call parser to the model (Qwen XML tool calls need "
                       f"model.tool_call_parser.{scaffold}=qwen3_coder, not hermes) and look for "
                       "JSONDecodeError in the vLLM log.")

    return _sustained(steps, warn, v <= c.collapse_at, c.min_steps, make)


def check_same_reward(ctx: Ctx, key: str) -> list[Finding]:
    """Every group got one reward (all advantages 0): no learning signal."""
    c = ctx.cfg.same_reward
    cols = ctx.stream.columns
    amax, amin = cols[key], cols[ctx.stream.first(*ADV_MIN) or ADV_MIN[0]]
    with np.errstate(invalid="ignore"):
        flat = (np.abs(amax) <= c.eps) & (np.abs(amin) <= c.eps)
        score_key = ctx.stream.first(*SCORE)
        if score_key:  # reward flat at 0 is its own finding
            flat &= ~(np.abs(cols[score_key]) <= ctx.cfg.reward_zero.eps)
    ok = np.isfinite(amax) & np.isfinite(amin)
    steps, mask = ctx.stream.steps[ok], flat[ok]
    smoke = ctx.is_smoke

    def make(sev: str, first: int, when: str) -> Finding:
        if smoke:
            return Finding("same_reward_groups", "INFO", key, first, float(amax[ok][-1]),
                           f"Every group got a single reward ({when}): expected on smoke batches. Smoke is "
                           "for plumbing validation, not for reading learning quality.",
                           "Judge learning on the official batch (batch=official).")
        return Finding("same_reward_groups", sev, key, first, float(amax[ok][-1]),
                       f"Every group got a single reward ({when}): all advantages are 0, so the update "
                       "learns nothing. If this is a smoke batch it is expected (smoke is for plumbing, "
                       "not learning quality).",
                       "Use more rollouts per prompt or harder/easier tasks (batch=official), and check the "
                       "reward is not constant.")

    return _sustained(steps, mask, None, c.min_steps, make)


def check_stall(ctx: Ctx, key: str) -> list[Finding]:
    """No new step for far longer than the usual step time."""
    c = ctx.cfg.stall
    if ctx.stream.last_write is None or ctx.run_status in TERMINAL_STATUS:
        return []
    _, times = ctx.stream.series(key)
    usual = float(np.median(times[-20:]))
    limit = max(c.factor * usual, c.min_seconds)
    age = ctx.now - ctx.stream.last_write
    if age <= limit:
        return []
    severity = "CRIT" if ctx.run_status is not None else "WARN"
    finished = "" if ctx.run_status else " If the run has finished, ignore this."
    return [Finding("stalled", severity, key, int(ctx.stream.steps[-1]), age,
                    f"No new step for {age / 60:.0f} min, {age / usual:.0f}x the usual step time "
                    f"({usual:.0f} s) after step {int(ctx.stream.steps[-1])}: the run looks stalled or "
                    f"deadlocked.{finished}",
                    "Check the trainer and rollouter processes (py-spy dump), the vLLM log and the sandbox "
                    "pods; resume from the last checkpoint if it is hung.")]


def check_nonfinite(ctx: Ctx, key: str) -> list[Finding]:
    """null/NaN/inf values in key series."""
    bad = {k: ctx.stream.nonfinite_steps(k) for k in ctx.cfg.nonfinite.metrics if k in ctx.stream.columns}
    bad = {k: s for k, s in bad.items() if len(s)}
    if not bad:
        return []
    first = min(int(s[0]) for s in bad.values())
    at_end = [k for k, s in bad.items() if s[-1] == ctx.stream.steps[-1]]
    listed = ", ".join(f"{k} ({len(s)} step(s), first {int(s[0])})" for k, s in bad.items())
    return [Finding("nonfinite_values", "CRIT" if at_end else "WARN", next(iter(bad)), first, None,
                    f"Non-finite (null/NaN/inf) values logged: {listed}."
                    + (f" Still non-finite at the last step: {', '.join(at_end)}." if at_end else ""),
                    "A NaN loss or gradient means divergence: lower the learning rate or resume from the "
                    "last finite checkpoint.")]


@dataclass(frozen=True)
class Check:
    """A named check and the metrics it needs (alternatives per requirement)."""

    name: str
    needs: tuple[tuple[str, ...], ...]
    run: Callable[[Ctx, str], list[Finding]]


CHECKS: tuple[Check, ...] = (
    Check("rollout_bound", (IDLE,), check_idle),
    Check("rollout_corr_kl_spike", (KL,), check_kl),
    Check("probs_pearson_low", (PEARSON,), check_pearson),
    Check("partial_ratio", (PARTIAL,), check_partial),
    Check("invalid_trajectories", (INVALID,), check_invalid),
    Check("env_setup_failed", ((ENV_SETUP,),), check_env_setup),
    Check("is_ess_collapse", (ESS,), check_ess),
    Check("reward_drop", (SCORE,), check_reward_drop),
    Check("lr_zero", (LR,), check_lr_zero),
    Check("grad_starvation", (GRAD,), check_grad_starvation),
    Check("reward_flat_zero", (SCORE,), check_reward_zero),
    Check("tool_call_collapse", (TURNS,), check_turns),
    Check("same_reward_groups", (ADV_MAX, ADV_MIN), check_same_reward),
    Check("stalled", (STEP_TIME,), check_stall),
    Check("nonfinite_values", (), check_nonfinite),
)


def wanted_keys(cfg: DictConfig) -> tuple[set[str], tuple[str, ...]]:
    """Metric keys (and prefixes) that checks, advice and plots read."""
    keys: set[str] = set(cfg.nonfinite.metrics)
    for group in (SCORE, KL, ESS, PEARSON, IDLE, PARTIAL, INVALID, LR, GRAD, TURNS, RESP_LEN, CLIP,
                  ADV_MAX, ADV_MIN, STEP_TIME, GEN_TIME, MEMORY):
        keys.update(group)
    return keys, (REASON_PREFIX,)


# ---------------------------------------------------------------- loading


def load_thresholds(path: str | None = None, sets: Sequence[str] = ()) -> DictConfig:
    """Default thresholds, merged with an optional YAML file and ``key=value`` overrides."""
    cfg = OmegaConf.load(DEFAULT_THRESHOLDS)
    if path:
        cfg = OmegaConf.merge(cfg, OmegaConf.load(path))
    if sets:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(sets)))
    assert isinstance(cfg, DictConfig)
    return cfg


def load_run_config(run: Path) -> DictConfig:
    """The run's composed liverl.yaml (empty when absent or unreadable)."""
    path = run / "liverl.yaml"
    try:
        cfg = OmegaConf.load(path) if path.is_file() else None
    except (OSError, yaml.YAMLError, OmegaConfBaseException):
        cfg = None
    return cfg if isinstance(cfg, DictConfig) else OmegaConf.create({})


def load_run_status(run: Path) -> str | None:
    """``status`` from run.json, lower-cased, when present."""
    try:
        status = json.loads((run / "run.json").read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        return None
    return str(status).lower() if status is not None else None


def analyze(stream: Stream, cfg: DictConfig, run_config: DictConfig | None = None,
            run_status: str | None = None, now: float | None = None, run: str = "") -> Report:
    """Run every check on ``stream``; checks lacking metrics are listed as skipped."""
    run_config = run_config if run_config is not None else OmegaConf.create({})
    ctx = Ctx(stream, cfg, run_config, run_status, time.time() if now is None else now)
    findings: list[Finding] = []
    skipped: list[Skipped] = []
    if len(stream.steps) == 0:
        skipped = [Skipped(c.name, [], "no steps logged yet") for c in CHECKS]
    else:
        for check in CHECKS:
            keys = [stream.first(*group) for group in check.needs]
            if None in keys:
                lacking = [" or ".join(g) for g, k in zip(check.needs, keys, strict=True) if k is None]
                skipped.append(Skipped(check.name, lacking, "metric not in this run's stream"))
                continue
            findings.extend(check.run(ctx, keys[0] if keys else ""))
    findings.sort(key=lambda f: (-SEVERITY_RANK[f.severity], f.first_step if f.first_step is not None else 0))
    steps = stream.steps
    return Report(run, len(steps), int(steps[0]) if len(steps) else None, int(steps[-1]) if len(steps) else None,
                  findings, skipped, list(stream.notes), list(stream.sources))


def read_stream(run: Path, cfg: DictConfig) -> Stream:
    """Read the metrics the checks need from a run directory or one metrics/log file."""
    reader = StreamReader(run, *wanted_keys(cfg))
    reader.poll()
    if not reader.files:
        raise RunNotFoundError(f"{run}: no metric stream found (expected metrics.jsonl, metrics.<N>.jsonl "
                               "or train.log in the run directory)")
    return reader.stream()


def watch_run(run: str | Path, cfg: DictConfig | None = None, now: float | None = None,
              stream: Stream | None = None) -> Report:
    """Read a run directory (or one metrics/log file) and analyze it."""
    cfg = cfg or load_thresholds()
    path = Path(run)
    stream = stream if stream is not None else read_stream(path, cfg)
    base = path if path.is_dir() else path.parent
    return analyze(stream, cfg, load_run_config(base), load_run_status(base), now, str(path))


# ---------------------------------------------------------------- output


def render(report: Report, console: Any = None) -> None:
    """Print the report as rich tables."""
    from rich.console import Console
    from rich.table import Table

    if console is None:
        console = Console()
        if not console.is_terminal:  # pipes, cron mail, CI logs: do not squeeze the table to 80 columns
            console = Console(width=160)
    span = f"steps {report.first_step}-{report.last_step}" if report.steps else "no steps yet"
    console.print(f"[bold]{report.run}[/bold]: {report.steps} logged step(s), {span}")
    colors = {"CRIT": "bold red", "WARN": "yellow", "INFO": "cyan"}
    if report.findings:
        table = Table(show_lines=True)
        for col in ("severity", "finding", "first step", "current", "what is wrong", "fix"):
            table.add_column(col, overflow="fold")
        for f in report.findings:
            table.add_row(f"[{colors[f.severity]}]{f.severity}[/]", f"{f.id}\n({f.metric})",
                          str(f.first_step), _fmt(f.current), f.message, f.fix)
        console.print(table)
    else:
        console.print("[green]No findings.[/green]")
    if report.skipped:
        console.print("Checks that could not run: " + "; ".join(
            f"{s.check} ({s.reason}: {', '.join(s.needs)})" if s.needs else f"{s.check} ({s.reason})"
            for s in report.skipped))
    for note in report.notes:
        console.print(f"note: {note}")
    verdict = {0: "[green]healthy[/green]", 1: "[yellow]warnings[/yellow]", 2: "[bold red]critical[/bold red]"}
    console.print(f"verdict: {verdict[report.exit_code]} (exit {report.exit_code})")


def plot(stream: Stream, report: Report, out: str | Path) -> Path:
    """One panel per watched series present; findings marked at their first step on their own series
    and on series their message names (else on the first panel)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in (stream.first(*group) for group in PLOT_SERIES) if k]
    cols = 2 if len(keys) > 1 else 1
    rows = max(1, math.ceil(len(keys) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 2.4 * rows), squeeze=False, sharex=True)
    colors = {"CRIT": "red", "WARN": "orange", "INFO": "tab:blue"}
    for ax, key in zip(axes.flat, keys, strict=False):
        steps, values = stream.series(key)
        ax.plot(steps, values, lw=1)
        ax.set_title(key, fontsize=9)
        for f in report.findings:
            if f.id in REPORT_ONLY or f.first_step is None:
                continue
            panels = [k for k in keys if k == f.metric or k in f.message] or keys[:1]
            if key in panels:
                ax.axvline(f.first_step, color=colors[f.severity], ls="--", lw=1.2)
                ax.annotate(f"{f.severity} {f.id}", (f.first_step, 1.0), xycoords=("data", "axes fraction"),
                            fontsize=7, color=colors[f.severity], va="top", ha="left")
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    if not keys:
        axes.flat[0].text(0.5, 0.5, "no watched series in this run", ha="center", va="center")
    fig.suptitle(f"{report.run} (exit {report.exit_code})", fontsize=10)
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def follow(run: Path, cfg: DictConfig, interval: float, stop_on_critical: bool,
           max_polls: int | None = None, out: TextIO | None = None) -> tuple[Report, Stream]:
    """Re-analyze as steps arrive, printing findings to ``out`` (stdout) as they appear or change severity."""
    reader = StreamReader(run, *wanted_keys(cfg))
    seen: dict[str, str] = {}
    polls = 0
    while True:
        changed = reader.poll()
        polls += 1
        if changed or polls == 1:
            report = watch_run(run, cfg, stream=reader.stream())
            for f in report.findings:
                if seen.get(f.id) != f.severity:
                    seen[f.id] = f.severity
                    print(f"[step {report.last_step}] {f.severity} {f.id} since step {f.first_step}: "
                          f"{f.message}", file=out or sys.stdout, flush=True)
            if stop_on_critical and report.exit_code == 2:
                return report, reader.stream()
        if max_polls is not None and polls >= max_polls:
            return watch_run(run, cfg, stream=reader.stream()), reader.stream()
        time.sleep(interval)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m liverl.watch", description=__doc__.splitlines()[0])
    parser.add_argument("run", help="run directory (metrics*.jsonl or train.log), or one such file")
    parser.add_argument("--follow", action="store_true", help="keep reading as steps arrive")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between polls with --follow")
    parser.add_argument("--max-polls", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--stop-on-critical", action="store_true", help="with --follow: exit 2 at the first CRIT")
    parser.add_argument("--plot", metavar="PNG", help="write the key series with findings marked")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--thresholds", metavar="YAML", help="merge this file over conf/watch/default.yaml")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="override one threshold, e.g. --set idle_ratio.high=0.6")
    args = parser.parse_args(argv)
    run = Path(args.run)
    try:
        cfg = load_thresholds(args.thresholds, args.sets)
        if args.follow:
            if not run.exists():
                raise RunNotFoundError(f"{run}: no such run directory or log file")
            report, stream = follow(run, cfg, args.interval, args.stop_on_critical, args.max_polls,
                                    out=sys.stderr if args.json else None)  # keep stdout pure JSON
        else:
            stream = read_stream(run, cfg)
            report = watch_run(run, cfg, stream=stream)
    except RunNotFoundError as exc:
        print(f"liverl.watch: {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"liverl.watch: cannot read thresholds or run: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.to_dict(), indent=1))
    else:
        render(report)
    if args.plot:
        plot(stream, report, args.plot)
        if not args.json:
            print(f"plot: {args.plot}")
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
