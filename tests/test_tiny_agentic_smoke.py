"""`make smoke SCAFFOLD=claude_code|ohsdk` on a host without a GPU: the agentic smoke is planned (launcher=dryrun),
with the toy tasks' datasets, the local environment and each harness's binaries where its trials reach them.

No GPU is stood in for by a double of the driver's CLI (tests/test_tiny_smoke.py fake_nvidia_smi, 0 GPUs listed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_tiny_smoke import fake_nvidia_smi

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("scaffold", ["claude_code", "ohsdk"])
def test_make_smoke_plans_the_agentic_run_without_a_gpu(tmp_path: Path, scaffold: str) -> None:
    fake_nvidia_smi(tmp_path / "bin", 0)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(PATH=f"{tmp_path / 'bin'}{os.pathsep}{env['PATH']}", LIVERL_TINY_AGENTIC_DIR=str(tmp_path / "tiny"),
               PYTHONPATH=str(ROOT))
    proc = subprocess.run(["make", "-s", "smoke", f"SCAFFOLD={scaffold}"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"scaffold    {scaffold}:" in proc.stdout and "tool parser hermes" in proc.stdout
    run_dir = Path(next(line.split()[-1] for line in proc.stdout.splitlines() if line.strip().startswith("plan ")))
    assert run_dir == tmp_path / "tiny" / f"smoke_agentic_{scaffold}"
    loop = yaml.safe_load((run_dir / "agent_loop.yaml").read_text())[0]
    harbor = loop["harbor"]
    assert harbor["environment_type"] is None
    assert harbor["environment_import_path"] == "liverl.scaffold.local_env:LocalEnvironment"
    if scaffold == "claude_code":
        assert Path(harbor["agent_path_prepend"]).name == ".bin"
    else:
        assert list(harbor["environment_kwargs"]["links"]) == [harbor["agent_kwargs"]["runtime_root"]]
    tasks = tmp_path / "tiny" / "tasks"
    assert sorted(p.name for p in tasks.iterdir())[0] == "train-0000"
    overrides = (run_dir / ".hydra" / "overrides.yaml").read_text()
    assert f"train_files={tmp_path / 'tiny' / 'data' / 'train.parquet'}" in overrides
    assert "launcher=dryrun" in overrides


def test_smoke_runs_the_agentic_smoke_for_real_on_a_gpu_host(monkeypatch: pytest.MonkeyPatch) -> None:
    # the GPU and vLLM are stood in for where liverl.smoke looks (local_gpus, has_vllm); commands are recorded
    from liverl import smoke

    calls: list[list[str]] = []
    monkeypatch.setattr(smoke.subprocess, "call", lambda cmd, **_: calls.append(cmd) or 0)
    monkeypatch.setattr(smoke, "local_gpus", lambda: 1)
    monkeypatch.setattr(smoke, "has_vllm", lambda: True)
    assert smoke.main(["scaffold=ohsdk", "trainer.total_epochs=1"]) == 0
    assert calls[-1][1:] == ["-m", "liverl.tiny.agentic_smoke", "--scaffold=ohsdk", "--", "trainer.total_epochs=1"]
    monkeypatch.setattr(smoke, "has_vllm", lambda: False)
    smoke.main(["scaffold=claude_code"])
    assert calls[-1][1:] == ["-m", "liverl.tiny.agentic_smoke", "--scaffold=claude_code", "--dry-run", "--"]
    smoke.main(["scaffold=ohsdk", "--steps=4", "x=1", "--resume-steps=1"])  # the smoke's options stay options
    assert calls[-1][1:] == ["-m", "liverl.tiny.agentic_smoke", "--scaffold=ohsdk", "--dry-run", "--steps=4",
                             "--resume-steps=1", "--", "x=1"]
    smoke.main(["scaffold=single_turn"])  # the single-turn smoke is not the agentic one
    assert "liverl.tiny.agentic_smoke" not in calls[-1]


@pytest.mark.parametrize(("args", "smoke_gets", "installs_scaffold"), [
    ([], "", True),  # the plain smoke: no scaffold= (install's SCAFFOLD default once leaked in as scaffold=1)
    (["SCAFFOLD=ohsdk"], "scaffold=ohsdk", True),
    (["SCAFFOLD=0"], "", False),
    (["SCAFFOLD=1"], "", True),
])
def test_scaffold_means_the_harness_for_smoke_and_yes_or_no_for_install(args: list[str], smoke_gets: str,
                                                                        installs_scaffold: bool) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}  # under make test
    smoke = next(line for line in subprocess.run(["make", "-n", "smoke", *args, "ARGS=x=1"], cwd=ROOT, env=env,
                                                 capture_output=True, text=True, check=True).stdout.splitlines()
                 if "liverl.smoke" in line).strip()
    assert [a for a in smoke.split() if a.startswith("scaffold=")] == ([smoke_gets] if smoke_gets else [])
    assert smoke.endswith("x=1")
    install = subprocess.run(["make", "-n", "install", "GPU=", *args], cwd=ROOT, env=env, capture_output=True,
                             text=True, check=True).stdout
    assert ("install-scaffold" in install) is installs_scaffold


def recording(calls: list[tuple]):
    """A stand-in for warm_start (tested in tests/test_tiny_warm_start.py): notes (folder, forward, harness,
    scaffolds) in `calls` and writes the report prepare's cache reads, for this host."""
    import json

    from liverl.tiny.agentic_smoke import this_host

    def record(model, out, steps, **kw):
        calls.append((out.name, kw["forward"], kw["harness"], kw["scaffolds"]))
        out.mkdir(parents=True, exist_ok=True)
        (out / "warm_start.json").write_text(json.dumps({"steps": steps, "forward": kw["forward"],
                                                        "host": this_host()}))

    return record


def NO_CAPTURE(*args) -> list[str]:  # the capture's command where it cannot run (no GPU here): it fails fast
    return [sys.executable, "-c", "raise SystemExit(3)"]


def test_a_cached_warm_start_of_another_length_forward_or_host_is_done_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from liverl.tiny import agentic_smoke, transcripts, warm_start

    calls = []
    host = transcripts.this_host()

    def record(model, out, steps, **kw):  # the warm start itself is tested in tests/test_tiny_warm_start.py
        calls.append((out.name, steps, kw["forward"]))
        out.mkdir(parents=True, exist_ok=True)
        (out / "warm_start.json").write_text(json.dumps({"steps": steps, "forward": kw["forward"], "host": host}))

    monkeypatch.setattr(warm_start, "warm_start", record)
    monkeypatch.setattr(agentic_smoke, "capture_command", NO_CAPTURE)
    (tmp_path / "warm").mkdir()
    (tmp_path / "warm" / "warm_start.json").write_text(json.dumps({"steps": 300}))  # an older, shorter one
    files = agentic_smoke.prepare(tmp_path, 4, 1000, False, "ohsdk")
    assert calls == [("warm", 1000, "autocast")] and files["model"] == str(tmp_path / "warm")
    agentic_smoke.prepare(tmp_path, 4, 1000, False, "ohsdk")
    assert len(calls) == 1  # cached now
    # with a captured harness: one warm start per scaffold, each trained as its served policy acted best
    (tmp_path / "harness.json").write_text(json.dumps({s: {"messages": []} for s in agentic_smoke.SCAFFOLDS}))
    for scaffold in agentic_smoke.SCAFFOLDS:
        agentic_smoke.prepare(tmp_path, 4, 1000, False, scaffold)
    assert calls[1:] == [("warm_claude_code", 1000, "bf16"), ("warm_ohsdk", 1000, "autocast")]
    # one trained on another machine, or another day: its requests named another kernel or date than this host's
    report = tmp_path / "warm_claude_code" / "warm_start.json"
    report.write_text(json.dumps({"steps": 1000, "forward": "bf16", "host": dict(host, os_release="5.15.0-x")}))
    agentic_smoke.prepare(tmp_path, 4, 1000, False, "claude_code")
    assert calls[-1] == ("warm_claude_code", 1000, "bf16") and len(calls) == 4
    agentic_smoke.prepare(tmp_path, 4, 1000, False, "claude_code")
    assert len(calls) == 4


def test_the_smokes_result_says_what_the_warm_start_brought(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from liverl.tiny import agentic_smoke

    warm = tmp_path / "warm_ohsdk"
    warm.mkdir()
    turn = {"tasks": 32, "tool_call_rate": 0.59375, "solved_rate": 0.0, "weights": "bf16"}
    (warm / "warm_start.json").write_text(json.dumps({"steps": 1000, "first_turn": turn}))
    monkeypatch.setattr(agentic_smoke, "prepare", lambda *a: {"model": str(warm), "train": "t", "val": "v"})
    # the two launches need a GPU and vLLM: stood in for by their report
    monkeypatch.setattr(agentic_smoke, "run_then_resume",
                        lambda *a: (0, {"run_dir": "r", "attempts": [], "resumed_from": "ck/global_step_4"}))
    assert agentic_smoke.main(["--scaffold", "ohsdk", "--dir", str(tmp_path)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("LiveRL agentic smoke result: "))
    assert json.loads(line.split(": ", 1)[1])["warm_start"] == turn


def test_the_smoke_says_when_no_captured_prompt_is_there_to_warm_start_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from liverl.tiny import agentic_smoke, warm_start

    calls: list[tuple] = []
    monkeypatch.setattr(warm_start, "warm_start", recording(calls))
    monkeypatch.setattr(agentic_smoke, "capture_command", NO_CAPTURE)
    agentic_smoke.prepare(tmp_path, 4, 2, False, "claude_code")
    note = capsys.readouterr().err
    # the capture with the served model failed (here: no GPU): it says where its log is, then how to capture on CPU
    assert f"capture of claude_code's first request failed (exit 3; {tmp_path / 'capture_claude_code.log'})" in note
    assert "no captured first request of claude_code" in note and "conform.policy=double" in note
    assert f"conform.capture={tmp_path / 'harness.json'}" in note
    (tmp_path / "harness.json").write_text(json.dumps({"claude_code": {"messages": []}}))
    agentic_smoke.prepare(tmp_path, 4, 2, False, "claude_code")
    assert "no captured first request" not in capsys.readouterr().err
    files = agentic_smoke.prepare(tmp_path, 4, 2, False, "ohsdk")  # captured for claude-code only
    assert "no captured first request of ohsdk" in capsys.readouterr().err
    # what it says is what it does: the SDK gets the stand-in prompt's warm start (warm, autocast; cached from the
    # first call), not one trained on claude-code's file
    assert files["model"] == str(tmp_path / "warm")
    assert calls == [("warm", "autocast", None, None),
                     ("warm_claude_code", "bf16", {"claude_code": {"messages": []}}, ("claude_code",))]


@pytest.mark.harbor
@pytest.mark.slow
def test_the_smoke_captures_the_harness_prompt_it_warm_starts_on(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # the capture's command as the smoke builds it, its policy swapped for the tests' scripted one (no GPU here to
    # serve the tiny model): a real OpenHands SDK trial of a generated toy task through LiveRL's proxy
    import json

    from liverl.tiny import agentic_smoke, warm_start

    calls: list[tuple] = []
    served = agentic_smoke.capture_command
    monkeypatch.setattr(agentic_smoke, "capture_command", lambda *a: [
        "conform.policy=double" if arg == "conform.policy=engine" else arg for arg in served(*a)])
    monkeypatch.setattr(warm_start, "warm_start", recording(calls))
    files = agentic_smoke.prepare(tmp_path, 4, 2, False, "ohsdk")
    harness = json.loads((tmp_path / "harness.json").read_text())
    assert list(harness) == ["ohsdk"] and files["model"] == str(tmp_path / "warm_ohsdk")
    instructions = {p.read_text().strip() for p in (tmp_path / "tasks").glob("*/instruction.md")}
    assert harness["ohsdk"]["instruction"] in instructions  # one of the toy tasks the smoke trains on
    assert calls == [("warm_ohsdk", agentic_smoke.FORWARD["ohsdk"], harness, ("ohsdk",))]
    agentic_smoke.prepare(tmp_path, 4, 2, False, "ohsdk")  # captured and warm-started once
    assert len(calls) == 1 and (tmp_path / "capture_ohsdk.log").is_file()
