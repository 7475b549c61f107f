"""Harbor's TrialResult (as JSON) + the proxy session -> one termination reason.

The reasons are the ones verl's trajectory filter knows, defined once in liverl/guardrails/verl_keys.py
(TRAJ_FILTER_REASONS); `trajectory_filter.drop_reasons` names them. In order (the first that holds wins):
  timeout           the agent or the verifier ran out of time (AgentTimeoutError, VerifierTimeoutError;
                    Harbor still runs the verifier after an agent timeout, harbor/trial/single_step.py:83), or the
                    runner outlived LiveRL's whole-trial deadline (RunnerDeadlineExceeded: never retried)
  env_setup_failed  the environment or the agent's set-up failed (no agent phase ran), or no model call reached
                    the proxy (nothing to train on), or the retries for a missing verifier result ran out
  overlong          the context window filled (the proxy refused a turn, or the agent reported a context error)
  max_turns_reached the proxy's turn cap was reached
  agent_completed   otherwise (a non-zero agent exit included)
"""

from __future__ import annotations

from typing import Any

from liverl.guardrails.verl_keys import (
    AGENT_COMPLETED,
    ENV_SETUP_FAILED,
    MAX_TURNS_REACHED,
    OVERLONG,
    TIMEOUT,
    TRAJ_FILTER_REASONS,
)

REASONS = TRAJ_FILTER_REASONS  # every reason reason_of returns
TIMEOUT_ERRORS = {"AgentTimeoutError", "VerifierTimeoutError", "RunnerDeadlineExceeded"}
SETUP_ERRORS = {"EnvironmentStartTimeoutError", "AgentSetupTimeoutError", "HealthcheckError",
                "SandboxBuildFailedError"}
OVERFLOW_ERRORS = {"ContextWindowExceededError", "ContextLengthExceededError", "OutputLengthExceededError"}


def exception_type(result: dict[str, Any]) -> str | None:
    info = result.get("exception_info") or {}
    return info.get("exception_type")


def reward_of(result: dict[str, Any]) -> float | None:
    verifier = result.get("verifier_result") or {}
    rewards = verifier.get("rewards") or {}
    if "reward" in rewards:
        return float(rewards["reward"])
    return float(next(iter(rewards.values()))) if rewards else None


def agent_ran(result: dict[str, Any]) -> bool:
    timing = result.get("agent_execution") or {}
    return bool(timing.get("started_at"))


def reason_of(result: dict[str, Any], *, model_calls: int, session_limit: str | None) -> str:
    exc = exception_type(result)
    message = (result.get("exception_info") or {}).get("exception_message") or ""
    if exc in TIMEOUT_ERRORS or ("timed out" in message.lower() and exc and "Timeout" in exc):
        return TIMEOUT
    if exc in SETUP_ERRORS or (exc and not agent_ran(result)) or model_calls == 0:
        return ENV_SETUP_FAILED
    if session_limit == OVERLONG or exc in OVERFLOW_ERRORS:
        return OVERLONG
    if session_limit == MAX_TURNS_REACHED:
        return MAX_TURNS_REACHED
    return AGENT_COMPLETED


def should_retry(result: dict[str, Any], reason: str) -> bool:
    """A trial with no verifier result is tried again (bounded by the caller), except after a timeout."""
    return reward_of(result) is None and reason != TIMEOUT
