"""launcher=local launches the scaffold's real agent loop: the plan's agent_loop.yaml entry, instantiated the way
verl's AgentLoopWorker does it (hydra.utils.instantiate, agent_loop.py:681-692), runs one sample through a real
Harbor trial inside the launched task runner.

The task runner is a test double (GPU, vLLM and a model cannot run here); inside it the policy is the scripted
double. Everything from the CLI to the plan, the launch (GPU preflight against a real Ray head, the agent-loop
import check), verl's run_ppo and the agent loop with its proxy and Harbor trial is real.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import ray
from raytest import ray_head

from liverl.launch.local import run_plan

pytestmark = [pytest.mark.ray, pytest.mark.harbor, pytest.mark.slow]
HERE = Path(__file__).resolve().parent
HARNESS = [
    "scaffold.harbor.agent_name=null", "scaffold.harbor.agent_import_path=mini_agent:MiniAgent",
    "scaffold.harbor.model_api_format=openai_chat_completions", "scaffold.harbor.environment_type=null",
    "scaffold.harbor.environment_import_path=local_env:LocalEnvironment", "scaffold.harbor.agent_timeout_sec=60",
]


def loop_runner(out: Path, task: Path, tokenizer_dir: Path):
    """Test double for verl's TaskRunner: runs one sample through the plan's agent loop with the scripted policy."""

    @ray.remote(num_cpus=1)
    class LoopTaskRunner:
        def run(self, config) -> None:
            import asyncio

            import hydra
            from omegaconf import OmegaConf
            from verl.experimental.agent_loop.agent_loop import DictConfigWrap
            from verl.trainer.ppo import core_algos
            from verl.utils.dataset.rl_dataset import RLHFDataset

            # LiveRL's filter reaches this Ray worker through verl itself: the plan's runtime env names
            # liverl.scaffold.filter_algos in VERL_USE_EXTERNAL_MODULES (nothing here imported it)
            registered = ("liverl.scaffold.filter_algos" in sys.modules
                          and "liverl_grpo_filtered" in core_algos.ADV_ESTIMATOR_REGISTRY
                          and "liverl_vanilla" in core_algos.POLICY_LOSS_REGISTRY)

            sys.path.insert(0, str(HERE))
            os.environ["PYTHONPATH"] = os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])
            from policy_double import ScriptedPolicy, after_tool_output, hermes_call
            from tokenizer_fixture import build_tokenizer

            tok = build_tokenizer(tokenizer_dir)
            policy = ScriptedPolicy(tok, lambda p: "Done." if after_tool_output(p)
                                    else hermes_call("bash", command="echo 42 > answer.txt"))
            entry = OmegaConf.load(config.actor_rollout_ref.rollout.agent.agent_loop_config_path)[0]
            assert entry.name == config.actor_rollout_ref.rollout.agent.default_agent_loop
            assert entry.tool_call_parser == "hermes"  # model=qwen25_0p5b; the double writes hermes JSON
            loop = hydra.utils.instantiate(entry, trainer_config=DictConfigWrap(config), server_manager=policy,
                                           tokenizer=tok, processor=None, dataset_cls=RLHFDataset,
                                           data_config=DictConfigWrap(config.data))
            sample = {"raw_prompt": [{"role": "user", "content": "task"}],
                      "extra_info": {"harbor_task_path": str(task)}}
            result = asyncio.run(loop.run({"temperature": 1.0, "logprobs": True}, **sample))
            sampled = [t for t, m in zip(result.response_ids, result.response_mask, strict=True) if m]
            out.write_text(json.dumps({"cls": type(loop).__qualname__, "reward": result.reward_score,
                                       "filter_registered": registered,
                                       "reason": result.extra_fields["termination_reason"],
                                       "faithful": sampled == [t for c in policy.calls for t in c.token_ids]}))

    return LoopTaskRunner


def test_local_launch_runs_the_scaffolds_real_agent_loop(tmp_path: Path, restore_environ) -> None:
    from tasks import write_task

    run_dir = tmp_path / "run"
    data = []
    for split in ("train", "val"):
        (tmp_path / f"{split}.parquet").write_bytes(b"PAR1")  # exists (a launch checks); the double reads no data
        data.append(f"{split}_files={tmp_path / f'{split}.parquet'}")
    env = {"PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "liverl.train", *data, "model=qwen25_0p5b", "topology=1node",
                           *HARNESS, "launcher=dryrun", f"hydra.run.dir={run_dir}"], cwd=tmp_path,
                          env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    os.environ["PYTHONPATH"] = env["PYTHONPATH"]
    record = tmp_path / "seen.json"
    with ray_head(num_gpus=8) as address:
        try:
            code = run_plan(run_dir, address=address,
                            task_runner_class=loop_runner(record, write_task(tmp_path), tmp_path / "tok"))
        finally:
            ray.shutdown()
    assert code == 0
    seen = json.loads(record.read_text())
    assert seen == {"cls": "HarborAgentLoop", "reward": 1.0, "reason": "agent_completed", "faithful": True,
                    "filter_registered": True}
