"""launcher=local against a real Ray head on 127.0.0.1: GPU preflight, then verl's real run_ppo.

The task runner is a test double (RecordingTaskRunner): the real one needs GPUs, vLLM and a model. Everything up
to it is real: the plan on disk, the recipe, verl's validate_config and run_ppo, ray.init attaching to the head.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import ray
from conftest import DATA, gpu_count, run_cli
from omegaconf import OmegaConf
from raytest import ray_head

from liverl.launch.local import check_agent_loop, run_plan
from liverl.launch.refusal import EXIT_NO_RESOURCES
from liverl.rundir import Plan

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def head_8gpu() -> str:
    with ray_head(num_gpus=8) as address:
        yield address


def make_plan(tmp_path: Path, *overrides: str) -> Path:
    run_dir = tmp_path / "run"
    proc = run_cli([*DATA, *overrides, "model=qwen25_0p5b", "launcher=dryrun", f"hydra.run.dir={run_dir}"],
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return run_dir


def recording_task_runner(out: Path):
    """Test double for verl's TaskRunner (a Ray actor): records the config it was given instead of training."""

    @ray.remote(num_cpus=1)
    class RecordingTaskRunner:
        def run(self, config) -> None:

            out.write_text(
                json.dumps(
                    {
                        "nnodes": config.trainer.nnodes,
                        "train_batch_size": config.data.train_batch_size,
                        "n": config.actor_rollout_ref.rollout.n,
                        "metrics": os.environ.get("VERL_FILE_LOGGER_PATH"),
                        "wandb_mode": os.environ.get("WANDB_MODE"),
                    }
                )
            )

    return RecordingTaskRunner


def test_local_launch_runs_the_recipe_through_verls_run_ppo(head_8gpu: str, tmp_path: Path, restore_environ) -> None:
    run_dir = make_plan(tmp_path, "topology=1node")
    record = tmp_path / "seen.json"
    try:
        code = run_plan(run_dir, address=head_8gpu, task_runner_class=recording_task_runner(record))
    finally:
        ray.shutdown()
    assert code == 0
    seen = json.loads(record.read_text())
    assert seen["nnodes"] == 1 and seen["train_batch_size"] == 8 and seen["n"] == 4
    assert seen["metrics"] == str(run_dir / "metrics.jsonl") and seen["wandb_mode"] in ("offline", "online")
    run = json.loads((run_dir / "run.json").read_text())
    assert [h["status"] for h in run["history"]] == ["planned", "running", "succeeded"]


def test_too_few_gpus_is_refused_before_anything_runs(head_8gpu: str, tmp_path: Path) -> None:
    run_dir = make_plan(tmp_path, "topology=3node")
    record = tmp_path / "seen.json"
    code = run_plan(run_dir, address=head_8gpu, task_runner_class=recording_task_runner(record))
    assert code == EXIT_NO_RESOURCES
    assert not record.exists()
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "refused" and "needs 3 node(s) x 8 GPUs" in run["reason"]


def test_embedded_ray_without_gpus_refuses_instead_of_hanging(tmp_path: Path) -> None:
    proc = run_cli(
        [*DATA, "topology=1node", "model=qwen25_0p5b", "launcher=local", f"hydra.run.dir={tmp_path}/r"],
        cwd=tmp_path,
    )
    assert proc.returncode == EXIT_NO_RESOURCES, proc.stderr
    # what Ray finds here: none on CI, the GPU host's own (one) under make test there
    assert f"an embedded Ray on this machine reports 1 node(s) with GPUs [{gpu_count()}]" in proc.stderr
    assert "Nothing was launched" in proc.stderr


def test_the_scaffolds_own_agent_loop_is_planned_and_passes_the_launch_check(tmp_path: Path) -> None:
    run_dir = make_plan(tmp_path, "topology=1node")
    entry = OmegaConf.load(run_dir / "agent_loop.yaml")[0]
    assert entry["_target_"] == "liverl.scaffold.agent_loop.HarborAgentLoop" and entry["name"] == "liverl_harbor"
    check_agent_loop(Plan.load(run_dir))  # imports it, as verl's workers will; raises when it does not import


def test_an_agent_loop_that_does_not_import_is_refused_at_plan_time(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = run_cli(["model=qwen25_0p5b", "scaffold.agent_loop.target=liverl.nope.Loop", "launcher=dryrun",
                    f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert proc.returncode == 2
    assert "[scaffold-imports] scaffold.agent_loop.target" in proc.stderr and "liverl.nope" in proc.stderr
    assert not (run_dir / "verl.yaml").exists()


def test_an_unreachable_cluster_is_refused_within_seconds(tmp_path: Path) -> None:
    run_dir = make_plan(tmp_path, "topology=1node")
    from raytest import free_port

    assert run_plan(run_dir, address=f"127.0.0.1:{free_port()}") == 2
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "refused" and "cannot reach a Ray cluster" in run["reason"]
