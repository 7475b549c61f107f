"""Run the gate's trials: LiveRL's agent loop, proxy and Harbor trial runner, as a verl worker runs them.

Each trial is `HarborAgentLoop.run` on one task (the class verl instantiates per sample,
verl/experimental/agent_loop/agent_loop.py:681-692, built here with the same constructor arguments), talking to
the policy through the proxy session it opens; Harbor runs the scaffold's real agent in .venv-harbor.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from verl.experimental.agent_loop.agent_loop import DictConfigWrap
from verl.utils.dataset.rl_dataset import RLHFDataset

from liverl.conform.observe import ObservedLoop, Recorder, Trial
from liverl.conform.settings import Settings, load_double
from liverl.tiny.agentic import LOCAL_ENV

# verl's agent loop samples with the rollout's temperature/top_p/top_k and calculate_log_probs
# (experimental/agent_loop/agent_loop.py:590-596); their defaults: trainer/config/rollout/rollout.yaml:17-23,237
SAMPLING_DEFAULTS = {"temperature": 1.0, "top_p": 1.0, "top_k": -1, "calculate_log_probs": True}


def sampling_params(cfg: DictConfig) -> dict[str, Any]:
    rollout = {k: OmegaConf.select(cfg, f"verl.actor_rollout_ref.rollout.{k}", default=v)
               for k, v in SAMPLING_DEFAULTS.items()}
    return {"temperature": rollout["temperature"], "top_p": rollout["top_p"], "top_k": rollout["top_k"],
            "repetition_penalty": 1.0, "logprobs": rollout["calculate_log_probs"]}


def harbor_settings(cfg: DictConfig, s: Settings, workdir: Path) -> dict[str, Any]:
    harbor = OmegaConf.to_container(cfg.scaffold.harbor, resolve=True)
    harbor["trials_dir"] = str(workdir / "trials")
    if s.environment == "local":
        kwargs = dict(harbor.get("environment_kwargs") or {})
        runtime_root = (harbor.get("agent_kwargs") or {}).get("runtime_root")
        if runtime_root:  # the OpenHands SDK runtime, pre-baked at the mount path (liverl/scaffold/harbor_agents.py)
            kwargs["links"] = {runtime_root: str(s.agent_runtime)}
        harbor.update(environment_type=None, environment_import_path=LOCAL_ENV, environment_kwargs=kwargs,
                      agent_path_prepend=str(s.agent_bin))
    return harbor


class Policy:
    """The policy side: tokenizer, server manager, window, tasks and the chat template the sessions render with."""

    def __init__(self, cfg: DictConfig, s: Settings, workdir: Path):
        self.engine = None
        custom = OmegaConf.select(cfg, "verl.actor_rollout_ref.model.custom_chat_template")
        double = load_double(s.double) if s.policy == "double" or s.task_dir is None else None
        if s.policy == "double":
            self.tokenizer = double.tokenizer(workdir / "tokenizer")
            self.server = double.policy(self.tokenizer, s.scaffold)
            window = double.WINDOW
            self.template_source = "the double's tokenizer"
        else:
            from liverl.conform import engine

            self.engine = engine.VLLMPolicy.from_plan(cfg, s)
            self.tokenizer, self.server = self.engine.tokenizer, self.engine
            window = (cfg.window.prompt, cfg.window.response)
            self.template_source = f"model.path={cfg.model.path}"
            if custom:  # verl puts it on the tokenizer (workers/config/model.py:173-177)
                self.tokenizer.chat_template, self.template_source = str(custom), "custom_chat_template"
        if s.chat_template is not None:
            self.tokenizer.chat_template, self.template_source = s.chat_template.read_text(), str(s.chat_template)
        self.template = str(self.tokenizer.chat_template or "")
        self.window = (s.prompt_length or window[0], s.response_length or window[1])
        if s.task_dir is not None:
            self.tasks = sorted(p.parent for p in s.task_dir.glob("*/task.toml"))
        else:
            self.tasks = double.tasks(workdir / "tasks", s.tasks)


def _loop(cfg: DictConfig, s: Settings, policy: Policy, server: Recorder, harbor: dict) -> ObservedLoop:
    data = {"apply_chat_template_kwargs": OmegaConf.to_container(
        OmegaConf.select(cfg, "verl.data.apply_chat_template_kwargs", default=None) or OmegaConf.create({}))}
    config = OmegaConf.create({"actor_rollout_ref": {"rollout": {"prompt_length": policy.window[0],
                                                                 "response_length": policy.window[1]}},
                               "data": data})
    return ObservedLoop(trainer_config=DictConfigWrap(config), server_manager=server, tokenizer=policy.tokenizer,
                        processor=None, dataset_cls=RLHFDataset, data_config=DictConfigWrap(config.data),
                        scaffold=s.scaffold, tool_call_parser=s.parser, harbor=harbor)


async def _trials(cfg: DictConfig, s: Settings, policy: Policy, harbor: dict) -> list[Trial]:
    server = Recorder(policy.server)
    params = sampling_params(cfg)
    gate = asyncio.Semaphore(s.concurrency)

    async def one(i: int) -> Trial:
        task = policy.tasks[i % len(policy.tasks)]
        async with gate:
            loop = _loop(cfg, s, policy, server, harbor)
            trial = Trial(task=str(task), started=time.time())
            try:
                trial.output = await loop.run(dict(params), raw_prompt=[{"role": "user", "content": task.name}],
                                              extra_info={"harbor_task_path": str(task)})
            except Exception as e:  # the loop itself failed: a failed trial, reported by type and message
                trial.error = f"{type(e).__name__}: {e}"
                print(f"liverl.conform: trial on {task} raised {trial.error}", file=sys.stderr, flush=True)
            trial.ended = time.time()
        seen = getattr(loop, "observed", {})
        trial.session, trial.result = seen.get("session"), seen.get("result") or {}
        sid = getattr(trial.session, "id", None)
        trial.calls = [g for g in server.calls if g.request_id == sid]
        return trial

    return list(await asyncio.gather(*(one(i) for i in range(s.tasks))))


def run_trials(cfg: DictConfig, s: Settings, policy: Policy, workdir: Path) -> list[Trial]:
    return asyncio.run(_trials(cfg, s, policy, harbor_settings(cfg, s, workdir)))
