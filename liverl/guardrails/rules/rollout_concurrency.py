"""Rollout concurrency: the fully-async rollout pool keeps at least one trainer step of prompts in flight."""

from __future__ import annotations

from collections.abc import Iterable

from liverl.errors import Problem
from liverl.guardrails.framework import FATAL, Ctx, finding, rule
from liverl.guardrails.verl_keys import in_flight_cap


@rule("rollout-concurrency", "the rollout pool can keep at least one trainer step of prompts in flight")
def _concurrency(c: Ctx) -> Iterable[Problem]:
    if c.mode != "fully_async":
        return
    replicas, cap, required = in_flight_cap(c.verl)
    if cap < required:
        yield finding(
            FATAL,
            "verl.async_training.concurrent_samples_per_replica",
            c.verl.async_training.get("concurrent_samples_per_replica"),
            f"{replicas} vLLM replica(s) x this keep at most {cap} prompts in flight (fully_async_rollouter.py:"
            f"503-506, 970) while a trainer step needs {required}: every step waits for a second wave of agent "
            "episodes (up to scaffold.harbor.agent_timeout_sec each) and the trainer idles",
            f"leave it derived (liverl.derive.concurrency_per_replica), or at least {-(-required // max(replicas, 1))}",
        )
