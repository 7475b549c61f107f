"""launcher=local: run a written plan in this process, on Ray, through its recipe (also what a Ray job or a Slurm
allocation runs: `python -m recipes.<mode> RUN_DIR`)."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from pathlib import Path

from omegaconf import OmegaConf

from liverl.errors import CONFIG_ERROR_EXIT
from liverl.guardrails.at_launch import launch_blockers
from liverl.guardrails.ledger import record_if_smoke
from liverl.launch.cluster import ray_preflight
from liverl.launch.lock import LockHeld, RunLock
from liverl.launch.node_probe import check_nodes
from liverl.launch.refusal import EXIT_OK, EXIT_RUN_FAILED, FORWARD_ENV, LaunchRefused, refuse
from liverl.launch.resume import plan_digest
from liverl.rundir import RUNTIME_ENV_VARS, Plan, set_status
from liverl.secrets import env_scrubber


def attempt_metrics_path(run_dir: Path) -> Path:
    """Each attempt gets its own metrics file (verl's FileLogger truncates on open): metrics.jsonl, metrics.1.jsonl."""
    path, n = run_dir / "metrics.jsonl", 0
    while path.exists():
        n += 1
        path = run_dir / f"metrics.{n}.jsonl"
    return path


def _import_target(target: str) -> None:
    module, _, name = target.replace(":", ".").rpartition(".")
    getattr(importlib.import_module(module), name)


def check_agent_loop(plan: Plan) -> None:
    """The scaffold's agent-loop class must import where the trainer runs, or every rollout would fail."""
    for entry in OmegaConf.load(plan.run_dir / "agent_loop.yaml"):
        try:
            _import_target(entry["_target_"])
        except (ImportError, AttributeError, ValueError) as exc:
            raise LaunchRefused(
                f"scaffold.agent_loop.target: the agent loop class {entry['_target_']!r} does not import here "
                f"({type(exc).__name__}: {exc}); every rollout would fail.\n    fix: install the package that provides "
                "it, or set scaffold.agent_loop.target=<module.Class> to a verl agent loop that exists",
                CONFIG_ERROR_EXIT,
            ) from None


def check_image(plan: Plan, address: str) -> None:
    """Guardrails judged where and when the plan launches: paths on this disk, the smoke ledger for this cluster,
    and the GPU x kernel stack the trainer will use."""
    blockers = launch_blockers(plan.run_dir, address)
    if blockers:
        raise LaunchRefused("\n".join(str(p) for p in blockers), CONFIG_ERROR_EXIT)


def run_plan(
    run_dir: str | os.PathLike,
    address: str | None = None,
    task_runner_class: type | None = None,
    forward_env: tuple[str, ...] = (),
) -> int:
    """Run a written plan with its recipe in this process. Returns an exit code; records run.json transitions.

    forward_env names variables (secrets such as WANDB_API_KEY) passed from this environment to the Ray workers
    in memory only: they are never written to the run directory.
    """
    plan = Plan.load(run_dir)
    lock = RunLock(plan.run_dir, plan.verl_config().trainer.default_local_dir)
    try:
        owned = lock.acquire()  # False: this process (liverl.train) already holds it
    except LockHeld as exc:
        return refuse(plan, LaunchRefused(str(exc), CONFIG_ERROR_EXIT))
    for note in lock.notes:
        print(f"LiveRL: {note}", file=sys.stderr)
    try:
        return _run_plan(plan, address, task_runner_class, forward_env)
    finally:
        if owned:
            lock.release()


def _run_plan(plan: Plan, address: str | None, task_runner_class: type | None, forward_env: tuple[str, ...]) -> int:
    # "local" starts a new embedded Ray; a bare ray.init() would attach to (or hang on) whatever cluster
    # /tmp/ray last recorded on this machine
    address = address or os.environ.get("RAY_ADDRESS") or "local"
    try:
        check_agent_loop(plan)
        check_image(plan, address)
        ray_preflight(plan, address)
        check_nodes(plan, address)
    except LaunchRefused as exc:
        return refuse(plan, exc)
    metrics = attempt_metrics_path(plan.run_dir)
    env = {**plan.env(), "VERL_FILE_LOGGER_PATH": str(metrics)}
    os.environ.update(env)
    os.environ["RAY_ADDRESS"] = address  # verl's run_ppo calls ray.init() with no address
    config = plan.verl_config()
    secrets = {k: os.environ[k] for k in forward_env if os.environ.get(k)}
    OmegaConf.update(config, RUNTIME_ENV_VARS, {**env, **secrets}, merge=True, force_add=True)
    set_status(plan.run_dir, "running", metrics=str(metrics), pid=os.getpid())
    try:
        importlib.import_module(plan.recipe).run(config, task_runner_class)
    except Exception:  # the training itself failed: record it, keep the traceback
        (plan.run_dir / "traceback.txt").write_text(env_scrubber().scrub(traceback.format_exc()))
        set_status(plan.run_dir, "failed")
        traceback.print_exc()
        return EXIT_RUN_FAILED
    # the smoke pass first: whoever sees "succeeded" (a submitter polling run.json) finds it in the ledger
    record_if_smoke(plan.run_dir, address)
    set_status(plan.run_dir, "succeeded")
    return EXIT_OK


def run_plan_cli(argv: list[str]) -> int:
    """`python -m recipes.<mode> RUN_DIR [--plan-sha256 DIGEST]`: run a plan written earlier.

    With --plan-sha256 (what launcher=ray_job and launcher=slurm run) a plan whose files differ from the ones that
    were checked is refused. Secrets named in LIVERL_FORWARD_ENV are passed on to the Ray workers in memory."""
    parser = argparse.ArgumentParser(prog="python -m recipes.<mode>", description="run a plan written earlier")
    parser.add_argument("run_dir", help="a run directory written by python -m liverl.train")
    parser.add_argument("--plan-sha256", help="refuse unless the plan's files have this digest")
    args = parser.parse_args(argv)
    run_dir = Path(args.run_dir)
    if not (run_dir / "run.json").is_file():
        print(f"{run_dir}: not a run directory (no run.json); write one with python -m liverl.train", file=sys.stderr)
        return CONFIG_ERROR_EXIT
    if args.plan_sha256 and plan_digest(run_dir) != args.plan_sha256:
        return refuse(
            Plan.load(run_dir),
            LaunchRefused(
                f"{run_dir}: the plan's files (verl.yaml, agent_loop.yaml, env.json) differ from the plan that was "
                f"checked and submitted (sha256 {args.plan_sha256[:12]}...). Nothing was launched.\n    fix: relaunch "
                "with python -m liverl.train (a run directory must be on a disk the head node shares)",
                CONFIG_ERROR_EXIT,
            ),
        )
    forward = tuple(filter(None, os.environ.get(FORWARD_ENV, "").split(",")))
    return run_plan(run_dir, forward_env=forward)
