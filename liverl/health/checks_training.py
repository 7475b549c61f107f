"""Health checks on the training side: reward, learning rate, gradients, tool calls, stalls, non-finite values."""

from __future__ import annotations

import numpy as np

from liverl.health.catalogue import ADV_MIN, INVALID, RESP_LEN, SCORE, TERMINAL_STATUS, TURNS
from liverl.health.findings import Finding, RunView
from liverl.health.signals import fmt, mean_between, runs_of, sustained, window_diff


def check_reward_drop(ctx: RunView, key: str) -> list[Finding]:
    """A sustained reward drop, and whether response length or the filter shifted with it."""
    c = ctx.cfg.reward_drop
    steps, v = ctx.stream.series(key)
    w = c.window
    diff, before = window_diff(v, w, max(3, w // 2))
    with np.errstate(invalid="ignore"):
        thr = np.maximum(c.min_abs, c.min_rel * np.abs(before))
        cand = diff < -thr
    t = None
    for s, e in runs_of(cand, 1):
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
        b, a = mean_between(ctx.stream, length_key, lo, first), mean_between(ctx.stream, length_key, first, hi + 1)
        if abs(a - b) > c.length_shift_rel * abs(b):
            shifts.append(f"response_length/mean {fmt(b)} -> {fmt(a)}")
    invalid_key = ctx.stream.first(*INVALID)
    if invalid_key:
        b, a = mean_between(ctx.stream, invalid_key, lo, first), mean_between(ctx.stream, invalid_key, first, hi + 1)
        if abs(a - b) > c.invalid_shift_abs:
            shifts.append(f"trajectory_filter/invalid_ratio {fmt(b)} -> {fmt(a)}")
    level_before = float(before[t])
    now = float(v[-max(3, w // 2):].mean())
    ongoing = now < level_before - float(thr[t]) / 2
    drop = f"{fmt(level_before)} -> {fmt(float(v[t:t + w].mean()))}"
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
        message += f" It has since recovered (recent mean {fmt(now)})."
    return [Finding("reward_drop", severity, key, first, float(v[-1]), message, fix)]


def check_lr_zero(ctx: RunView, key: str) -> list[Finding]:
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

    return sustained(steps, np.abs(v) <= c.eps, None, c.min_steps, make)


def check_grad_starvation(ctx: RunView, key: str) -> list[Finding]:
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

    return sustained(steps, v < c.starved_below, None, c.min_steps, make)


def check_reward_zero(ctx: RunView, key: str) -> list[Finding]:
    """Reward flat at 0: infrastructure, not learning."""
    c = ctx.cfg.reward_zero
    steps, v = ctx.stream.series(key)

    def make(sev: str, first: int, when: str) -> Finding:
        return Finding("reward_flat_zero", "CRIT" if sev == "WARN" else sev, key, first, float(v[-1]),
                       f"Reward is exactly 0 ({when}): this is infrastructure (verifier, test harness, "
                       "egress), not learning.",
                       "Open a trial's verifier output (reward.txt, test-stdout.txt) and fix the grading "
                       "environment before training further.")

    return sustained(steps, np.abs(v) <= c.eps, None, c.min_steps, make)


def check_turns(ctx: RunView, key: str) -> list[Finding]:
    """Model calls per trial near 1: the agent answers without acting, or its tool calls do not parse.

    Read in model calls: LiveRL's scaffold/turns/mean, else verl's num_turns/mean halved. verl counts the user,
    assistant and tool messages, one more than the tool rounds plus the calls (verl tool_agent_loop.py:203; LiveRL's
    loop the same, liverl/scaffold/agent_loop.py): a trial of c calls reads 2c, one that never called a tool 2, so
    a threshold on the raw count never fired (the real claude-code stream: 2.1-2.4 with 91% one-call trials)."""
    c = ctx.cfg.num_turns
    scaffold = ctx.get("scaffold.name", "<scaffold>")
    if scaffold == "single_turn":  # one model call per sample by design, no tools
        return []
    steps, v = ctx.stream.series(key)
    if key in TURNS:
        v = v / 2.0
    baseline = float(np.median(v[: c.baseline_steps]))
    warn = v <= c.collapse_at
    if baseline > 2 * c.collapse_at:
        warn = warn | (v <= c.decline_factor * baseline)
    never = baseline <= c.collapse_at  # one call per trial from the start: a policy that does not act yet

    def make(sev: str, first: int, when: str) -> Finding:
        what = (f"The agent makes about one model call per trial ({when}; {fmt(float(v[-1]))} calls per trial): "
                "it answers without using its tools, or its tool calls do not parse, so it never acts."
                if never else
                f"Model calls per trial fell toward 1 ({when}; early median {fmt(baseline)}): the agent stops "
                "making tool calls, usually a tool-call parse failure.")
        return Finding("tool_call_collapse", sev, key, first, float(v[-1]), what,
                       "Match the tool-call parser to the model (Qwen XML tool calls need "
                       f"model.tool_call_parser.{scaffold}=qwen3_coder, not hermes; tool_parse_failures shows "
                       "unreadable calls) and look for JSONDecodeError in the vLLM log; a policy that has not learnt "
                       "to call the harness's tools needs supervised warm-up on its tool-call format before RL.")

    return sustained(steps, warn, v <= c.collapse_at, c.min_steps, make)


def check_same_reward(ctx: RunView, key: str) -> list[Finding]:
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

    return sustained(steps, mask, None, c.min_steps, make)


def check_stall(ctx: RunView, key: str) -> list[Finding]:
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


def check_nonfinite(ctx: RunView, key: str) -> list[Finding]:
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
