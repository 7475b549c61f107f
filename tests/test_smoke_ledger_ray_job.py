"""The smoke ledger across launcher=ray_job, on a real Ray head on 127.0.0.1 (its dashboard's Job Submission API).

Inside a job Ray sets RAY_ADDRESS to the cluster's GCS address, while a submit names the cluster by its dashboard
URL; and the head runs with its own environment (here its own LIVERL_SMOKE_LEDGER). A smoke job submitted without
waiting must still record its pass in the ledger the next submit reads, under the key that submit checks.
Only verl's TaskRunner is a test double (doubles.CpuTaskRunner), named in the head's environment.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from conftest import run_cli, tiny_dataset
from doubles import DOUBLE
from raytest import TESTS, ray_job_head
from task_runner_double import TASK_RUNNER_DOUBLE_ENV

from liverl.guardrails.ledger import LEDGER_ENV

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]
LOOP = "scaffold.agent_loop.target=verl.experimental.agent_loop.single_turn_agent_loop.SingleTurnAgentLoop"


def _status(run_dir: Path) -> str:
    return json.loads((run_dir / "run.json").read_text())["status"]


def _smoke_fatal(root: Path, address: str, ledger: Path) -> bool:
    """Whether `liverl.check --launching` of an official ray_job run to address finds no recorded smoke pass."""
    proc = run_cli(["--launching", "batch=official", "topology=1node", "model=qwen25_0p5b", LOOP,
                    *tiny_dataset(root), "launcher=ray_job", f"launcher.address={address}"],
                   cwd=root, env={LEDGER_ENV: str(ledger)}, module="liverl.check")
    fatal = "[smoke-before-official]" in proc.stdout
    assert proc.returncode == (2 if fatal else 1), proc.stdout + proc.stderr  # 1: the Hub-checkpoint WARN only
    return fatal


def test_a_smoke_job_records_its_pass_where_and_as_the_next_submit_reads_it(tmp_path: Path) -> None:
    ledger, head_ledger = tmp_path / "submitter" / "ledger.json", tmp_path / "head" / "ledger.json"
    env = {TASK_RUNNER_DOUBLE_ENV: DOUBLE, "PYTHONPATH": str(TESTS), LEDGER_ENV: str(head_ledger)}
    with ray_job_head(num_gpus=8, env=env) as url:
        assert _smoke_fatal(tmp_path, url, ledger)  # nothing recorded yet
        run_dir = tmp_path / "smoke"
        proc = run_cli(["batch=smoke", "topology=1node", "model=qwen25_0p5b", LOOP, *tiny_dataset(tmp_path),
                        "launcher=ray_job", f"launcher.address={url}", "launcher.wait=false",
                        f"hydra.run.dir={run_dir}"], cwd=tmp_path, env={LEDGER_ENV: str(ledger)})
        assert proc.returncode == 0, proc.stderr
        deadline = time.monotonic() + 180
        while _status(run_dir) != "succeeded":
            assert _status(run_dir) in ("submitted", "running") and time.monotonic() < deadline, _status(run_dir)
            time.sleep(0.5)
        # the job (not the submitter, which did not wait) wrote the submitter's ledger, keyed by the dashboard URL
        [(key, entry)] = json.loads(ledger.read_text()).items()
        assert key.endswith(f"|1node|fsdp|{url}") and entry["run_dir"] == str(run_dir.resolve())  # engine in key
        assert not head_ledger.exists()
        # the next submit finds it, however the same dashboard is spelled; another cluster does not
        assert not _smoke_fatal(tmp_path, url, ledger)
        assert not _smoke_fatal(tmp_path, url.removeprefix("http://") + "/", ledger)
        assert _smoke_fatal(tmp_path, "http://127.0.0.1:1", ledger)
