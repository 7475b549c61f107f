"""The page's four "When to scale" situations, replayed on planned runs with metric streams (the real GPU stream
where one fits): advise's verdict, its commands (each run as printed with launcher=dryrun: exit 0 or 1) and watch's
finding for the same signal, which must give the same lever."""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import DATA, REPO, run_cli
from watch_streams import write_run

from liverl import advise
from liverl.health.advice import Advice
from liverl.health.analysis import load_thresholds, watch_run
from liverl.launch.dispatch import plan_and_launch
from liverl.recipe.compose import compose_liverl
from liverl.recipe.environ import arguments

FIXTURES = Path(__file__).parent / "fixtures"
MODEL = "model.path=/ckpt/Qwen3-30B-A3B"  # a run's own override, which every printed command must keep


def plan(run_dir: Path, *overrides: str, env: dict[str, str] | None = None) -> Path:
    """A run planned the way `python -m liverl.train ... --dry-run` plans it (the documented environment read)."""
    args = arguments([*overrides, "launcher=dryrun"], env or {}).args
    assert plan_and_launch(compose_liverl(args, run_dir=run_dir), run_dir) in (0, 1)
    return run_dir


def rows(run: Path, *sets: str) -> dict[str, Advice]:
    return {a.id: a for a in advise.advise(run, load_thresholds(sets=list(sets)))}


def dry_run(command: str, tmp_path: Path) -> str:
    """Run a printed command as printed (its leading VAR=value words are its environment), planning only."""
    words = shlex.split(command)
    env = {}
    while "=" in words[0] and not words[0].startswith("-"):
        k, _, v = words.pop(0).partition("=")
        env[k] = v
    assert words[:3] == ["python", "-m", "liverl.train"], command
    out = run_cli([*words[3:], "launcher=dryrun", f"hydra.run.dir={tmp_path / 'dry'}"], REPO, env=env)
    assert out.returncode in (0, 1), f"{command}\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}"
    return out.stdout


def commands_run(row: Advice, tmp_path: Path) -> None:
    for i, command in enumerate(filter(None, (row.smoke_command, row.command))):
        dry_run(command, tmp_path / str(i))


def watch_fix(run: Path, finding: str, *sets: str) -> str:
    found = {f.id: f for f in watch_run(run, load_thresholds(sets=list(sets))).findings}
    assert finding in found, sorted(found)
    return found[finding].fix


@pytest.fixture
def moe_run(tmp_path: Path, new_verl_checkout: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The page's single-node default with a 30B-A3B MoE, on the new verl (a fixture checkout)."""
    env = {"USE_NEW_VERL": "1", "NEW_VERL_DIR": str(new_verl_checkout)}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return plan(tmp_path / "moe", "experiment=sync_1node_cc", "model=qwen3_30b_a3b", MODEL, *DATA)


# 1. large MoE, trainer + vLLM won't co-fit -> veomni engine + a dedicated rollout node

def test_moe_that_does_not_cofit_an_h100(moe_run: Path, new_verl_checkout: Path, tmp_path: Path) -> None:
    write_run(moe_run, 40, {"memory_full": 10}, drop=("fully_async/",))  # peak ~138 GB reserved
    planned = rows(moe_run)["moe_cofit"]  # judged on the GPU the plan records (its gpu group, h200 by default)
    assert planned.verdict == "scale" and "(liverl.yaml gpu.memory_bytes)" in planned.evidence
    row = rows(moe_run, "advise.gpu_memory_gb=80")["moe_cofit"]
    assert row.verdict == "scale" and "of 80 GB per GPU" in row.evidence
    assert row.overrides == ["engine=veomni", "topology=2node"]
    # as it runs: the run's checkout, its own overrides, and the smoke first (no smoke pass on record)
    assert row.command.startswith(f"USE_NEW_VERL=1 NEW_VERL_DIR={new_verl_checkout.resolve()} python -m liverl.train ")
    assert MODEL in row.command and "batch=official" in row.command
    assert row.smoke_command and "batch=smoke" in row.smoke_command and MODEL in row.smoke_command
    commands_run(row, tmp_path)
    fix = watch_fix(moe_run, "moe_cofit", "advise.gpu_memory_gb=80")
    assert " ".join(row.overrides) in fix


def test_the_gpu_the_plan_records_is_read(moe_run: Path) -> None:
    write_run(moe_run, 40, {"memory_full": 10}, drop=("fully_async/",))
    liverl_yaml = moe_run / "liverl.yaml"
    cfg = yaml.safe_load(liverl_yaml.read_text())
    cfg["gpu"] = {"name": "h200", "memory_gb": 141}  # the key the gpu config group is to record (run_end.py)
    liverl_yaml.write_text(yaml.safe_dump(cfg))
    row = rows(moe_run)["moe_cofit"]
    assert row.verdict == "scale" and "of 141 GB per GPU (liverl.yaml gpu.memory_gb)" in row.evidence


def test_a_run_that_ran_out_of_memory_did_not_fit(moe_run: Path, tmp_path: Path) -> None:
    (moe_run / "traceback.txt").write_text(
        "Traceback (most recent call last):\n  ...\ntorch.OutOfMemoryError: CUDA out of memory. Tried to allocate "
        "3.88 GiB. GPU 0 has a total capacity of 79.19 GiB of which 1.02 GiB is free.\n")
    run = json.loads((moe_run / "run.json").read_text())
    (moe_run / "run.json").write_text(json.dumps({**run, "status": "failed"}))
    row = rows(moe_run, "advise.gpu_memory_gb=80")["moe_cofit"]
    assert row.verdict == "did not fit" and "traceback.txt: torch.OutOfMemoryError" in row.evidence
    assert row.overrides == ["engine=veomni", "topology=2node"]
    commands_run(row, tmp_path)
    report = watch_run(moe_run)  # no metric at all: the run's end is still read
    found = {f.id: f for f in report.findings}
    assert found["did_not_fit"].severity == "CRIT" and " ".join(row.overrides) in found["did_not_fit"].fix


# 2. trainer GPUs idle most of the step waiting on rollouts -> fully async

def test_real_sync_stream_waiting_on_rollouts(tmp_path: Path) -> None:
    # tests/fixtures/gpu_sync_tiny (1 x H200): 52% of each settled step generating, on its 3 settled steps
    run = tmp_path / "gpu_sync_tiny"
    shutil.copytree(FIXTURES / "gpu_sync_tiny", run)
    three = ("advise.min_settled_steps=3",)
    row = rows(run, *three)["rollout_bound"]
    assert row.verdict == "scale" and row.overrides == ["topology=2node"] and "52%" in row.evidence
    assert "train_files=/tmp/tiny/data/train.parquet" in row.command  # the run's own data, carried
    commands_run(row, tmp_path)
    assert "(topology=2node)" in watch_fix(run, "rollout_bound", *three)
    assert rows(run)["rollout_bound"].verdict == "cannot judge"  # 3 settled steps are too few by default


def test_async_run_still_rollout_bound_gets_capacity_not_staleness(tmp_path: Path) -> None:
    run = plan(tmp_path / "a", "topology=2node", "model=qwen25_0p5b", "staleness_threshold=1", *DATA)
    write_run(run, 40, {"idle_high": 1, "partial_dominant": 1})
    row = rows(run)["rollout_bound"]
    assert row.verdict == "scale" and row.overrides == ["topology.rollout_nnodes=2", "topology.nnodes=3"]
    assert "a trade-off, not the first lever" in row.evidence
    commands_run(row, tmp_path)
    for finding in ("rollout_bound", "partial_dominant"):  # one lever for both, as advise gives it
        fix = watch_fix(run, finding)
        assert " ".join(row.overrides) in fix and "num_workers" not in fix


# 3. window must reach ~131k -> multi-node FSDP (more trainer GPUs + CPU offload)

def test_window_toward_131k_on_one_node(tmp_path: Path) -> None:
    run = plan(tmp_path / "w", "model=qwen25_0p5b", "window.prompt=40000", "window.response=91072", *DATA,
               "liverl.allow=[memory-fit]")
    row = rows(run)["long_window"]
    assert row.verdict == "scale" and row.overrides == ["topology=3node"]
    assert "window.prompt=40000" in row.command and "window.response=91072" in row.command  # carried
    commands_run(row, tmp_path)


def test_responses_hitting_a_long_window(tmp_path: Path) -> None:
    run = plan(tmp_path / "clip", "model=qwen25_0p5b", "batch=official", *DATA)  # 88k window on one node
    write_run(run, 20, {"clip_high": 1})
    row = rows(run)["long_window"]
    assert row.verdict == "scale"
    assert row.overrides == ["topology=3node", "window.prompt=40000", "window.response=91072"]
    assert row.smoke_command is not None  # official batch, no smoke pass recorded for fsdp on 3node
    commands_run(row, tmp_path)
    assert " ".join(row.overrides) in watch_fix(run, "responses_clipped")


# 4. a different agent harness -> another scaffold via HARBOR_AGENT_IMPORT_PATH

def test_another_harness_gets_its_how_to(tmp_path: Path) -> None:
    run = plan(tmp_path / "h", "model=qwen25_0p5b", *DATA)
    write_run(run, 20)
    row = rows(run)["scaffold"]
    assert row.verdict == "stay" and "HARBOR_AGENT_IMPORT_PATH=pkg.module:AgentClass" in row.evidence
    assert row.overrides == ["scaffold=ohsdk"]
    commands_run(row, tmp_path)
    # the how-to's variable alone, as the page has it, selects the class (not a silent no-op)
    out = run_cli(["model=qwen25_0p5b", "launcher=dryrun", f"hydra.run.dir={tmp_path / 'imp'}"], REPO,
                  env={"HARBOR_AGENT_IMPORT_PATH": "liverl.scaffold.harbor_agents:MountedOpenHandsSDK"})
    assert out.returncode in (0, 1) and "Harbor runs the import-path class" in out.stdout


def test_env_setup_failures_on_claude_code_point_at_the_install_first(tmp_path: Path) -> None:
    run = plan(tmp_path / "e", "model=qwen25_0p5b", *DATA)
    write_run(run, 40, {"env_setup_failed": 10})
    row = rows(run)["scaffold"]
    assert row.verdict == "fix first" and row.evidence.index("install in the task image") < row.evidence.index(
        "scaffold=ohsdk")
    commands_run(row, tmp_path)
    fix = watch_fix(run, "env_setup_failed")
    assert fix.index("install in the task image") < fix.index("scaffold=ohsdk")


def test_a_real_agentic_runs_printed_command_runs_as_printed(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    # tests/fixtures/gpu_agentic_claude_code (1 x H100, 2026-12-06): its own overrides include a list
    # (verl.trainer.logger=[console,file], which rich once read as markup and printed as `logger=`) and a key its groups
    # lack (+scaffold.harbor.agent_path_prepend, printed without its `+`): the printed line failed to compose
    run = tmp_path / "gpu_agentic_claude_code"
    shutil.copytree(FIXTURES / "gpu_agentic_claude_code", run)
    assert advise.main([str(run)]) == 0
    out = capsys.readouterr().out.splitlines()
    printed = [line.strip() for line in out if line.strip().startswith("python -m liverl.train")]
    assert len(printed) == 1, out
    assert "'verl.trainer.logger=[console,file]'" in printed[0]
    assert "+scaffold.harbor.agent_path_prepend=" in printed[0]
    dry_run(printed[0], tmp_path)
