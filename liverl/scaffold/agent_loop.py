"""HarborAgentLoop: verl's agent loop that runs one Harbor trial of the sample's task per sample.

Selected by the scaffold group: RUN_DIR/agent_loop.yaml holds {name: liverl_harbor, _target_: this class,
scaffold, tool_call_parser, harbor: {...}, trajectory_filter: {...}}; verl registers each entry of
`actor_rollout_ref.rollout.agent.agent_loop_config_path` (verl/experimental/agent_loop/agent_loop.py:530-536) and
instantiates the entry per sample with the extra keys as constructor arguments (agent_loop.py:681-692). The class
is deliberately not decorated with verl's `@register`: the worker imports this module at its first instantiate, and
the decorator would then replace the file's entry with a bare {"_target_"} (agent_loop.py:470-476), so every later
sample on that worker would get no harbor settings (seen on the GPU host: KeyError 'agent_timeout_sec' on 24 of 32
trials, then verl's "response_mask must contain at least one valid token").

Per sample: open a proxy session -> run the trial in .venv-harbor (the agent talks to the session) -> termination
reason -> AgentLoopOutput of the trained chain (session.py): prompt ids, response ids, mask (1 sampled, 0
observations), rollout log-probs, turns, the verifier's reward, and extra_fields.termination_reason plus the
trial's figures (extra_fields.scaffold, loop_metrics.py).

Trials per worker process are capped (`scaffold.harbor.max_concurrent_trials`; null: this worker's share of the
rollout's in-flight samples, `trial_cap`), so one node never starts more Harbor environments than its share.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
import weakref
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from verl.experimental.agent_loop.agent_loop import AgentLoopBase, AgentLoopMetrics, AgentLoopOutput

from liverl.guardrails.verl_keys import ENV_SETUP_FAILED, TIMEOUT
from liverl.scaffold import loop_metrics, reach, termination
from liverl.scaffold.proxy import get_proxy
from liverl.scaffold.session import Limits, Session, routed_experts_of
from liverl.scaffold.trial import run_trial, trial_spec

VAL_SPLITS = {"val", "validation", "test"}
DEFAULT_FILTER = {"filter": "liverl", "drop_reasons": [TIMEOUT, ENV_SETUP_FAILED]}
_CAPS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # event loop (one per verl worker) -> its semaphore
_PARAM_VERSION: dict[str, int] = {}  # the latest weights version this worker's generations reported


def plain(value: Any) -> Any:
    """verl builds the loop with hydra.utils.instantiate (experimental/agent_loop/agent_loop.py:683), which hands
    nested mappings over as DictConfig; the trial spec is JSON (trial.py), so they become plain containers."""
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value


def trial_cap(config: Any) -> int:
    """This worker's share of the rollout's in-flight samples: sync, one step's batch (data.train_batch_size x
    rollout.n, all generated at once); fully async, verl keeps concurrent_samples_per_replica x replicas in flight
    (fully_async_rollouter.py:503-506); split over the agent-loop workers (agent.num_workers)."""
    def get(key: str, default: Any = None) -> Any:
        value = OmegaConf.select(config, key, default=default)
        return default if value is None else value

    workers = max(1, int(get("actor_rollout_ref.rollout.agent.num_workers", 1)))
    per_replica = get("async_training.concurrent_samples_per_replica")
    if per_replica is not None:
        gpus = int(get("rollout.nnodes", 1)) * int(get("rollout.n_gpus_per_node", 1))
        tp = int(get("actor_rollout_ref.rollout.tensor_model_parallel_size", 1))
        inflight = int(per_replica) * max(1, gpus // max(1, tp))
    else:
        inflight = max(1, int(get("data.train_batch_size", 1))) * max(1, int(get("actor_rollout_ref.rollout.n", 1)))
    return max(1, math.ceil(inflight / workers))


def _semaphore(cap: int) -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    if loop not in _CAPS:
        _CAPS[loop] = asyncio.Semaphore(cap)
    return _CAPS[loop]


def task_path_of(kwargs: dict[str, Any]) -> str | None:
    extra = kwargs.get("extra_info") or {}
    return kwargs.get("harbor_task_path") or (extra.get("harbor_task_path") if isinstance(extra, dict) else None)


def is_validation(kwargs: dict[str, Any]) -> bool:
    """verl passes no validate flag to agent loops; LiveRL's task index marks validation rows with extra_info.split."""
    extra = kwargs.get("extra_info") or {}
    return bool(kwargs.get("validate")) or (isinstance(extra, dict) and extra.get("split") in VAL_SPLITS)


class HarborAgentLoop(AgentLoopBase):
    def __init__(self, *args, scaffold: str = "claude_code", tool_call_parser: str = "qwen3_coder",
                 harbor: dict | None = None, trajectory_filter: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.scaffold = scaffold
        self.parser = tool_call_parser
        self.harbor = dict(plain(harbor) or {})
        self.filter = dict(DEFAULT_FILTER, **(plain(trajectory_filter) or {}))
        self.limits = Limits(prompt_length=self.rollout_config.prompt_length,
                             response_length=self.rollout_config.response_length,
                             max_turns=int(self.harbor.get("max_turns", 200)))

    async def run(self, sampling_params: dict[str, Any], **kwargs) -> AgentLoopOutput:
        cap = self.harbor.get("max_concurrent_trials") or trial_cap(self.config)
        async with _semaphore(int(cap)):
            return await self._run(sampling_params, **kwargs)

    async def _run(self, sampling_params: dict[str, Any], **kwargs) -> AgentLoopOutput:
        proxy = await get_proxy(reach.bind_host(self.harbor))
        task_path, validate = task_path_of(kwargs), is_validation(kwargs)
        retries = int(self.harbor.get("max_retries", 2))
        started = time.perf_counter()
        session, result, reason = None, {}, "env_setup_failed"
        for attempt in range(retries + 1):
            session = proxy.open(Session(tokenizer=self.tokenizer, generate=self.server_manager.generate,
                                         sampling_params=sampling_params, limits=self.limits, parser=self.parser,
                                         chat_template_kwargs=self.apply_chat_template_kwargs))
            try:
                if task_path is None:
                    result = {"exception_info": {"exception_type": "NoTaskPath",
                                                 "exception_message": "the sample has no harbor_task_path"}}
                    break
                spec = trial_spec(self.harbor, task_path=str(task_path), validate=validate,
                                  trial_name=f"{self.scaffold}-{uuid.uuid4().hex[:12]}-a{attempt}",
                                  base_url=proxy.base_url(session, reach.advertise_host(self.harbor, proxy.host)))
                result = await run_trial(spec, self.harbor, self._deadline(validate))
            finally:
                proxy.close_session(session)
            reason = termination.reason_of(result, model_calls=session.calls, session_limit=session.limit_reason)
            if not termination.should_retry(result, reason):
                break
        else:
            reason = "env_setup_failed"  # every attempt ended without a verifier result
        return self._output(kwargs, session, result, reason, attempt + 1, time.perf_counter() - started)

    def _deadline(self, validate: bool) -> float:
        h = self.harbor
        agent = float(h["val_agent_timeout_sec"] if validate else h["agent_timeout_sec"])
        return agent + float(h.get("verifier_timeout_sec") or 600) + float(h.get("setup_timeout_sec") or 900)

    def _fallback_prompt(self, kwargs: dict[str, Any]) -> list[int]:
        messages = list(kwargs.get("raw_prompt") or [{"role": "user", "content": str(task_path_of(kwargs))}])
        text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False,
                                                  **self.apply_chat_template_kwargs)
        return self._cap_text_prompt_length(self.tokenizer.encode(text, add_special_tokens=False))

    def _output(self, kwargs, session: Session, result: dict, reason: str, attempts: int,
                seconds: float) -> AgentLoopOutput:
        chain = session.trained_chain()
        drop = self.filter["filter"] == "liverl" and reason in self.filter["drop_reasons"]
        if chain is None:  # nothing sampled: one unsampled token keeps verl's tensors non-empty
            prompt, tokens, mask, logp = self._fallback_prompt(kwargs), [self._pad_id()], [0], [0.0]
            steps, turns = [], 0
        else:
            prompt, tokens, mask, logp = chain.prompt_ids, chain.tokens, list(chain.mask), list(chain.logprobs)
            steps = chain.steps
            # verl counts user, assistant and tool messages (AgentLoopOutput.num_turns): no system message
            turns = sum(m.get("role") != "system" for m in chain.messages) + 1
        n = self.limits.response_length
        mask = [0] * len(mask[:n]) if drop else mask[:n]
        reward = termination.reward_of(result)
        low, high = self._param_versions(steps, kwargs)
        extra = {
            "termination_reason": reason, "trajectory_filter_drop": drop, "reward_missing": reward is None,
            "verifier_reward": reward,
            "trial_attempts": attempts, "history_rewrites": session.rewrites, "model_calls": session.calls,
            "trial_exception": termination.exception_type(result),
            "min_global_steps": low, "max_global_steps": high,
            "turn_scores": [], "tool_rewards": [],
            "scaffold": loop_metrics.trial_figures(session, chain, seconds),
        }
        return AgentLoopOutput(
            prompt_ids=prompt, response_ids=tokens[:n], response_mask=mask, response_logprobs=logp[:n],
            # verl's tensors need a number (rm_scores); a missing verifier reward is flagged (reward_missing,
            # verifier_reward None) and left out of LiveRL's reward metric (loop_metrics.batch_metrics)
            reward_score=reward if reward is not None else 0.0, num_turns=turns,
            routed_experts=routed_experts_of(chain, len(prompt) + n),
            metrics=AgentLoopMetrics(generate_sequences=session.generate_seconds,
                                     tool_calls=max(0.0, seconds - session.generate_seconds)),
            extra_fields=extra,
        )

    def _param_versions(self, steps: list[int], kwargs: dict[str, Any]) -> tuple[int, int]:
        """The weights versions the trained tokens were sampled with. A trial with no generation has none: it
        takes the sample's global_steps (the v1 trainer passes it), else the version this worker's latest
        generation reported, else 0 (the first version of a fully-async run: fully_async_trainer.py:143), so verl's
        fully-async statistics, abs(max - min) over every row (experimental/fully_async_policy/detach_utils.py:
        151-153), get a number and a zero span."""
        if steps:
            _PARAM_VERSION["latest"] = max(_PARAM_VERSION.get("latest", 0), max(steps))
            return min(steps), max(steps)
        version = kwargs.get("global_steps")
        if version is None:
            version = _PARAM_VERSION.get("latest", 0)
        return version, version

    def _pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return pad if pad is not None else self.tokenizer.eos_token_id
