"""Hydra multirun: one run directory per job, every job planned, and a failing job does not hide the others."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_cli, run_dirs
from omegaconf import OmegaConf


def test_multirun_over_two_groups_plans_every_job(tmp_path: Path) -> None:
    proc = run_cli(
        ["-m", "engine=fsdp,veomni", "topology=1node,3node", "launcher=dryrun", f"hydra.sweep.dir={tmp_path}/sweep"],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    dirs = run_dirs(tmp_path / "sweep")
    assert len(dirs) == 4
    seen = set()
    for d in dirs:
        assert json.loads((d / "run.json").read_text())["status"] == "planned"
        cfg = OmegaConf.load(d / "liverl.yaml")
        verl_cfg = OmegaConf.load(d / "verl.yaml")
        seen.add((cfg.engine.name, cfg.topology.name))
        assert verl_cfg.actor_rollout_ref.actor.strategy == {"fsdp": "fsdp2", "veomni": "veomni"}[cfg.engine.name]
        assert verl_cfg.trainer.nnodes == {"1node": 1, "3node": 2}[cfg.topology.name]
    assert seen == {("fsdp", "1node"), ("fsdp", "3node"), ("veomni", "1node"), ("veomni", "3node")}


def test_a_failing_job_does_not_hide_the_others(tmp_path: Path) -> None:
    # staleness_threshold is meaningless for the synchronous 1node job: that job fails, the 3node job plans
    proc = run_cli(
        ["-m", "topology=1node,3node", "staleness_threshold=0", "launcher=dryrun", f"hydra.sweep.dir={tmp_path}/sweep"],
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    status = {
        OmegaConf.load(d / ".hydra" / "config.yaml").topology.name: json.loads((d / "run.json").read_text())["status"]
        for d in run_dirs(tmp_path / "sweep")
    }
    assert status == {"1node": "config_error", "3node": "planned"}
    assert "2 job(s), 1 failed" in proc.stdout
