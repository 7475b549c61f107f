"""The gate's figures, from the proxy sessions and the loop's outputs, and the verdict.

Per trial (the session of its last attempt):
  turns          sampled turns (`session.calls`: generations the session asked for)
  chains         `len(session.chains)`; history rewrites `session.rewrites`
  trained turns  the turns of `session.trained_chain()`, when the loop hands verl any mask-1 token (0 when the
                 trajectory filter dropped the trial)
  sampled tokens `session.sampled_tokens` where the session counts them, else the mask-1 tokens of all chains;
                 trained tokens: the mask-1 tokens of the loop's AgentLoopOutput (what verl trains)
  parse failures `session.parse_failures` where the session counts them, else the sampled turns whose text opens
                 more <tool_call> blocks than the configured parser recognises
  waste          seconds the agent ran after the last trained token: Harbor's agent_execution.finished_at (else the
                 loop's return) minus the time the trained chain's last turn returned (`Chain.ended_at`, a
                 time.perf_counter(), where the chain has it; else the gate's own record of that generation). A trial
                 with nothing trained wastes its whole agent run.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime
from typing import Any

from liverl.conform.observe import Trial
from liverl.scaffold.toolcalls import parse

KEYS = ("scaffold", "trials", "turns", "chains_per_trial", "trained_turn_fraction", "trained_token_fraction",
        "parse_failures", "history_rewrites", "waste_s")


def _wall(stamp: Any) -> float | None:
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _tail_run(tokens: list[int], mask: list[int]) -> list[int]:
    """The last run of mask-1 tokens: the trained chain's last sampled turn."""
    end = len(mask)
    while end and mask[end - 1] != 1:
        end -= 1
    start = end
    while start and mask[start - 1] == 1:
        start -= 1
    return tokens[start:end]


def _counted(session: Any, name: str) -> int | None:
    """A count the session keeps (an attribute, a property or a method), or None where it keeps none."""
    value = getattr(session, name, None)
    return int(value() if callable(value) else value) if value is not None else None


def _parse_failures(t: Trial, tokenizer: Any, parser: str) -> int:
    counted = _counted(t.session, "parse_failures")
    if counted is not None:
        return int(counted)
    failures = 0
    for g in t.calls:
        text = tokenizer.decode(g.token_ids, skip_special_tokens=False)
        if text.count("<tool_call>") > len(parse(text, parser).tool_calls):
            failures += 1
    return failures


def _last_trained_wall(t: Trial, trained: bool) -> float | None:
    if not trained:
        return None
    chain = t.session.trained_chain()
    ended = getattr(chain, "ended_at", None)
    if ended is not None:
        return float(ended) + (time.time() - time.perf_counter())
    tail = _tail_run(chain.tokens, chain.mask)
    mine = [g for g in t.calls if g.request_id == t.session.id] or t.calls
    match = [g for g in mine if g.token_ids == tail]
    return (match or mine)[-1].ended if mine else None


def trial_figures(t: Trial, tokenizer: Any, parser: str) -> dict[str, Any]:
    s = t.session
    if s is None:  # the loop never reached `_output` with a session: nothing ran
        return {"turns": 0, "chains": 0, "rewrites": 0, "trained_turns": 0, "sampled_tokens": 0,
                "trained_tokens": 0, "parse_failures": 0, "waste_s": 0.0}
    chains = list(s.chains)
    sampled = _counted(s, "sampled_tokens")
    if sampled is None:
        sampled = sum(sum(c.mask) for c in chains)
    trained_tokens = int(sum(t.output.response_mask)) if t.output is not None else 0
    chain = s.trained_chain()
    trained = chain is not None and trained_tokens > 0
    agent = t.result.get("agent_execution") or {}
    agent_end = _wall(agent.get("finished_at")) or t.ended
    since = _last_trained_wall(t, trained) or _wall(agent.get("started_at")) or t.started
    return {
        "turns": int(s.calls), "chains": len(chains), "rewrites": int(s.rewrites),
        "trained_turns": chain.turns if trained else 0, "sampled_tokens": int(sampled),
        "trained_tokens": trained_tokens, "parse_failures": _parse_failures(t, tokenizer, parser),
        "waste_s": max(0.0, agent_end - since),
    }


def _ratio(a: float, b: float) -> float:
    return round(a / b, 4) if b else 0.0


def summarise(scaffold: str, trials: list[Trial], tokenizer: Any, parser: str) -> dict[str, Any]:
    per = [trial_figures(t, tokenizer, parser) for t in trials]
    total = {k: sum(p[k] for p in per) for k in per[0]} if per else {}
    turns = total.get("turns", 0)
    rewards = [t.output.reward_score for t in trials if t.output is not None]
    return {
        "scaffold": scaffold,
        "trials": len(trials),
        "turns": turns,
        "chains_per_trial": _ratio(total.get("chains", 0), len(trials)),
        "trained_turn_fraction": _ratio(total.get("trained_turns", 0), turns),
        "trained_token_fraction": _ratio(total.get("trained_tokens", 0), total.get("sampled_tokens", 0)),
        "parse_failures": total.get("parse_failures", 0),
        "parse_failure_fraction": _ratio(total.get("parse_failures", 0), turns),
        "history_rewrites": total.get("rewrites", 0),
        "waste_s": round(total.get("waste_s", 0.0), 3),
        "reward_mean": _ratio(sum(rewards), len(rewards)),
        "terminations": dict(Counter(t.error.split(":")[0] if t.error else
                                     str(t.output.extra_fields.get("termination_reason")) for t in trials)),
    }


def verdict(figures: dict[str, Any], thresholds: dict[str, float]) -> list[str]:
    """The thresholds a result misses (empty: it passes)."""
    missed = []
    if not figures["turns"]:
        missed.append(f"no turn was sampled (terminations: {figures['terminations']})")
    if figures["trained_turn_fraction"] < thresholds["trained_turn_fraction"]:
        missed.append(f"trained_turn_fraction {figures['trained_turn_fraction']} < "
                      f"{thresholds['trained_turn_fraction']}")
    if figures["parse_failure_fraction"] > thresholds["parse_failures"]:
        missed.append(f"parse failures {figures['parse_failure_fraction']:.1%} of turns > "
                      f"{thresholds['parse_failures']:.0%}")
    return missed
