"""Test doubles, named as such: they stand in where these machines cannot go (GPU, vLLM, a model).

CpuTaskRunner replaces verl's TaskRunner in a launched plan (selected with LIVERL_TASK_RUNNER_DOUBLE, which the
tests set in their Ray head's environment with tests/ on PYTHONPATH: sitecustomize.py then installs
task_runner_double.py's hook). It does one CPU-only "training step" with verl's own pieces: it finds
the checkpoint verl would resume from (find_latest_ckpt_path), logs the step with verl's FileLogger, and saves the
next checkpoint the way verl lays them out (global_step_N/ + latest_checkpointed_iteration.txt).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import ray

DOUBLE = "doubles:CpuTaskRunner"
SLEEP_ENV = "LIVERL_DOUBLE_SLEEP"  # seconds the step takes, so that a test can watch and stop a running job


@ray.remote(num_cpus=0)
class CpuTaskRunner:
    def run(self, config) -> None:
        from verl.utils.checkpoint.checkpoint_manager import find_latest_ckpt_path, get_checkpoint_tracker_filename
        from verl.utils.tracking import FileLogger

        root = config.trainer.default_local_dir
        latest = find_latest_ckpt_path(root)
        step = int(latest.rsplit("_", 1)[-1]) + 1 if latest else 1
        print(f"CpuTaskRunner: step {step} (resumed from {latest})", flush=True)
        time.sleep(float(os.environ.get(SLEEP_ENV, "0")))
        logger = FileLogger(config.trainer.project_name, config.trainer.experiment_name)
        logger.log({"training/global_step": step, "critic/score/mean": 0.5}, step=step)
        logger.finish()
        os.makedirs(os.path.join(root, f"global_step_{step}"), exist_ok=True)
        Path(get_checkpoint_tracker_filename(root)).write_text(str(step))
        seen = {
            "resumed_from": latest,
            "step": step,
            "pythonpath": os.environ.get("PYTHONPATH", ""),
            "secrets_present": sorted(k for k in ("WANDB_API_KEY", "HF_TOKEN") if os.environ.get(k)),
        }
        Path(os.environ["VERL_FILE_LOGGER_PATH"]).with_name(f"double_step_{step}.json").write_text(json.dumps(seen))
