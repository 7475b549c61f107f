"""conform.capture's record: the first request of the first trial that had one, merged into the file, no secret
written (liverl/conform/capture.py; the whole path with a real harness: tests/scaffold/test_conform_agents.py)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from liverl.conform import capture


def trial(task: Path, first) -> SimpleNamespace:
    return SimpleNamespace(task=str(task), session=SimpleNamespace(first_request=first) if first else None)


def test_the_first_trial_with_a_request_is_recorded_beside_the_other_harnesses(tmp_path: Path) -> None:
    task = tmp_path / "t1"
    task.mkdir()
    (task / "instruction.md").write_text("Create notes.txt\n")
    first = ([{"role": "system", "content": "harness"}, {"role": "user", "content": "Create notes.txt"}],
             [{"type": "function", "function": {"name": "Bash"}}])
    got = capture.first_request([trial(tmp_path / "none", None), trial(task, first)])
    assert got == {"messages": first[0], "tools": first[1], "instruction": "Create notes.txt"}
    out = tmp_path / "h" / "harness.json"
    capture.record(out, "ohsdk", {"messages": [], "tools": [], "instruction": "old"})
    capture.record(out, "claude_code", got)
    capture.record(out, "ohsdk", dict(got, instruction="new"))
    held = json.loads(out.read_text())
    assert held["claude_code"] == got and held["ohsdk"]["instruction"] == "new"
    assert [p.name for p in out.parent.iterdir()] == ["harness.json"]  # no temporary file left
    assert capture.first_request([trial(task, None)]) is None


def test_no_secret_in_the_request_reaches_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    planted = "Zq8v3LmT0pRw6yXs1NbK4dFh"
    monkeypatch.setenv("MY_SERVICE_TOKEN", planted)
    shaped = "hf_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6"
    request = {"messages": [{"role": "system", "content": f"env: token={planted} key {shaped} end"}], "tools": [],
               "instruction": "x"}
    out = tmp_path / "harness.json"
    capture.record(out, "claude_code", request)
    text = out.read_text()
    assert planted not in text and shaped not in text and "env: token=" in text and " end" in text
