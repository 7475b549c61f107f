"""The documented launch scripts: thin wrappers that map the documented environment onto overrides and
forward every extra argument."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO
from omegaconf import OmegaConf

SCRIPTS = {
    "sync_1node_cc.sh": "1node",
    "fully_async_2nodes_qwen35_cc_clean.sh": "2node",
    "fully_async_3nodes_qwen35_cc_clean.sh": "3node",
}


def run_script(name: str, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "USE_NEW_VERL")}
    full_env.update({"LIVERL_PYTHON": sys.executable, **env})
    return subprocess.run(
        ["bash", str(REPO / "scripts" / name), *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=300,
        check=False,
    )


# presets that no user script launches, and the entry point that does (make smoke on a GPU host)
OTHER_ENTRY = {"smoke_tiny": REPO / "liverl" / "tiny" / "smoke.py"}


def test_every_documented_script_exists_and_names_an_existing_preset() -> None:
    presets = {p.stem for p in (REPO / "conf" / "experiment").glob("*.yaml")}
    assert {n.removesuffix(".sh") for n in SCRIPTS} == presets - set(OTHER_ENTRY)
    for preset, entry in OTHER_ENTRY.items():
        assert f"experiment={preset}" in entry.read_text()
    for name in SCRIPTS:
        assert f'lib/liverl_train.sh" {name.removesuffix(".sh")} "$@"' in (REPO / "scripts" / name).read_text()


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_script_dry_run_maps_the_environment_and_forwards_arguments(name: str, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    # a harness of the user's, by import path: the plan checks that Harbor's environment can load it
    (tmp_path / "my_agents").mkdir()
    (tmp_path / "my_agents" / "mounted.py").write_text(
        "from harbor.agents.installed.claude_code import ClaudeCode as Base\n\n\nclass ClaudeCode(Base):\n    pass\n"
    )
    env = {
        "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
        "TRAIN_BSZ": "16",
        "N_RESP": "2",
        "MODEL_PATH": "/ckpt/qwen35",
        "HARBOR_AGENT_NAME": "null",
        "HARBOR_AGENT_IMPORT_PATH": "my_agents.mounted:ClaudeCode",
        "TRAJ_FILTER_ENABLE": "False",
        "TRAJ_FILTER_DROP_REASONS": "timeout,env_setup_failed",
    }
    proc = run_script(
        name, ["--dry-run", "verl.trainer.save_freq=7", "rollout_is=token", f"hydra.run.dir={run_dir}"], env
    )
    assert proc.returncode == 0, proc.stderr
    cfg, verl_cfg = OmegaConf.load(run_dir / "liverl.yaml"), OmegaConf.load(run_dir / "verl.yaml")
    assert cfg.topology.name == SCRIPTS[name] and cfg.launcher.name == "dryrun"
    assert (cfg.train_bsz, cfg.n_resp_per_prompt) == (16, 2)
    assert verl_cfg.actor_rollout_ref.rollout.n == 2
    assert verl_cfg.actor_rollout_ref.model.path == "/ckpt/qwen35"
    assert cfg.scaffold.harbor.agent_name is None
    assert cfg.scaffold.harbor.agent_import_path == "my_agents.mounted:ClaudeCode"
    assert cfg.trajectory_filter.enable is False and list(cfg.trajectory_filter.drop_reasons) == [
        "timeout",
        "env_setup_failed",
    ]
    assert verl_cfg.trainer.save_freq == 7 and verl_cfg.algorithm.rollout_correction.rollout_is == "token"
    env_json = json.loads((run_dir / "env.json").read_text())
    assert env_json["HARBOR_AGENT_NAME"] == "null"


def test_command_line_wins_over_the_environment(tmp_path: Path) -> None:
    proc = run_script(
        "fully_async_3nodes_qwen35_cc_clean.sh",
        ["--dry-run", "train_bsz=32", f"hydra.run.dir={tmp_path}/r"],
        {"TRAIN_BSZ": "16"},
    )
    assert proc.returncode == 0, proc.stderr
    assert OmegaConf.load(tmp_path / "r" / "liverl.yaml").train_bsz == 32


def test_an_unknown_argument_is_refused_not_dropped(tmp_path: Path) -> None:
    proc = run_script("sync_1node_cc.sh", ["--dry-run", "stalenes_threshold=1", f"hydra.run.dir={tmp_path}/r"], {})
    assert proc.returncode == 2
    assert "stalenes_threshold:" in proc.stderr and "staleness_threshold" in proc.stderr
