"""The toy agentic task family (liverl.tiny.agentic): generated tasks, their datasets, their verifiers run by hand.

The verifier and the oracle's solve.sh run in bash with /app/ and /logs/ rewritten to a scratch root, as
liverl.scaffold.local_env.LocalEnvironment does to uploaded scripts.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from liverl.scaffold.agent_loop import is_validation, task_path_of
from liverl.tiny import agentic


def run_script(script: Path, root: Path) -> None:
    for sub in ("app", "logs/verifier"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    text = script.read_text().replace("/app/", f"{root}/app/").replace("/logs/", f"{root}/logs/")
    subprocess.run(["bash", "-c", text], cwd=root / "app", check=True, timeout=30)


def reward(task: Path, root: Path) -> float:
    run_script(task / "tests" / "test.sh", root)
    return float((root / "logs" / "verifier" / "reward.txt").read_text())


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("agentic")
    return agentic.generate(out, n_tasks=2, n_val=1, seed=3)


def test_datasets_point_the_agent_loop_at_each_task(generated) -> None:
    train, val = pd.read_parquet(generated["train"]), pd.read_parquet(generated["val"])
    assert len(train) == 2 and len(val) == 1
    for frame, validation in ((train, False), (val, True)):
        for rec in frame.to_dict("records"):
            kwargs = {"extra_info": dict(rec["extra_info"])}
            path = Path(task_path_of(kwargs))
            assert (path / "tests" / "test.sh").is_file() and (path / "task.toml").is_file()
            assert is_validation(kwargs) is validation
            assert rec["prompt"][0]["content"].strip() == (path / "instruction.md").read_text().strip()
    assert {r["ability"] for r in train.to_dict("records")} == {"agentic_file", "agentic_func"}


@pytest.mark.parametrize("index", [0, 1])
def test_verifier_gives_full_partial_and_no_credit(generated, tmp_path: Path, index: int) -> None:
    task = Path(pd.read_parquet(generated["train"]).to_dict("records")[index]["extra_info"]["harbor_task_path"])
    spec = json.loads((task / "toy.json").read_text())
    assert reward(task, tmp_path / "empty") == 0.0  # nothing written
    wrong = tmp_path / "wrong"
    (wrong / "app").mkdir(parents=True)
    (wrong / "app" / spec["name"]).write_text("value = 'not it'\n")  # the right file, the wrong content
    assert 0.0 < reward(task, wrong) < 1.0
    solved = tmp_path / "solved"
    run_script(task / "solution" / "solve.sh", solved)
    assert reward(task, solved) == 1.0


def test_func_task_imports_but_fails_gets_half(generated, tmp_path: Path) -> None:
    task = Path(pd.read_parquet(generated["train"]).to_dict("records")[1]["extra_info"]["harbor_task_path"])
    spec = json.loads((task / "toy.json").read_text())
    assert spec["kind"] == "func"
    (tmp_path / "app").mkdir(parents=True)
    (tmp_path / "app" / spec["name"]).write_text("def value():\n    return -1\n")
    assert reward(task, tmp_path) == 0.5


def test_cli_rejects_zero_tasks_with_exit_2(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "liverl.tiny.agentic", str(tmp_path), "--tasks", "0"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and "tasks:" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.harbor
@pytest.mark.parametrize(("agent", "expected"), [("oracle", 1.0), ("nop", 0.0)])
def test_real_harbor_trial_in_the_local_environment(generated, tmp_path: Path, agent: str, expected: float) -> None:
    # Harbor 0.25 itself (.venv-harbor) loads the task, runs its oracle (solution/solve.sh) or nop agent in
    # LiveRL's LocalEnvironment, runs tests/test.sh and reads reward.txt
    import asyncio

    from liverl.scaffold.trial import run_trial, trial_spec

    harbor = {"agent_name": agent, "agent_import_path": None, "agent_timeout_sec": 60, "val_agent_timeout_sec": 60,
              "environment_type": None, "environment_import_path": "liverl.scaffold.local_env:LocalEnvironment",
              "trials_dir": str(tmp_path / "trials"), "verifier_timeout_sec": 60}
    for rec in pd.read_parquet(generated["train"]).to_dict("records"):
        spec = trial_spec(harbor, task_path=rec["extra_info"]["harbor_task_path"],
                          trial_name=f"{agent}-{rec['extra_info']['index']}", base_url="http://127.0.0.1:9",
                          validate=False)
        for key in ("base_url", "model_api_format", "model_name", "env"):  # no model behind these agents
            spec["agent"].pop(key)
        result = asyncio.run(run_trial(spec, harbor, deadline_sec=120))
        assert result.get("exception_info") is None, result.get("exception_info")
        assert result["verifier_result"]["rewards"]["reward"] == expected
