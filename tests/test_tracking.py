"""The plan's environment makes verl's own loggers write into the run directory: the file logger's metrics.jsonl
and an offline wandb run (real wandb, offline), with the plan's resolved config, no secret in either."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import run_cli

TRACK = """
import json, sys
from omegaconf import OmegaConf
from verl.utils.tracking import Tracking
run_dir = sys.argv[1]
cfg = OmegaConf.load(f"{run_dir}/verl.yaml")
t = Tracking(cfg.trainer.project_name, cfg.trainer.experiment_name, default_backend=list(cfg.trainer.logger),
             config=OmegaConf.to_container(cfg, resolve=True))
for step in (1, 2):
    t.log({"critic/score/mean": 0.25 * step, "actor/lr": 1e-6}, step=step)
del t
"""


def test_verl_loggers_write_into_the_run_directory(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    secret = "wandb-test-secret-do-not-write"
    proc = run_cli(["launcher=dryrun", f"hydra.run.dir={run_dir}"], cwd=tmp_path,
                   env={"WANDB_API_KEY": "", "WANDB_MODE": ""})
    assert proc.returncode == 0, proc.stderr
    plan_env = json.loads((run_dir / "env.json").read_text())
    env = {**os.environ, **plan_env, "WANDB_API_KEY": secret, "WANDB_SILENT": "true"}
    done = subprocess.run([sys.executable, "-c", TRACK, str(run_dir)], env=env, capture_output=True, text=True,
                          timeout=240, check=False)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [(x["step"], x["data"]["critic/score/mean"]) for x in lines] == [(1, 0.25), (2, 0.5)]
    offline = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline) == 1 and any(offline[0].rglob("*.wandb"))
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
