"""launcher=ray_job: submit a plan to an existing Ray cluster through Ray's Job Submission API.

The job's entrypoint is `python -m recipes.<mode> RUN_DIR --plan-sha256 DIGEST`: it runs the plan that was
checked, and refuses one whose files changed. The run directory must be on a disk the head node shares (the
trainers write metrics and checkpoints there). The runtime env carries LiveRL's code (py_modules), the plan's
environment (the new verl's PYTHONPATH included), the job id, and the names of secrets to pass on: secret values
are read from the head's environment, and only those listed in launcher.send_env travel with the job. A smoke
job records its pass in this machine's smoke ledger under the dashboard URL it was submitted to (guardrails.ledger).
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from liverl.errors import CONFIG_ERROR_EXIT
from liverl.guardrails.ledger import CLUSTER_ENV, LEDGER_ENV, ledger_path, record_if_smoke
from liverl.launch.cluster import ray_preflight
from liverl.launch.jobs import client, dashboard_address
from liverl.launch.lock import JOB_ID_ENV, RunLock
from liverl.launch.node_facts import COMMIT_FILE, liverl_commit
from liverl.launch.ray_auth import job_env
from liverl.launch.refusal import EXIT_NO_RESOURCES, EXIT_OK, EXIT_RUN_FAILED, FORWARD_ENV, LaunchRefused, refuse
from liverl.launch.resume import plan_digest
from liverl.paths import LIVERL_ROOT
from liverl.rundir import RUN_JSON, Plan, set_status
from liverl.secrets import scrub

# run.json states that mean "the job has not recorded its own end"
OPEN_STATES = ("submitted", "running")


def stage_code(job_id: str, into: Path) -> list[str]:
    """Copies of liverl/ and recipes/ marked with the job id, for py_modules: Ray names a package by its content,
    and a package shared with a finished job can be garbage-collected while the next job's actors fetch it."""
    out = []
    for package in ("liverl", "recipes"):
        copy = into / package
        shutil.copytree(LIVERL_ROOT / package, copy, ignore=shutil.ignore_patterns("__pycache__"))
        (copy / "LIVERL_JOB").write_text(job_id + "\n")
        out.append(str(copy))
    (into / "liverl" / COMMIT_FILE).write_text((liverl_commit() or "") + "\n")  # the copy is no git checkout
    return out


def runtime_env(plan: Plan, job_id: str, launcher: DictConfig, code: list[str], address: str) -> dict[str, Any]:
    """What the job carries: LiveRL's code, the plan's environment, the job id, the secrets' names (not values),
    and the smoke ledger's cluster name and path as this submit uses them (Ray gives the job another RAY_ADDRESS)."""
    env = {**plan.env(), JOB_ID_ENV: job_id, FORWARD_ENV: ",".join(launcher.forward_env)}
    env.update({CLUSTER_ENV: address, LEDGER_ENV: str(ledger_path().resolve())})
    # verl's run_ppo calls ray.init(runtime_env=...) inside the job: let Ray merge it with the job's
    env["RAY_OVERRIDE_JOB_RUNTIME_ENV"] = "1"
    env.update(job_env())  # a token cluster: the mode, never the token (the job's driver runs on the head)
    env.update({k: os.environ[k] for k in launcher.send_env if k in os.environ})
    out: dict[str, Any] = {"env_vars": env}
    if code:
        out["py_modules"] = code
    return out


def entrypoint(plan: Plan, python: str) -> str:
    run_dir = str(plan.run_dir.resolve())
    return shlex.join([python, "-m", plan.recipe, run_dir, "--plan-sha256", plan_digest(plan.run_dir)])


def submit(plan: Plan, launcher: DictConfig, lock: RunLock) -> int:
    """Preflight, submit, record the job id; with launcher.wait follow the logs and exit with the job's status."""
    try:
        address = dashboard_address(launcher.address)
        jobs = client(address)
        ray_preflight(plan, address)
    except LaunchRefused as exc:
        return refuse(plan, exc)
    job_id = f"liverl_{time.strftime('%Y%m%d_%H%M%S')}_{uuid.uuid4().hex[:8]}"
    command = entrypoint(plan, launcher.python)
    lock.hand_to_job(job_id, address)  # before submitting: the job adopts the lock as it starts
    set_status(plan.run_dir, "submitted", job_id=job_id, address=address, entrypoint=command)
    try:
        with tempfile.TemporaryDirectory(prefix="liverl-job-") as stage:
            code = stage_code(job_id, Path(stage)) if launcher.upload_code else []
            jobs.submit_job(
                entrypoint=command,
                submission_id=job_id,
                runtime_env=runtime_env(plan, job_id, launcher, code, address),
                metadata={"liverl_run_dir": str(plan.run_dir.resolve()), "liverl_plan": plan_digest(plan.run_dir)},
            )
    except Exception as exc:  # the dashboard refused the job (bad runtime env, upload failed)
        set_status(plan.run_dir, "failed", reason=f"submission failed: {exc}")
        print(f"LiveRL: the Ray cluster at {address} did not accept the job: {exc}", file=sys.stderr)
        return EXIT_RUN_FAILED
    lock.detach()
    print(f"LiveRL: submitted Ray job {job_id} to {address}\n  status: python -m liverl.status {plan.run_dir}\n"
          f"  stop:   python -m liverl.stop {plan.run_dir}", flush=True)
    if not launcher.wait:
        return EXIT_OK
    code = follow(jobs, job_id, plan.run_dir)
    if code == EXIT_OK:  # also here, for a head that does not share this machine's ledger
        record_if_smoke(plan.run_dir, address)
    return code


def follow(jobs, job_id: str, run_dir: Path) -> int:
    """Print the job's logs until it ends; record its end if the job could not; return its exit code."""

    async def tail() -> None:
        async for lines in jobs.tail_job_logs(job_id):
            print(scrub(lines), end="", flush=True)

    asyncio.run(tail())
    deadline = time.monotonic() + 60
    while not (info := jobs.get_job_info(job_id)).status.is_terminal() and time.monotonic() < deadline:
        time.sleep(0.5)
    return settle(run_dir, info)


def settle(run_dir: Path, info) -> int:
    """Exit code of a finished job (the entrypoint's own, e.g. 3 for a refusal); run.json records how it ended
    when the job did not get to (it was stopped, or died)."""
    status = info.status.value
    if status == "SUCCEEDED":
        return EXIT_OK
    if json.loads((run_dir / RUN_JSON).read_text()).get("status") in OPEN_STATES:
        set_status(run_dir, "stopped" if status == "STOPPED" else "failed", job_message=info.message)
    code = info.driver_exit_code
    return code if code in (EXIT_RUN_FAILED, CONFIG_ERROR_EXIT, EXIT_NO_RESOURCES) else EXIT_RUN_FAILED
