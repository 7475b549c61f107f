"""Issue 11 regressions: every wrong knob value refused by name (exit 2), verl values checked against the type verl
declares, failed interpolations naming their knobs, one reading of the documented environment, the smoke batch
however it is asked for, and an atomic take-over of a stale lock by real processes."""

from __future__ import annotations

import json
import multiprocessing
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO

from liverl.launch import lock as runlock
from liverl.launch.lock import LOCK_NAME, LockHeld, RunLock
from liverl.recipe.environ import arguments
from liverl.train import run

WRONG = [  # (overrides, knob named, words of the message, words of the fix)
    (["n_resp_per_prompt=0"], "n_resp_per_prompt", "an integer from 1", "n_resp_per_prompt=8"),
    (["train_bsz=0"], "train_bsz", "an integer from 1", "train_bsz=64"),
    (["total_training_steps=0"], "total_training_steps", "an integer from 1", "total_training_steps=200"),
    (["n_resp_per_prompt=abc"], "n_resp_per_prompt", "an integer from 1", "n_resp_per_prompt=8"),
    (["topology=2node", "partial_rollout=maybe"], "partial_rollout", "one of true | false", "partial_rollout=true"),
    (["topology=2node", "require_batches=0"], "require_batches", "an integer from 1", "require_batches=1"),
    (["engine=fsdp", "verl.actor_rollout_ref.actor.optim.lr=abc"], "verl.actor_rollout_ref.actor.optim.lr",
     "FSDPOptimizerConfig.lr", "give a number"),
    (["verl.actor_rollout_ref.actor.ppo_epochs=1.5"], "verl.actor_rollout_ref.actor.ppo_epochs", "an integer",
     "ppo_epochs=1"),
    (["verl.trainer.logger=console"], "verl.trainer.logger", "a list", "give a list"),
    (["topology=2node", "train_bsz=6", "require_batches=4"], "train_bsz, require_batches",
     "computed from train_bsz=6, require_batches=4", "make train_bsz a multiple of require_batches"),
    (["trajectory_filter.drop_reasons=[timeout,flaky]"], "trajectory_filter.drop_reasons", "known drop reasons",
     "drop_reasons=[timeout,env_setup_failed]"),
    # a Harbor scaffold needs its agent's import path (scaffold=single_turn, no Harbor, leaves it null)
    (["scaffold=ohsdk", "scaffold.harbor.agent_import_path=null"], "scaffold.harbor.agent_import_path",
     "an import path", "agent_import_path=harbor.agents.installed.claude_code:ClaudeCode"),
]


@pytest.mark.parametrize("overrides,key,words,fix", WRONG, ids=[" ".join(w[0]) for w in WRONG])
def test_a_wrong_value_exits_2_naming_the_knob_value_and_fix(tmp_path: Path, capsys, overrides, key, words, fix):
    assert run([*overrides, "launcher=dryrun"], tmp_path / "run", environ={}) == 2
    err = capsys.readouterr().err
    assert f"{key}:" in err and words in err and fix in err, err
    assert "(got: " in err or "computed from" in err
    run_json = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run_json["status"] == "config_error" and not (tmp_path / "run" / "verl.yaml").exists()


def test_a_scaffold_without_harbor_may_leave_the_harbor_import_path_null(tmp_path: Path, capsys) -> None:
    assert run(["experiment=smoke_tiny", "launcher=dryrun"], tmp_path / "run", environ={}) == 0, capsys.readouterr().err


def test_partial_rollout_maybe_never_reaches_verl_yaml(tmp_path: Path) -> None:
    assert run(["topology=2node", "partial_rollout=maybe", "launcher=dryrun"], tmp_path / "r", environ={}) == 2
    assert not list(tmp_path.rglob("verl.yaml"))


def test_the_environment_is_read_by_liverl_itself(tmp_path: Path, capsys) -> None:
    env = {"TRAJ_FILTER_ENABLE": "True", "HARBOR_AGENT_NAME": "openhands-sdk", "TRAIN_BSZ": "16"}
    args = arguments(["scaffold=ohsdk", "topology=3node"], env)
    assert "trajectory_filter.enable=true" in args.args and "scaffold.harbor.agent_name='openhands-sdk'" in args.args
    # asked for through the environment, the filter is refused where it cannot run (not silently off)
    assert run(["topology=3node", "verl.algorithm.adv_estimator=rloo", "launcher=dryrun"], tmp_path / "tf",
               environ=env) == 2
    assert "trajectory_filter.enable:" in capsys.readouterr().err
    # HARBOR_AGENT_NAME reaches the plan: on ohsdk a registered name is refused by its guardrail (no longer ignored)
    code = run(["scaffold=ohsdk", "launcher=dryrun"], tmp_path / "oh", environ={"HARBOR_AGENT_NAME": "openhands-sdk"})
    assert code == 2 and "scaffold.harbor.agent_name: a registered agent name wins" in capsys.readouterr().err
    code = run(["launcher=dryrun"], tmp_path / "cc", environ={"HARBOR_AGENT_NAME": "claude-code-v2"})
    assert code == 0
    assert json.loads((tmp_path / "cc" / "env.json").read_text())["HARBOR_AGENT_NAME"] == "claude-code-v2"
    summary = (tmp_path / "cc" / "summary.txt").read_text()
    assert "environment scaffold.harbor.agent_name=claude-code-v2 ($HARBOR_AGENT_NAME)" in summary


def test_a_wrong_environment_value_names_the_variable(tmp_path: Path, capsys) -> None:
    assert run(["launcher=dryrun"], tmp_path / "r", environ={"N_RESP": "four"}) == 2
    err = capsys.readouterr().err
    assert "n_resp_per_prompt:" in err and "$N_RESP" in err and "(got: four)" in err


def test_the_command_line_wins_and_says_so() -> None:
    args = arguments(["train_bsz=32"], {"TRAIN_BSZ": "16"})
    assert "train_bsz=16" not in args.args and "TRAIN_BSZ is not used" in args.notes[0]


def test_eight_by_four_is_the_smoke_batch_however_it_is_asked_for(tmp_path: Path) -> None:
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / "fully_async_3nodes_qwen35_cc_clean.sh"), "--dry-run",
         f"hydra.run.dir={tmp_path}/r"],
        env={"PATH": "/usr/bin:/bin", "TRAIN_BSZ": "8", "N_RESP": "4", "LIVERL_PYTHON": sys.executable},
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    summary = (tmp_path / "r" / "summary.txt").read_text()
    assert "batch       smoke: 8 prompts x 4 responses" in summary and ", 5 steps" in summary
    assert "is the smoke batch" in proc.stderr
    assert "batch=smoke" in arguments(["batch=official", "train_bsz=8", "n_resp_per_prompt=4"], {}).args


def _take(run_dir: str, index: int, start, done, results) -> None:
    judge = runlock.liveness

    def slow_liveness(holder):  # a contender that judges the stale holder more slowly (an NFS stat, a busy host)
        alive = judge(holder)
        time.sleep(0.03 * index)
        return alive

    runlock.liveness = slow_liveness  # in this forked contender only
    lock = RunLock(Path(run_dir))
    start.wait()
    try:
        lock.acquire()
        results.put("won")
    except LockHeld:
        results.put("refused")
    done.wait()  # hold it until every contender has tried


@pytest.mark.parametrize("contenders", [2, 4])
def test_a_stale_lock_taken_over_at_the_same_instant_has_exactly_one_winner(tmp_path: Path, contenders) -> None:
    ctx = multiprocessing.get_context("fork")
    for round_ in range(5):
        run_dir = tmp_path / f"r{round_}"
        run_dir.mkdir()
        (run_dir / LOCK_NAME).write_text(json.dumps(
            {"run_dir": str(run_dir), "host": socket.gethostname(), "pid": 2**22 + 17,
             "since": "then", "token": "stale"}) + "\n")
        start, done, results = ctx.Barrier(contenders), ctx.Barrier(contenders), ctx.Queue()
        procs = [ctx.Process(target=_take, args=(str(run_dir), i, start, done, results))
                 for i in range(contenders)]
        for p in procs:
            p.start()
        outcomes = sorted(results.get(timeout=60) for _ in procs)
        for p in procs:
            p.join(timeout=60)
        assert outcomes == ["refused"] * (contenders - 1) + ["won"], outcomes
        assert not list(run_dir.glob(f"{LOCK_NAME}.stale.*"))
