"""launcher=slurm: render RUN_DIR/slurm.sbatch from the plan's topology, and submit it unless launcher.submit=false.

The script asks for the plan's nodes x GPUs, brings Ray up across the allocation with scripts/ray_cluster.sh
(the batch script's node is the head, srun starts a worker on every other node, the head waits for all of them),
runs the plan on the head (`python -m recipes.<mode> RUN_DIR --plan-sha256 ...`) and stops Ray on exit.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys

from omegaconf import DictConfig

from liverl.launch.refusal import EXIT_NO_RESOURCES, EXIT_OK, FORWARD_ENV, LaunchRefused, refuse
from liverl.launch.resume import plan_digest
from liverl.paths import LIVERL_ROOT
from liverl.rundir import Plan, set_status

SBATCH = "slurm.sbatch"

TEMPLATE = """#!/usr/bin/env bash
# LiveRL plan @EXPERIMENT@ on Slurm: @NODES@ node(s) x @GPUS@ GPUs (written by python -m liverl.train launcher=slurm).
# Submit: sbatch @SCRIPT@
# Ray comes up across the allocation (scripts/ray_cluster.sh); the plan runs on this first node, the head.
#SBATCH --job-name=liverl-@EXPERIMENT@
#SBATCH --nodes=@NODES@
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=@GPUS@
#SBATCH --exclusive
#SBATCH --time=@TIME@
#SBATCH --output=@RUN_DIR@/slurm-%j.out
@EXTRA@set -euo pipefail

RUN_DIR=@RUN_DIR_Q@
PY=@PYTHON_Q@
RAY_CLUSTER=@RAY_CLUSTER_Q@
NNODES=@NODES@
GPUS_PER_NODE=@GPUS@
PORT=${LIVERL_RAY_PORT:-@PORT@}
HEAD_IP=${LIVERL_NODE_IP:-$(hostname -I | awk '{print $1}')}
STATE_DIR=${LIVERL_RAY_STATE_DIR:-/tmp/liverl-ray-${SLURM_JOB_ID:-$$}}
PATH="$(dirname "$PY"):$PATH"
export PATH LIVERL_PYTHON="$PY" LIVERL_NODE_IP="$HEAD_IP" @FORWARD_VAR@=@FORWARD@

stop_ray() { bash "$RAY_CLUSTER" stop --state-dir "$STATE_DIR" || true; }
trap stop_ray EXIT

if ((NNODES > 1)); then
  # one Ray worker on every other node of the allocation; the srun step lasts as long as the job
  srun --nodes=$((NNODES - 1)) --ntasks=$((NNODES - 1)) --exclude="$(hostname)" env -u LIVERL_NODE_IP \\
    bash "$RAY_CLUSTER" worker --address "$HEAD_IP:$PORT" --num-gpus "$GPUS_PER_NODE" --state-dir "$STATE_DIR" \\
    --timeout @TIMEOUT@ --block &
fi
bash "$RAY_CLUSTER" head --node-ip "$HEAD_IP" --port "$PORT" --nodes "$NNODES" --gpus-per-node "$GPUS_PER_NODE" \\
  --num-gpus "$GPUS_PER_NODE" --state-dir "$STATE_DIR" --timeout @TIMEOUT@
RAY_ADDRESS="$HEAD_IP:$PORT" "$PY" -m @RECIPE@ "$RUN_DIR" --plan-sha256 @DIGEST@
"""


def render(plan: Plan, launcher: DictConfig, experiment: str) -> str:
    """The sbatch script for a plan (no secret: Slurm exports the submitter's environment to the job)."""
    need = plan.gpus
    run_dir = plan.run_dir.resolve()
    extra = [f"--partition={launcher.partition}"] if launcher.partition else []
    extra += [f"--account={launcher.account}"] if launcher.account else []
    extra += list(launcher.sbatch_args)
    values = {
        "EXPERIMENT": experiment,
        "NODES": str(need["nodes"]),
        "GPUS": str(need["gpus_per_node"]),
        "TIME": str(launcher.time),
        "SCRIPT": str(run_dir / SBATCH),
        "RUN_DIR": str(run_dir),
        "EXTRA": "".join(f"#SBATCH {a}\n" for a in extra),
        "RUN_DIR_Q": shlex.quote(str(run_dir)),
        "PYTHON_Q": shlex.quote(launcher.python or sys.executable),
        "RAY_CLUSTER_Q": shlex.quote(str(LIVERL_ROOT / "scripts" / "ray_cluster.sh")),
        "PORT": str(launcher.ray_port),
        "TIMEOUT": str(launcher.bringup_timeout),
        "FORWARD_VAR": FORWARD_ENV,
        "FORWARD": shlex.quote(",".join(launcher.forward_env)),
        "RECIPE": plan.recipe,
        "DIGEST": plan_digest(plan.run_dir),
    }
    text = TEMPLATE
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    return text


def launch(plan: Plan, launcher: DictConfig, experiment: str) -> int:
    """Write slurm.sbatch; with launcher.submit, sbatch it and record the Slurm job id."""
    script = plan.run_dir / SBATCH
    script.write_text(render(plan, launcher, experiment))
    script.chmod(0o755)
    print(f"LiveRL: wrote {script}")
    if not launcher.submit:
        print(f"  submit it with: sbatch {script}")
        return EXIT_OK
    sbatch = shutil.which("sbatch")
    if sbatch is None:
        return refuse(
            plan,
            LaunchRefused(
                "launcher=slurm: sbatch is not on PATH here, so nothing was submitted (the script is written: "
                f"{script}).\n    fix: run on the cluster's login node, or launcher.submit=false and `sbatch {script}` "
                "where Slurm is",
                EXIT_NO_RESOURCES,
            ),
        )
    proc = subprocess.run([sbatch, "--parsable", str(script)], capture_output=True, text=True, check=False)
    if proc.returncode:
        return refuse(plan, LaunchRefused(f"sbatch refused {script}: {proc.stderr.strip()}", EXIT_NO_RESOURCES))
    job_id = proc.stdout.strip().split(";")[0]
    set_status(plan.run_dir, "submitted", slurm_job_id=job_id, slurm_script=str(script))
    print(f"LiveRL: submitted Slurm job {job_id}; status: python -m liverl.status {plan.run_dir}")
    return EXIT_OK
