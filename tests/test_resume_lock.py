"""Relaunching into a run directory (a new attempt, resuming from verl's checkpoint) and the launch lock, with real
files and real processes; no Ray is started (every launch here is refused or planned before Ray)."""

from __future__ import annotations

import json
import platform
import socket
import subprocess
from pathlib import Path

import pytest
from conftest import run_cli, tiny_dataset

from liverl.launch.lock import LOCK_NAME

pytestmark = pytest.mark.timeout(120)


def holder(path: Path, pid: int, host: str | None = None, run_dir: str = "/elsewhere") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"run_dir": run_dir, "host": host or socket.gethostname(), "pid": pid, "since": "t", "token": "x"}
    path.write_text(json.dumps(record))


@pytest.fixture
def live_pid():
    proc = subprocess.Popen(["sleep", "60"])
    yield proc.pid
    proc.kill()
    proc.wait()


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def assert_provenance(run_dir: Path) -> None:
    prov = run_dir / "provenance"
    git = json.loads((prov / "git.json").read_text())["liverl"]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True)
    assert git["sha"] == head.stdout.strip() and isinstance(git["dirty"], bool)
    versions = json.loads((prov / "versions.json").read_text())
    assert (versions["verl"], versions["ray"]) == ("0.9.1", "2.60.0")
    assert versions["python"] == platform.python_version()  # the run's interpreter: 3.11 here, 3.12 on a GPU host
    assert "verl==0.9.1" in (prov / "pip-freeze.txt").read_text().splitlines()
    assert json.loads((prov / "environ.json").read_text())["variables"]["PATH"]
    assert len(json.loads((run_dir / "run.json").read_text())["plan_sha256"]) == 64


def test_a_relaunch_is_a_new_attempt_that_resumes_and_keeps_everything(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    assert run_cli(["launcher=dryrun", f"hydra.run.dir={run_dir}"], cwd=tmp_path).returncode == 0
    assert_provenance(run_dir)
    first_plan = (run_dir / "verl.yaml").read_text()
    # what a first attempt leaves: its metrics, and verl's checkpoint layout
    (run_dir / "metrics.jsonl").write_text('{"step": 7, "data": {}}\n')
    ckpt = run_dir / "checkpoints"
    (ckpt / "global_step_7").mkdir(parents=True)
    (ckpt / "latest_checkpointed_iteration.txt").write_text("7")

    proc = run_cli(["launcher=dryrun", "total_training_steps=20", f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    run = json.loads((run_dir / "run.json").read_text())
    assert run["attempt"] == 1 and run["attempts"] == [{"attempt": 0, "status": "planned"}]
    assert [h["status"] for h in run["history"]] == ["planned", "planned"]
    assert run["resume_from"] == str(ckpt / "global_step_7")
    assert f"resume      resumes from {ckpt / 'global_step_7'} (trainer.resume_mode=auto)" in proc.stdout
    assert (run_dir / "attempts" / "0" / "verl.yaml").read_text() == first_plan
    assert (run_dir / "attempts" / "0" / "provenance" / "pip-freeze.txt").is_file()
    assert (run_dir / "metrics.jsonl").read_text() == '{"step": 7, "data": {}}\n'
    assert "total_training_steps: 20" in (run_dir / "verl.yaml").read_text()

    fresh = run_cli(["launcher=dryrun", "verl.trainer.resume_mode=disable", f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr
    assert "starts fresh (no checkpoint to resume from) (trainer.resume_mode=disable)" in fresh.stdout
    assert sorted(p.name for p in (run_dir / "attempts").iterdir()) == ["0", "1"]


def test_a_live_launch_holds_the_run_directory_and_a_dead_one_is_reported_stale(tmp_path: Path, live_pid) -> None:
    run_dir = tmp_path / "run"
    holder(run_dir / LOCK_NAME, live_pid, run_dir=str(run_dir))
    proc = run_cli(["launcher=dryrun", f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert proc.returncode == 2
    assert f"in use by a live launch, pid {live_pid} on {socket.gethostname()}" in proc.stderr
    assert "python -m liverl.stop RUN_DIR" in proc.stderr
    assert not (run_dir / "run.json").exists() and not (run_dir / "verl.yaml").exists()

    gone = dead_pid()
    holder(run_dir / LOCK_NAME, gone, run_dir=str(run_dir))
    proc = run_cli(["launcher=dryrun", f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"stale lock {run_dir / LOCK_NAME} from pid {gone}" in proc.stderr and "which is gone" in proc.stderr
    assert not (run_dir / LOCK_NAME).exists()  # released when the (dryrun) launch ended


def test_a_holder_on_another_host_cannot_be_checked_and_refuses(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    holder(run_dir / LOCK_NAME, 1234, host="gpu-node-17")
    proc = run_cli(["launcher=dryrun", f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert proc.returncode == 2
    assert "locked by pid 1234 on gpu-node-17" in proc.stderr and "cannot be checked" in proc.stderr
    assert f"delete {run_dir / LOCK_NAME}" in proc.stderr


def test_two_runs_cannot_share_a_live_checkpoint_directory(tmp_path: Path, live_pid) -> None:
    shared = tmp_path / "shared_ckpt"
    holder(shared / LOCK_NAME, live_pid, run_dir=str(tmp_path / "first"))
    run_dir = tmp_path / "second"
    proc = run_cli(
        ["model=qwen25_0p5b", *tiny_dataset(tmp_path), f"verl.trainer.default_local_dir={shared}",
         "launcher=local", f"hydra.run.dir={run_dir}"],
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    assert f"{shared / LOCK_NAME}: the checkpoint directory is in use by a live launch, pid {live_pid}" in proc.stderr
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "refused" and not (run_dir / "verl.yaml").exists()
    assert not (run_dir / LOCK_NAME).exists()


def test_the_entrypoint_refuses_a_plan_that_changed_after_it_was_checked(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    assert run_cli(["launcher=dryrun", f"hydra.run.dir={run_dir}"], cwd=tmp_path).returncode == 0
    digest = json.loads((run_dir / "run.json").read_text())["plan_sha256"]
    verl_yaml = run_dir / "verl.yaml"
    verl_yaml.write_text(verl_yaml.read_text().replace("lr: 1.0e-06", "lr: 0.001", 1))
    proc = run_cli([str(run_dir), "--plan-sha256", digest], cwd=tmp_path, module="recipes.sync_ppo")
    assert proc.returncode == 2
    assert "differ from the plan that was checked and submitted" in proc.stderr
    assert json.loads((run_dir / "run.json").read_text())["status"] == "refused"
