"""LiveRL's Harbor agent loop: the proxy is reachable where the agent runs, the filter's loss is sound, one
tool-call format per model, and the verifier's reward is the one trained on."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from liverl.errors import Problem
from liverl.guardrails.framework import FATAL, Ctx, finding, rule
from liverl.guardrails.verl_keys import FILTER_ESTIMATOR as ESTIMATOR
from liverl.guardrails.verl_keys import HARBOR_LOOP

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def is_loopback(host: object) -> bool:
    text = str(host or "").strip().strip("[]").lower()
    if text in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(text).is_loopback
    except ValueError:
        return False


def _harbor_loop(c: Ctx) -> bool:
    return c.cfg.scaffold.agent_loop.name == HARBOR_LOOP


@rule("proxy-unreachable", "the agent, which runs inside the task environment, can reach the proxy")
def _proxy_reachable(c: Ctx) -> Iterable[Problem]:
    if not _harbor_loop(c):
        return
    h = c.cfg.scaffold.harbor
    bind, advertise = h.get("proxy_bind_host"), h.get("proxy_advertise_host")
    given, key = (advertise, "scaffold.harbor.proxy_advertise_host") if advertise else (
        bind, "scaffold.harbor.proxy_bind_host")
    if is_loopback(given):
        env = h.get("environment_import_path") or h.get("environment_type") or "docker"
        yield finding(
            FATAL, key, given,
            f"Harbor runs the agent inside the task environment ({env}: agents/installed/base.py:1072-1083), "
            "another network namespace where a loopback address is the sandbox itself: every model call fails, "
            "every trial ends env_setup_failed and the run learns nothing",
            "scaffold.harbor.proxy_bind_host=auto and proxy_advertise_host=null (docker: host.docker.internal via "
            "host-gateway; Kubernetes: this node's address), or an address the sandbox routes to",
        )


@rule("filter-seq-mean", "LiveRL's trajectory filter runs with a loss aggregation it keeps sound")
def _filter_seq_mean(c: Ctx) -> Iterable[Problem]:
    mode = c.v("actor_rollout_ref.actor.loss_agg_mode", "token-mean")
    if c.v("algorithm.adv_estimator") == ESTIMATOR and str(mode).startswith("seq-mean"):
        yield finding(
            FATAL, "verl.actor_rollout_ref.actor.loss_agg_mode", mode,
            "verl's v1 trainer divides seq-mean losses by ppo_mini_batch_size x n (trainer/ppo/v1/trainer_base.py:"
            "1851 -> workers/utils/losses.py:67 -> trainer/ppo/core_algos.py:1184-1202), so the rows the filter "
            "drops stay in the denominator and the step shrinks with the drop rate",
            "loss_agg_mode=token-mean (its token count is the sum of the loss mask: dropped rows are out of it), "
            "or trajectory_filter.enable=false",
        )


@rule("tool-parser-conflict", "one model writes one tool-call format")
def _one_parser(c: Ctx) -> Iterable[Problem]:
    parsers = c.cfg.model.get("tool_call_parser")
    if not hasattr(parsers, "items"):
        return
    names = sorted({str(v) for v in parsers.values() if v is not None})
    if len(names) > 1:
        yield finding(
            FATAL, "model.tool_call_parser", dict(parsers),
            f"{c.cfg.model.name}'s chat template fixes one tool-call format, so one of {names} cannot match what "
            "the policy writes: its calls stay text (liverl/scaffold/toolcalls.py) and every trial under that "
            "scaffold fails",
            "name the parser of the model's chat template for every scaffold (Qwen3 instruct templates: hermes "
            "JSON in <tool_call>; Qwen3-Coder / Qwen3.5: qwen3_coder XML)",
        )


@rule("reward-model-colocated", "a reward model does not overwrite the verifier's reward")
def _colocated_rm(c: Ctx) -> Iterable[Problem]:
    if not _harbor_loop(c) or not c.v("reward.reward_model.enable", False):
        return
    if not c.v("reward.reward_model.enable_resource_pool", False):
        yield finding(
            FATAL, "verl.reward.reward_model.enable", True,
            "a colocated reward model scores every batch after the rollout and replaces the Harbor verifier's "
            "reward (trainer/ppo/v1/trainer_base.py:577; experimental/reward_loop/reward_loop.py:313-321)",
            "reward.reward_model.enable=false (the verifier's reward is the task's), or give the reward model its "
            "own pool (reward.reward_model.enable_resource_pool=true), which leaves a set reward_score alone",
        )
