"""Builds HarborAgentLoop the way verl's AgentLoopWorker does (agent_loop.py:681-692), around the policy double."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from omegaconf import OmegaConf
from policy_double import ScriptedPolicy
from verl.experimental.agent_loop.agent_loop import DictConfigWrap
from verl.utils.dataset.rl_dataset import RLHFDataset

from liverl.scaffold.agent_loop import HarborAgentLoop
from liverl.scaffold.session import Limits, Session

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
HARBOR_PYTHON = REPO / ".venv-harbor" / "bin" / "python"
SAMPLING = {"temperature": 1.0, "top_p": 1.0, "top_k": -1, "repetition_penalty": 1.0, "logprobs": True}


def mask1(chain) -> list[int]:
    """The chain's trained (mask-1) tokens, in order."""
    return [t for t, m in zip(chain.tokens, chain.mask, strict=True) if m == 1]


def new_session(tokenizer, policy, parser: str = "qwen3_coder", template_kwargs=None, **limits) -> Session:
    """A proxy session on `policy` (anything with verl's server-manager `generate`), 4096/4096 tokens, 20 turns."""
    limits = {"prompt_length": 4096, "response_length": 4096, "max_turns": 20} | limits
    return Session(tokenizer=tokenizer, generate=policy.generate, sampling_params={}, limits=Limits(**limits),
                   parser=parser, chat_template_kwargs=template_kwargs)


def harbor_settings(tmp: Path, **overrides) -> dict:
    settings = {
        "python": os.environ.get("LIVERL_HARBOR_PYTHON", str(HARBOR_PYTHON)),
        "max_turns": 8, "agent_timeout_sec": 60, "val_agent_timeout_sec": 120, "verifier_timeout_sec": 60,
        "max_retries": 1, "trials_dir": str(tmp / "trials"),
        "agent_name": None, "agent_import_path": "mini_agent:MiniAgent",
        "model_api_format": "openai_chat_completions",
        "environment_type": None, "environment_import_path": "local_env:LocalEnvironment",
        "environment_kwargs": {},
    }
    settings.update(overrides)
    return settings


def make_loop(tokenizer, policy: ScriptedPolicy, harbor: dict, parser: str = "qwen3_coder",
              prompt_length: int = 4096, response_length: int = 4096) -> HarborAgentLoop:
    config = OmegaConf.create({"actor_rollout_ref": {"rollout": {"prompt_length": prompt_length,
                                                                 "response_length": response_length}},
                               "data": {"apply_chat_template_kwargs": {}}})
    return HarborAgentLoop(
        trainer_config=DictConfigWrap(config), server_manager=policy, tokenizer=tokenizer, processor=None,
        dataset_cls=RLHFDataset, data_config=DictConfigWrap(config.data), scaffold="test",
        tool_call_parser=parser, harbor=harbor,
    )


def run_sample(loop: HarborAgentLoop, task: Path, **kwargs):
    os.environ["PYTHONPATH"] = os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])
    sample = {"raw_prompt": [{"role": "user", "content": "task"}], "extra_info": {"harbor_task_path": str(task)},
              **kwargs}
    return asyncio.run(loop.run(dict(SAMPLING), **sample))
