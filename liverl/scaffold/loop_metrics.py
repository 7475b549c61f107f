"""Per-trial scaffold figures (in each row's extra_fields) and their per-step aggregates (`scaffold/*`), plus the
reward of the trajectories the filter kept.

Per trial (HarborAgentLoop._output -> extra_fields.scaffold): turns (model calls answered), chains (token chains
the session opened; >1 means the agent rewrote its history), trained_turn_fraction (turns of the trained chain /
all turns), trained_token_fraction (sampled tokens with mask 1 in the trained chain / all sampled tokens),
parse_failures (turns with a tool-call block the parser could not turn into a call), waste_s (seconds from the
last trainable token to the end of the trial: sandbox time spent on nothing the policy learns from), trial_s.

Per step (`batch_metrics`, over the rows of a batch): `scaffold/<figure>/mean` (and `/max` for waste and trial
seconds), `scaffold/multi_turn_fraction` (trials with 2 or more turns / trials), and
`trajectory_filter/score/kept_mean`: the verifier reward averaged over the trajectories the filter kept whose
verifier produced a reward, beside verl's `critic/score/mean` (trainer/ppo/metric_utils.py:468-476), which averages
every row, dropped ones and missing rewards (written as 0.0 to keep verl's tensors valid) included.
"""

from __future__ import annotations

import time
from typing import Any

PREFIX = "scaffold/"
KEPT_SCORE = "trajectory_filter/score/kept_mean"
REWARD_MISSING = "trajectory_filter/reward_missing"
FIGURES = ("turns", "chains", "trained_turn_fraction", "trained_token_fraction", "parse_failures", "rewrites",
           "waste_s", "trial_s")
MAXED = ("waste_s", "trial_s")
MULTI_TURN = f"{PREFIX}multi_turn_fraction"  # share of trials whose agent called the model at least twice


def _sampled(chain: Any) -> int:
    return sum(1 for m in chain.mask if m == 1)


def trial_figures(session: Any, chain: Any, trial_s: float, now: float | None = None) -> dict[str, float | None]:
    """One trial's figures from the session (liverl/scaffold/session.py); `now` and Chain.ended_at are on
    time.perf_counter's clock."""
    chains = list(session.chains)
    turns = sum(c.turns for c in chains)
    sampled = session.sampled_tokens
    ended = chain.ended_at if chain is not None else None
    now = time.perf_counter() if now is None else now
    return {
        "turns": float(turns),
        "chains": float(len(chains)),
        "trained_turn_fraction": (chain.turns / turns) if chain is not None and turns else None,
        "trained_token_fraction": (_sampled(chain) / sampled) if chain is not None and sampled else None,
        "parse_failures": float(session.parse_failures),
        "rewrites": float(session.rewrites),
        "waste_s": max(0.0, now - ended) if ended is not None else None,
        "trial_s": float(trial_s),
    }


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def batch_metrics(extra_fields: list[dict | None]) -> dict[str, float]:
    """The step's scaffold figures and the kept trajectories' reward; a figure no row has is left out (never NaN)."""
    rows = [f for f in extra_fields if isinstance(f, dict)]
    metrics: dict[str, float] = {}
    figures = [f.get("scaffold") for f in rows if isinstance(f.get("scaffold"), dict)]
    for name in FIGURES:
        values = [float(v[name]) for v in figures if v.get(name) is not None]
        if values:
            metrics[f"{PREFIX}{name}/mean"] = _mean(values)
            if name in MAXED:
                metrics[f"{PREFIX}{name}/max"] = max(values)
    turns = [float(v["turns"]) for v in figures if v.get("turns") is not None]
    if turns:
        metrics[MULTI_TURN] = sum(t >= 2 for t in turns) / len(turns)
    kept = [float(f["verifier_reward"]) for f in rows
            if not f.get("trajectory_filter_drop") and f.get("verifier_reward") is not None]
    if kept:
        metrics[KEPT_SCORE] = _mean(kept)
    if rows:
        metrics[REWARD_MISSING] = float(sum(bool(f.get("reward_missing")) for f in rows))
    return metrics
