"""The plan (run directory): what it holds, that its verl command is equivalent, and that no secret is written."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import verl
from conftest import run_cli
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from liverl.recipe.build import copy_rollout_pool

SECRETS = {
    "WANDB_API_KEY": "wandb-secret-0123456789",
    "ANTHROPIC_API_KEY": "sk-ant-secret-abcdef",
    "HF_TOKEN": "hf_secret_tokenvalue",
}


@pytest.fixture(scope="module")
def plans(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("plans")
    out = {}
    for topology in ("1node", "3node"):
        run_dir = root / topology
        proc = run_cli(
            [f"topology={topology}", "launcher=dryrun", f"hydra.run.dir={run_dir}"],
            cwd=root,
            env={**SECRETS, "WANDB_MODE": ""},
        )
        assert proc.returncode == 0, proc.stderr
        out[topology] = run_dir
    return out


def test_run_directory_holds_the_plan(plans: dict[str, Path]) -> None:
    run_dir = plans["3node"]
    for name in ("liverl.yaml", "verl.yaml", "agent_loop.yaml", "command.sh", "env.json", "summary.txt", "run.json"):
        assert (run_dir / name).is_file(), name
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "planned" and run["recipe"] == "recipes.fully_async"
    assert run["gpus"] == {"nodes": 3, "gpus_per_node": 8, "total": 24}
    summary = (run_dir / "summary.txt").read_text()
    for words in (
        "trainer     2 node(s) x 8 GPUs",
        "rollout     1 node(s) x 8 GPUs",
        "fsdp_size=16",
        "sp=1",
        "8 prompts x 4 responses",
        "40000 prompt + 91072 response",
        "staleness_threshold=1",
    ):
        assert words in summary, words
    assert OmegaConf.load(run_dir / "liverl.yaml").topology.name == "3node"
    loop = OmegaConf.load(run_dir / "agent_loop.yaml")
    assert loop[0].name == OmegaConf.load(run_dir / "verl.yaml").actor_rollout_ref.rollout.agent.default_agent_loop
    assert loop[0].harbor.agent_name == "claude-code"


def test_metrics_go_to_the_run_directory_and_wandb_is_on_when_configured(plans: dict[str, Path]) -> None:
    """These plans were made with WANDB_API_KEY set (and WANDB_MODE empty): wandb is configured, so online."""
    env = json.loads((plans["1node"] / "env.json").read_text())
    assert env["VERL_FILE_LOGGER_PATH"] == str(plans["1node"] / "metrics.jsonl")
    assert env["WANDB_MODE"] == "online"
    verl_cfg = OmegaConf.load(plans["1node"] / "verl.yaml")
    assert {"file", "wandb"} <= set(verl_cfg.trainer.logger)


def test_wandb_is_offline_when_not_configured(tmp_path: Path) -> None:
    proc = run_cli(
        ["launcher=dryrun", f"hydra.run.dir={tmp_path}/r"], cwd=tmp_path, env={"WANDB_API_KEY": "", "WANDB_MODE": ""}
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "r" / "env.json").read_text())["WANDB_MODE"] == "offline"


def test_no_secret_lands_in_any_written_file(plans: dict[str, Path]) -> None:
    for run_dir in plans.values():
        files = [p for p in run_dir.rglob("*") if p.is_file()]
        assert len(files) >= 7
        for path in files:
            text = path.read_text(errors="replace")
            for value in SECRETS.values():
                assert value not in text, f"{value} leaked into {path}"


def _command_overrides(run_dir: Path) -> tuple[str, list[str]]:
    body = (run_dir / "command.sh").read_text().split("set -euo pipefail\n", 1)[1]
    words = shlex.split(body.replace("\\\n", " "))
    i = words.index("-m")
    return words[i + 1], words[i + 2 :]


@pytest.mark.parametrize("topology", ["1node", "3node"])
def test_command_sh_is_the_same_run_as_verl_yaml(plans: dict[str, Path], topology: str) -> None:
    """Parse command.sh's overrides with verl's own Hydra config: the result must equal verl.yaml."""
    run_dir = plans[topology]
    entry, overrides = _command_overrides(run_dir)
    pkg = Path(verl.__file__).parent
    if entry == "verl.trainer.main_ppo":
        config_dir, name = pkg / "trainer" / "config", "ppo_trainer"
    else:
        assert entry == "verl.experimental.fully_async_policy.fully_async_main"
        config_dir, name = pkg / "experimental" / "fully_async_policy" / "config", "fully_async_ppo_trainer"
    with initialize_config_dir(config_dir=str(config_dir), version_base=None):
        cfg = compose(config_name=name, overrides=overrides)
    if name == "fully_async_ppo_trainer":  # what fully_async_main does before run_ppo
        copy_rollout_pool(cfg)
    planned = OmegaConf.to_container(OmegaConf.load(run_dir / "verl.yaml"), resolve=True)
    assert OmegaConf.to_container(cfg, resolve=True) == planned
