"""`python -m liverl.status RUN_DIR [--lines N] [--json]`: a run's state, job id, last metrics step and log tail.

The state is run.json's, checked against the live job where there is one (a Ray job through its dashboard),
so a job that died without recording its end shows as such. The log tail is the Ray job's log, else the Slurm
output, traceback or LiveRL log in the run directory; secret values are scrubbed from it.
Exit 0, 2 when RUN_DIR is not a run directory, 3 when its cluster wants a Ray token this machine lacks.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from liverl.errors import CONFIG_ERROR_EXIT
from liverl.health.streams import RunNotFoundError, read_run
from liverl.launch.jobs import client
from liverl.launch.lock import LOCK_NAME, liveness, read_holder
from liverl.launch.refusal import EXIT_NO_RESOURCES, LaunchRefused
from liverl.rundir import RUN_JSON
from liverl.secrets import scrub


def last_step(run_dir: Path) -> dict[str, Any] | None:
    """The last metrics step over every attempt's file."""
    try:
        stream = read_run(run_dir, keys=())
    except RunNotFoundError:
        return None
    if not len(stream.steps):
        return {"step": None, "files": [Path(s).name for s in stream.sources]}
    return {"step": int(stream.steps[-1]), "files": [Path(s).name for s in stream.sources]}


def job_view(run: dict[str, Any], lines: int) -> tuple[dict[str, Any] | None, list[str]]:
    """The Ray job's live status and log tail (None, [] when the run is not a Ray job)."""
    if not run.get("job_id") or not run.get("address"):
        return None, []
    try:
        jobs = client(run["address"])
        info = jobs.get_job_info(run["job_id"])
        logs = jobs.get_job_logs(run["job_id"]).splitlines()[-lines:]
    except (LaunchRefused, RuntimeError, ConnectionError) as exc:
        if isinstance(exc, LaunchRefused) and exc.code == EXIT_NO_RESOURCES:  # a token cluster without its token:
            raise  # say so, exit 3 (liverl.launch.ray_auth)
        return {"job_id": run["job_id"], "status": "UNKNOWN", "message": f"cannot ask {run['address']}: {exc}"}, []
    return {"job_id": run["job_id"], "status": info.status.value, "message": info.message}, logs


def local_tail(run_dir: Path, run: dict[str, Any], lines: int) -> list[str]:
    names = [f"slurm-{run['slurm_job_id']}.out"] if run.get("slurm_job_id") else []
    for name in [*names, "traceback.txt", "liverl.log", "errors.txt"]:
        if (run_dir / name).is_file():
            return [f"({name})", *(run_dir / name).read_text(errors="replace").splitlines()[-lines:]]
    return []


def status(run_dir: Path, lines: int = 20) -> dict[str, Any]:
    run = json.loads((run_dir / RUN_JSON).read_text())
    job, tail = job_view(run, lines)
    state = run.get("status")
    if job and job["status"] in ("FAILED", "STOPPED") and state in ("submitted", "running"):
        state = f"{job['status'].lower()} (the job ended without recording it: {job['message']})"
    holder = read_holder(run_dir / LOCK_NAME)
    lock = None
    if holder:
        verdict = {True: "live", False: "stale (its holder is gone)", None: "cannot be checked from here"}
        lock = f"{holder.describe()}: {verdict[liveness(holder)]}"
    return {
        "run_dir": str(run_dir),
        "state": state,
        "attempt": run.get("attempt", 0),
        "launcher": run.get("launcher"),
        "job": job,
        "slurm_job_id": run.get("slurm_job_id"),
        "metrics": last_step(run_dir),
        "resume_from": run.get("resume_from"),
        "lock": lock,
        "history": [f"{h['status']} {h['time']}" for h in run.get("history", [])],
        "log_tail": [scrub(line) for line in (tail or local_tail(run_dir, run, lines))],
    }


def job_line(s: dict[str, Any]) -> str | None:
    if s["job"]:
        return f"Ray job {s['job']['job_id']}: {s['job']['status']}"
    return f"Slurm job {s['slurm_job_id']}" if s["slurm_job_id"] else None


def render(s: dict[str, Any]) -> str:
    metrics = s["metrics"]
    step = "no metrics yet" if not metrics or metrics["step"] is None else (
        f"last step {metrics['step']} ({', '.join(metrics['files'])})")
    rows = [
        ("run", s["run_dir"]),
        ("state", f"{s['state']} (attempt {s['attempt']}, launcher {s['launcher']})"),
        ("job", job_line(s)),
        ("metrics", step),
        ("resume", s["resume_from"] or "fresh start"),
        ("lock", s["lock"] or "none"),
        ("history", " -> ".join(s["history"])),
    ]
    out = [f"{k:9} {v}" for k, v in rows if v]
    if s["log_tail"]:
        out += ["log tail:", *(f"  {line}" for line in s["log_tail"])]
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m liverl.status", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--lines", type=int, default=20, help="log lines to show")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not (args.run_dir / RUN_JSON).is_file():
        print(f"{args.run_dir}: not a run directory (no run.json)", file=sys.stderr)
        return CONFIG_ERROR_EXIT
    try:
        s = status(args.run_dir, args.lines)
    except LaunchRefused as exc:
        print(f"LiveRL: {exc}", file=sys.stderr)
        return exc.code
    print(json.dumps(s, indent=2) if args.json else render(s), end="\n" if args.json else "")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
