"""launcher=ray_job against a real Ray head on 127.0.0.1 (its dashboard's Job Submission API, 8 logical GPUs).

Each job runs the plan's real entrypoint (`python -m recipes.sync_ppo RUN_DIR --plan-sha256 ...`) through verl's
run_ppo. Only verl's TaskRunner is a test double (doubles.CpuTaskRunner: CPU only), named in the head's
environment, which its jobs inherit. Secrets are planted in every LiveRL process the tests start.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from conftest import run_cli, run_dirs, tiny_dataset
from doubles import DOUBLE, SLEEP_ENV
from raytest import TESTS, ray_job_head
from task_runner_double import TASK_RUNNER_DOUBLE_ENV

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]
SECRETS = {
    "WANDB_API_KEY": "wandb-secret-0123456789",
    "ANTHROPIC_API_KEY": "sk-ant-secret-abcdef",
    "HF_TOKEN": "hf_secret_tokenvalue",
}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ray_job")


@pytest.fixture(scope="module")
def head() -> str:
    with ray_job_head(num_gpus=8, env={TASK_RUNNER_DOUBLE_ENV: DOUBLE, "PYTHONPATH": str(TESTS)}) as url:
        yield url


def train(root: Path, head: str, *args: str, env: dict[str, str] | None = None):
    """python -m liverl.train [-m] ARGS launcher=ray_job for a small CPU-only plan, secrets in the environment."""
    multirun = [a for a in args if a == "-m"]
    args = tuple(a for a in args if a != "-m")
    base = [*multirun, "topology=1node", "model=qwen25_0p5b", *tiny_dataset(root), "launcher=ray_job",
            f"launcher.address={head}"]
    return run_cli([*base, *args], cwd=root, env={**SECRETS, **(env or {})})


def run_json(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


def jobs(head: str):
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(head)


def wait_for(predicate, timeout: float = 120, what=lambda: "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what()}"
        time.sleep(0.5)


def test_a_submitted_plan_runs_its_entrypoint_and_a_relaunch_resumes(head: str, root: Path) -> None:
    run_dir = root / "run"
    proc = train(root, head, f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr
    run = run_json(run_dir)
    assert [h["status"] for h in run["history"]] == ["planned", "submitted", "running", "succeeded"]
    assert "CpuTaskRunner: step 1 (resumed from None)" in proc.stdout  # wait=true followed the job's log
    info = jobs(head).get_job_info(run["job_id"])
    assert info.status.value == "SUCCEEDED"
    assert info.entrypoint == f"python -m recipes.sync_ppo {run_dir} --plan-sha256 {run['plan_sha256']}"
    assert info.metadata["liverl_run_dir"] == str(run_dir)
    assert not (run_dir / ".liverl.lock").exists()  # the job released the lock it adopted
    assert json.loads((run_dir / "metrics.jsonl").read_text())["step"] == 1

    again = train(root, head, f"hydra.run.dir={run_dir}")
    assert again.returncode == 0, again.stderr
    run = run_json(run_dir)
    assert run["attempt"] == 1 and run["resume_from"] == str(run_dir / "checkpoints" / "global_step_1")
    assert run["attempts"][0]["status"] == "succeeded" and run["attempts"][0]["job_id"] != run["job_id"]
    assert "resumes from" in (run_dir / "summary.txt").read_text()
    assert (run_dir / "attempts" / "0" / "verl.yaml").is_file()
    # every attempt's metrics are kept: verl's FileLogger truncates, so attempt 1 wrote its own file
    assert json.loads((run_dir / "metrics.jsonl").read_text())["step"] == 1
    assert json.loads((run_dir / "metrics.1.jsonl").read_text())["step"] == 2

    status = run_cli([str(run_dir)], cwd=root, module="liverl.status")
    assert status.returncode == 0, status.stderr
    assert f"Ray job {run['job_id']}: SUCCEEDED" in status.stdout
    assert "last step 2 (metrics.jsonl, metrics.1.jsonl)" in status.stdout
    assert "CpuTaskRunner: step 2" in status.stdout  # the job's log tail


def test_a_resource_shortfall_is_refused_before_submission(head: str, root: Path) -> None:
    before = {j.submission_id for j in jobs(head).list_jobs()}
    run_dir = root / "too_big"
    proc = train(root, head, "topology=3node", f"hydra.run.dir={run_dir}")
    assert proc.returncode == 3, proc.stderr
    assert "needs 3 node(s) x 8 GPUs" in proc.stderr and f"the Ray cluster at {head}" in proc.stderr
    run = run_json(run_dir)
    assert run["status"] == "refused" and "job_id" not in run
    assert {j.submission_id for j in jobs(head).list_jobs()} == before
    assert not (run_dir / ".liverl.lock").exists()


def test_status_logs_stop_and_the_lock_of_a_running_job(head: str, root: Path) -> None:
    run_dir = root / "long"
    started = time.monotonic()
    proc = train(root, head, "launcher.wait=false", f"launcher.send_env=[{SLEEP_ENV}]", f"hydra.run.dir={run_dir}",
                 env={SLEEP_ENV: "300"})
    assert proc.returncode == 0, proc.stderr
    job_id = run_json(run_dir)["job_id"]
    assert f"submitted Ray job {job_id}" in proc.stdout
    wait_for(lambda: "CpuTaskRunner: step 1" in jobs(head).get_job_logs(job_id),
             what=lambda: f"the job's first step; its log:\n{jobs(head).get_job_logs(job_id)[-3000:]}")
    assert time.monotonic() - started < 280  # wait=false returned long before the job could finish

    status = run_cli([str(run_dir), "--json"], cwd=root, module="liverl.status")
    view = json.loads(status.stdout)
    assert view["state"] == "running" and view["job"]["status"] == "RUNNING"
    assert "CpuTaskRunner: step 1" in "\n".join(view["log_tail"])
    assert view["lock"].startswith(f"Ray job {job_id}") and view["lock"].endswith(": live")

    # a second launch into the directory of a live job is refused, and writes nothing
    plan_before = (run_dir / "verl.yaml").read_text()
    clash = run_cli(["launcher=dryrun", f"hydra.run.dir={run_dir}"], cwd=root)
    assert clash.returncode == 2 and "in use by a live launch, Ray job " + job_id in clash.stderr
    assert (run_dir / "verl.yaml").read_text() == plan_before and not (run_dir / "attempts").exists()

    stop = run_cli([str(run_dir)], cwd=root, module="liverl.stop")
    assert stop.returncode == 0, stop.stderr
    assert f"stopped Ray job {job_id}" in stop.stdout
    assert jobs(head).get_job_status(job_id).value == "STOPPED"
    assert run_json(run_dir)["status"] == "stopped"
    assert not (run_dir / ".liverl.lock").exists()


def test_a_four_job_sweep_submits_every_job_without_waiting(head: str, root: Path) -> None:
    sweep = root / "sweep"
    proc = train(root, head, "-m", "train_bsz=4,8", "n_resp_per_prompt=2,4", "launcher.wait=false",
                 f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr
    dirs = run_dirs(sweep)
    ids = [run_json(d)["job_id"] for d in dirs]
    assert len(dirs) == 4 and len(set(ids)) == 4
    assert "LiveRL multirun: 4 job(s), 0 failed" in proc.stdout
    for d, job_id in zip(dirs, ids, strict=True):
        assert f"{job_id} " in proc.stdout and str(d) in proc.stdout  # the summary lists every job
    assert (sweep / "multirun.txt").read_text() in proc.stdout
    assert set(ids) <= {j.submission_id for j in jobs(head).list_jobs()}
    for job_id in ids:  # the sweep's point is made: stop its jobs rather than wait for them
        jobs(head).stop_job(job_id)
    wait_for(lambda: all(jobs(head).get_job_status(i).is_terminal() for i in ids), 120, lambda: "the sweep to stop")


def test_no_secret_lands_in_any_file_or_job_metadata(head: str, root: Path) -> None:
    files = [p for p in root.rglob("*") if p.is_file()]
    assert any(p.name == "environ.json" for p in files) and any(p.name == "pip-freeze.txt" for p in files)
    for path in files:
        text = path.read_bytes().decode(errors="replace")
        for name, value in SECRETS.items():
            assert value not in text, f"{name}'s value is in {path}"
    for job in jobs(head).list_jobs():
        text = json.dumps([job.runtime_env, job.metadata, job.entrypoint])
        assert not any(v in text for v in SECRETS.values())
        assert "WANDB_API_KEY" in job.runtime_env["env_vars"]["LIVERL_FORWARD_ENV"]  # the name only


def test_a_jobs_driver_reaches_its_own_cluster_after_another_ray_starts_on_the_machine(head: str) -> None:
    # Ray hands a job's driver the cluster its head's temp dir names last (ray/dashboard/modules/job/
    # job_supervisor.py:264-283, "auto" resolved from ray_current_cluster): under xdist on the GPU host, beside the
    # smoke's embedded Ray, jobs of these tests reached another cluster. raytest gives each head its own temp dir
    def gcs_of_a_job(url: str) -> str:
        client = jobs(url)
        job = client.submit_job(entrypoint="python -c \"import os; print('ADDRESS=' + os.environ['RAY_ADDRESS'])\"")
        wait_for(lambda: client.get_job_status(job).is_terminal(), 60, lambda: f"job {job} to end")
        logs = client.get_job_logs(job)
        address = re.search(r"^ADDRESS=(\S+:\d+)$", logs, re.M)  # the job's GCS, as Ray names it
        assert address, logs
        return address.group(1)

    with ray_job_head(num_gpus=0, env={}) as other:  # started after this module's head
        assert gcs_of_a_job(head) != gcs_of_a_job(other)
