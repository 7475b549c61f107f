"""`python -m liverl.stop RUN_DIR`: stop a run's live launch (a Ray job, a Slurm job, or a local process).

Records `stopped` in run.json and removes the run's lock when its holder is gone. Exit 0 stopped (or nothing
was running), 1 the launch could not be stopped, 2 RUN_DIR is not a run directory, 3 its cluster wants a Ray token
this machine lacks.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from liverl.errors import CONFIG_ERROR_EXIT
from liverl.launch.jobs import client
from liverl.launch.lock import LOCK_NAME, liveness, read_holder
from liverl.launch.refusal import EXIT_NO_RESOURCES, LaunchRefused
from liverl.rundir import RUN_JSON, set_status

LIVE = ("submitted", "running")


def _stop_ray_job(address: str, job_id: str, timeout: float = 60) -> str | None:
    """Ask the cluster to stop the job and wait (bounded) until it has; None when stopped, else why not."""
    try:
        jobs = client(address)
        jobs.stop_job(job_id)
        deadline = time.monotonic() + timeout
        while not jobs.get_job_status(job_id).is_terminal():
            if time.monotonic() > deadline:
                return f"Ray job {job_id} did not stop within {timeout:.0f}s"
            time.sleep(0.5)
    except (LaunchRefused, RuntimeError, ConnectionError) as exc:
        if isinstance(exc, LaunchRefused) and exc.code == EXIT_NO_RESOURCES:  # a token cluster without its token:
            raise  # say so, exit 3 (liverl.launch.ray_auth)
        return f"cannot stop Ray job {job_id} at {address}: {exc}"
    return None


def _stop_process(pid: int, timeout: float = 30) -> str | None:
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        time.sleep(0.2)
    return f"pid {pid} did not exit within {timeout:.0f}s of SIGTERM"


def stop(run_dir: Path) -> tuple[int, str]:
    """Stop what runs the plan in run_dir; returns (exit code, message)."""
    run = json.loads((run_dir / RUN_JSON).read_text())
    holder = read_holder(run_dir / LOCK_NAME)
    if run.get("job_id") and run.get("address") and (run.get("status") in LIVE or (holder and holder.job_id)):
        error = _stop_ray_job(run["address"], run["job_id"])
        what = f"Ray job {run['job_id']}"
    elif run.get("slurm_job_id") and run.get("status") in LIVE:
        scancel = shutil.which("scancel")
        if scancel is None:
            return 1, f"scancel is not on PATH here: run `scancel {run['slurm_job_id']}` where Slurm is"
        proc = subprocess.run([scancel, str(run["slurm_job_id"])], capture_output=True, text=True, check=False)
        error, what = (proc.stderr.strip() or None) if proc.returncode else None, f"Slurm job {run['slurm_job_id']}"
    elif holder and not holder.job_id and holder.host == socket.gethostname() and liveness(holder):
        error, what = _stop_process(holder.pid), f"pid {holder.pid}"
    else:
        return 0, f"{run_dir}: nothing to stop (state {run.get('status')})"
    if error:
        return 1, error
    if json.loads((run_dir / RUN_JSON).read_text()).get("status") in LIVE:
        set_status(run_dir, "stopped", stopped_by=f"python -m liverl.stop on {socket.gethostname()}")
    holder = read_holder(run_dir / LOCK_NAME)
    if holder and liveness(holder) is False:
        (run_dir / LOCK_NAME).unlink(missing_ok=True)
    return 0, f"{run_dir}: stopped {what}"


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not (Path(argv[0]) / RUN_JSON).is_file():
        print("usage: python -m liverl.stop RUN_DIR  (a run directory written by python -m liverl.train)",
              file=sys.stderr)
        return CONFIG_ERROR_EXIT
    try:
        code, message = stop(Path(argv[0]))
    except LaunchRefused as exc:
        code, message = exc.code, f"LiveRL: {exc}"
    print(message, file=sys.stderr if code else sys.stdout)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
