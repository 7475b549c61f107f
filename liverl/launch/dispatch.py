"""One job of `python -m liverl.train`: lock the run directory, build, write the plan, hand it to its launcher."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from liverl.errors import CONFIG_ERROR_EXIT, ConfigError
from liverl.launch import ray_job, slurm
from liverl.launch.local import run_plan
from liverl.launch.lock import LockHeld, RunLock
from liverl.launch.provenance import write_provenance
from liverl.launch.resume import record_plan, start_attempt
from liverl.recipe.build import build
from liverl.recipe.knobs import leaves
from liverl.recipe.plan import write_config_error, write_plan
from liverl.rundir import set_status
from liverl.secrets import Scrubber, scrub_tree

LAUNCHED: list[str] = []  # run directories handed to a launcher that runs something


def launches(cfg: DictConfig) -> bool:
    """Whether this invocation starts (or submits) a run, as opposed to only writing the plan."""
    return cfg.launcher.name != "dryrun" and cfg.launcher.get("submit", True) is not False


def plan_and_launch(cfg: DictConfig, run_dir: Path) -> int:
    """One job: lock the run directory, build, write the plan (a new attempt when the directory has one), launch
    it. Returns the job's exit code."""
    lock = RunLock(run_dir)
    try:
        lock.acquire()
    except LockHeld as exc:
        print(f"LiveRL: {exc}", file=sys.stderr)
        return CONFIG_ERROR_EXIT
    try:
        for note in lock.notes:
            print(f"LiveRL: {note}", file=sys.stderr)
        return _plan_and_launch(cfg, run_dir, lock)
    finally:
        lock.release()  # a submitted Ray job holds it from here (RunLock.detach)
        # one secret policy for every file written here (.hydra/, the plan, logs, run.json, provenance)
        scrub_tree(run_dir, Scrubber.from_sources(os.environ, dict(leaves(OmegaConf.to_container(cfg)))))


def _plan_and_launch(cfg: DictConfig, run_dir: Path, lock: RunLock) -> int:
    start_attempt(run_dir)
    try:
        b = build(cfg, launching=launches(cfg))
    except ConfigError as exc:
        write_config_error(run_dir, exc)
        write_provenance(run_dir, None)
        print(exc, file=sys.stderr)
        return CONFIG_ERROR_EXIT
    if cfg.launcher.name != "dryrun":
        try:
            lock.add(b.verl.trainer.default_local_dir)
        except LockHeld as exc:
            set_status(run_dir, "refused", reason=str(exc))
            print(f"LiveRL: {exc}", file=sys.stderr)
            return CONFIG_ERROR_EXIT
    plan = write_plan(b, run_dir)
    write_provenance(run_dir, b.source)
    record_plan(run_dir, b.verl)
    print((run_dir / "summary.txt").read_text(), end="")
    print(f"  plan        {run_dir}")
    if cfg.launcher.name == "dryrun":
        return 0
    LAUNCHED.append(str(run_dir))
    if cfg.launcher.name == "ray_job":
        return ray_job.submit(plan, cfg.launcher, lock)
    if cfg.launcher.name == "slurm":
        return slurm.launch(plan, cfg.launcher, cfg.experiment_name)
    return run_plan(plan.run_dir, address=cfg.launcher.address, forward_env=tuple(cfg.launcher.forward_env))
