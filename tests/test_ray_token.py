"""Ray 2.60 token authentication, on a real token head on 127.0.0.1 (RAY_AUTH_MODE=token, a temporary token and HOME:
this machine's ~/.ray/auth_token is never read or written).

Every LiveRL command runs as a user runs it: a subprocess whose environment has no RAY_AUTH_MODE (conftest.py sets
`disabled` for the other tests) and an empty HOME, plus the token as the test says. Without it, each path that talks
to the cluster (launcher=ray_job, launcher=local with RAY_ADDRESS, status, stop, `liverl.cluster wait`) refuses with
exit 3 naming the variables; with it (RAY_AUTH_TOKEN_PATH, or RAY_AUTH_TOKEN) a job runs end to end (its driver runs
the real node probe against the token GCS) and the token is in no file LiveRL wrote nor in the job's runtime env.
Only verl's TaskRunner is a test double (doubles.CpuTaskRunner, as in test_launch_ray_job.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import tiny_dataset
from doubles import DOUBLE, SLEEP_ENV
from raytest import TESTS, _head, free_port, private_ports
from task_runner_double import TASK_RUNNER_DOUBLE_ENV

pytestmark = [pytest.mark.ray, pytest.mark.timeout(600)]
TOKEN = "4f1c0e9b7a2d4c6e8f0a1b3c5d7e9f21"  # the test cluster's (Ray's own tokens are 32 hex digits too)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ray_token")


@pytest.fixture(scope="module")
def head(root: Path):
    """(GCS address, dashboard URL) of a token head; its jobs inherit its environment (the token among it)."""
    (root / "head-home").mkdir()
    port, dashboard = free_port(), free_port()
    env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": TOKEN, "HOME": str(root / "head-home"),
           TASK_RUNNER_DOUBLE_ENV: DOUBLE, "PYTHONPATH": str(TESTS)}
    args = ["--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
            *private_ports()]
    with _head(args, port, 8, 2, env, 90):
        url = f"http://127.0.0.1:{dashboard}"
        ready = f"from ray.job_submission import JobSubmissionClient as C; C({url!r}).list_jobs()"
        deadline = time.monotonic() + 120
        while subprocess.run([sys.executable, "-c", ready], env=ray_client_env(root), capture_output=True,
                             timeout=120, check=False).returncode:
            assert time.monotonic() < deadline, f"the token head's dashboard {url} did not answer"
            time.sleep(1)
        yield f"127.0.0.1:{port}", url


def ray_client_env(root: Path) -> dict[str, str]:
    """Ray's own client outside LiveRL: it needs the mode set (ray.init and the job client never turn it on for an
    explicit address)."""
    return {**user_env(root, token=TOKEN), "RAY_AUTH_MODE": "token"}


def user_env(root: Path, token: str | None = None, token_path: Path | None = None) -> dict[str, str]:
    """A user's shell: no RAY_AUTH_MODE, an empty HOME (no ~/.ray/auth_token), the token as asked."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH",
                                                            "RAY_ADDRESS")}
    home = root / "user-home"
    home.mkdir(exist_ok=True)
    env["HOME"] = str(home)
    if token:
        env["RAY_AUTH_TOKEN"] = token
    if token_path:
        env["RAY_AUTH_TOKEN_PATH"] = str(token_path)
    return env


def cli(root: Path, module: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=root, env=env, capture_output=True, text=True,
                          timeout=300, check=False)


def train(root: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return cli(root, "liverl.train", "topology=1node", "model=qwen25_0p5b", *tiny_dataset(root), *args, env=env)


def assert_refused(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "requires token authentication" in proc.stderr and "RAY_AUTH_MODE=token" in proc.stderr
    assert "RAY_AUTH_TOKEN=" in proc.stderr and "RAY_AUTH_TOKEN_PATH" in proc.stderr
    assert "Traceback" not in proc.stderr and TOKEN not in proc.stderr + proc.stdout


def files_with(root: Path, text: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and text.encode() in p.read_bytes()]


def test_with_the_token_a_job_runs_and_the_token_lands_nowhere(head, root: Path) -> None:
    _, url = head
    token_file = root / "secrets" / "ray_token"
    token_file.parent.mkdir()
    token_file.write_text(TOKEN)
    run_dir = root / "run"
    proc = train(root, "launcher=ray_job", f"launcher.address={url}", f"hydra.run.dir={run_dir}",
                 env=user_env(root, token_path=token_file))
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "succeeded" and "CpuTaskRunner: step 1" in proc.stdout
    assert files_with(root, TOKEN) == [token_file]  # the run directory, its plan, logs and provenance: none
    status = cli(root, "liverl.status", str(run_dir), "--json", env=user_env(root, token=TOKEN))
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["job"]["status"] == "SUCCEEDED"
    info = subprocess.run(
        [sys.executable, "-c", "import json; from ray.job_submission import JobSubmissionClient as C; "
         f"print(json.dumps(C({url!r}).get_job_info({run['job_id']!r}).runtime_env))"],
        env=ray_client_env(root), capture_output=True, text=True, timeout=120, check=True)
    job_env = json.loads(info.stdout.strip().splitlines()[-1])["env_vars"]
    assert job_env["RAY_AUTH_MODE"] == "token" and TOKEN not in info.stdout  # the mode travels, the token does not

    # the same run, asked without the token: status refuses, naming the variables
    assert_refused(cli(root, "liverl.status", str(run_dir), env=user_env(root)))

    # a live job (wait=false, a step of 300 s): stop refuses without the token and stops it with the token
    live = root / "live"
    proc = train(root, "launcher=ray_job", f"launcher.address={url}", "launcher.wait=false",
                 f"launcher.send_env=[{SLEEP_ENV}]", f"hydra.run.dir={live}",
                 env={**user_env(root, token=TOKEN), SLEEP_ENV: "300"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_refused(cli(root, "liverl.stop", str(live), env=user_env(root)))
    stopped = cli(root, "liverl.stop", str(live), env=user_env(root, token=TOKEN))
    assert stopped.returncode == 0 and "stopped Ray job" in stopped.stdout, stopped.stderr


def test_without_the_token_every_path_to_the_cluster_refuses_with_exit_3(head, root: Path) -> None:
    gcs, url = head
    no_token = user_env(root)
    assert_refused(train(root, "launcher=ray_job", f"launcher.address={url}", f"hydra.run.dir={root}/r1",
                         env=no_token))
    assert json.loads((root / "r1" / "run.json").read_text())["status"] == "refused"
    assert_refused(train(root, "launcher=local", f"hydra.run.dir={root}/r2", env={**no_token, "RAY_ADDRESS": gcs}))
    assert_refused(cli(root, "liverl.cluster", "wait", "--address", gcs, "--nodes", "1", env=no_token))
    wrong = user_env(root, token="0" * 32)  # a token, not the cluster's
    refused = cli(root, "liverl.cluster", "check", "--address", gcs, env=wrong)
    assert_refused(refused)
    assert "is not the cluster's" in refused.stderr
    ok = cli(root, "liverl.cluster", "wait", "--address", gcs, "--nodes", "1", env=user_env(root, token=TOKEN))
    assert ok.returncode == 0 and "1 of 1 node(s)" in ok.stdout, ok.stderr
