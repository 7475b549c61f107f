"""Router replay (R2/R3) against the policy (MoE or dense), the engine and the rollout's vLLM."""

from __future__ import annotations

from collections.abc import Iterable

from liverl.errors import Problem
from liverl.guardrails.framework import FATAL, SKIP, WARN, Ctx, finding, rule
from liverl.guardrails.verl_keys import ROLLOUT_REPLAY_KEY, ROUTER_REPLAY_KEY, VLLM_R3_MIN


@rule("router-replay-policy", "router replay matches the policy (MoE or dense) and the engine")
def _rr_policy(c: Ctx) -> Iterable[Problem]:
    mode, rollout = c.v(ROUTER_REPLAY_KEY), c.v(ROLLOUT_REPLAY_KEY)
    source = "config.json" if c.hf_config is not None else f"model={c.cfg.model.name}"
    if mode in ("R2", "R3") and not c.is_moe:
        yield finding(
            FATAL,
            "router_replay",
            mode,
            f"router replay on a dense checkpoint ({source}): it fails deep "
            "into startup ('router replay is not wired for model_type') or trains silently without replay",
            "router_replay=disabled for dense models",
        )
    if c.is_moe and c.cfg.engine.name == "veomni" and mode in (None, "disabled"):
        yield finding(
            WARN,
            "router_replay",
            mode,
            "MoE policy without R3: training re-routes tokens the rollout routed "
            "differently; routing coverage collapses (~24% vs 100% measured)",
            "router_replay=R3",
        )
    if c.is_moe and c.cfg.engine.name == "fsdp":
        yield finding(
            WARN,
            "engine",
            "fsdp",
            "MoE policy on FSDP: verl 0.9.1 forces router replay off for FSDP, so rollout and training routing diverge",
            "engine=veomni (R3 router replay)",
        )
    if rollout and c.cfg.engine.name == "fsdp":
        yield finding(
            FATAL,
            f"verl.{ROLLOUT_REPLAY_KEY}",
            rollout,
            "the rollout records routing for R3, but verl 0.9.1 "
            "forces router replay off on the FSDP engine: the routes are never replayed",
            "engine=veomni for R3, or leave enable_rollout_routing_replay false",
        )
    if mode == "R3" and not rollout:
        yield finding(
            FATAL,
            f"verl.{ROLLOUT_REPLAY_KEY}",
            rollout,
            "R3 replays the rollout's routing, which the rollout only records with enable_rollout_routing_replay=true",
            "leave it to engine=veomni (true with R3)",
        )
    if mode == "R2" and c.v("algorithm.rollout_correction.bypass_mode"):
        yield finding(
            FATAL,
            "router_replay",
            mode,
            "R2 records routes while recomputing old log-probs, which bypass mode (the fully-async default) skips",
            "router_replay=R3, or verl.algorithm.rollout_correction.bypass_mode=false",
        )


@rule("vllm-r3-version", "R3 router replay has vLLM >= 0.22 where the rollout runs")
def _vllm_r3(c: Ctx) -> Iterable[Problem]:
    if c.v(ROLLOUT_REPLAY_KEY):
        yield finding(
            SKIP,
            "rollout image",
            f"vllm >= {'.'.join(map(str, VLLM_R3_MIN))}",
            "verl raises after the nodes are allocated when vLLM < 0.22 records routes for R3 (workers/rollout/"
            "vllm_rollout/vllm_async_server.py:437-450); checked on every node before training starts",
            "nothing to do here; a launch refuses with the fix if a node's vLLM is older",
        )
