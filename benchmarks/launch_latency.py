"""launcher=ray_job latency, measured in one run on a local Ray head (127.0.0.1, 8 logical GPUs):

* submit -> RUNNING: from Ray's record of the submission to the job's first RUNNING poll (50 ms polls), plus
  the wall time of `python -m liverl.train ... launcher=ray_job launcher.wait=false` (plan, preflight, submit);
* an 8-job sweep: wall time of `python -m liverl.train -m ... launcher.wait=false` submitting 8 jobs.

The jobs run the plan's real entrypoint with a CPU-only TaskRunner double (tests/doubles.py); they are stopped
once measured. Run: .venv/bin/python benchmarks/launch_latency.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
os.environ["RAY_AUTH_MODE"] = "disabled"

from conftest import tiny_dataset  # noqa: E402
from doubles import DOUBLE  # noqa: E402
from raytest import TESTS, ray_job_head  # noqa: E402
from task_runner_double import TASK_RUNNER_DOUBLE_ENV  # noqa: E402

LOOP = "scaffold.agent_loop.target=verl.experimental.agent_loop.single_turn_agent_loop.SingleTurnAgentLoop"


def train(args: list[str], cwd: Path) -> float:
    """Run liverl.train; return its wall seconds."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "liverl.train", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, check=False)
    if proc.returncode:
        sys.exit(f"liverl.train failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return time.perf_counter() - start


def main() -> None:
    from ray.job_submission import JobSubmissionClient

    root = Path(tempfile.mkdtemp(prefix="launch_latency_"))
    env = {TASK_RUNNER_DOUBLE_ENV: DOUBLE, "PYTHONPATH": str(TESTS)}
    with ray_job_head(num_gpus=8, env=env) as url:
        client = JobSubmissionClient(url)
        base = ["topology=1node", "model=qwen25_0p5b", LOOP, *tiny_dataset(root), "launcher=ray_job",
                f"launcher.address={url}", "launcher.wait=false"]
        run_dir = root / "one"
        cli = train([*base, f"hydra.run.dir={run_dir}"], root)
        job_id = json.loads((run_dir / "run.json").read_text())["job_id"]
        while (status := client.get_job_status(job_id).value) in ("PENDING",):
            time.sleep(0.05)
        running_at = time.time()
        submitted_at = client.get_job_info(job_id).start_time / 1000
        print(f"submit -> {status}: {running_at - submitted_at:.2f} s (Ray's submission record to the first poll "
              f"seeing it); liverl.train plan + preflight + submit: {cli:.2f} s")

        sweep = root / "sweep"
        grid = ["train_bsz=8,16", "n_resp_per_prompt=4,8", "total_training_steps=1,2"]
        wall = train(["-m", *base, *grid, f"hydra.sweep.dir={sweep}"], root)
        ids = [json.loads(p.read_text())["job_id"] for p in sweep.rglob("run.json")]
        print(f"8-job sweep submitted: {wall:.2f} s for {len(ids)} jobs ({wall / max(len(ids), 1):.2f} s per job, "
              "one process: compose, build, plan, preflight and submit each)")
        for jid in [job_id, *ids]:
            client.stop_job(jid)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not all(client.get_job_status(j).is_terminal() for j in [job_id, *ids]):
            time.sleep(0.5)


if __name__ == "__main__":
    main()
