"""The golden check (tests/goldens.py) can fail: an update run writes and fails, CI refuses to update."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from goldens import UPDATE, check_golden
from omegaconf import OmegaConf

CFG = OmegaConf.create({"trainer": {"nnodes": 2}})


def test_a_changed_config_fails_against_its_golden(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text("trainer:\n  nnodes: 1\n")
    with pytest.raises(AssertionError, match="changed"):
        check_golden(CFG, "x", tmp_path, environ={})
    check_golden(OmegaConf.create({"trainer": {"nnodes": 1}}), "x", tmp_path, environ={})


def test_an_update_run_writes_the_golden_and_then_fails(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text("trainer:\n  nnodes: 1\n")
    with pytest.raises(pytest.fail.Exception, match="REWRITTEN"):
        check_golden(CFG, "x", tmp_path, environ={UPDATE: "1"})
    assert (tmp_path / "x.yaml").read_text() == "trainer:\n  nnodes: 2\n"
    # even a golden the update leaves as it was fails the update run: an update run is never green
    with pytest.raises(pytest.fail.Exception, match="unchanged"):
        check_golden(CFG, "x", tmp_path, environ={UPDATE: "1"})


def test_ci_refuses_the_update_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text("trainer:\n  nnodes: 1\n")
    with pytest.raises(pytest.fail.Exception, match="refused under CI"):
        check_golden(CFG, "x", tmp_path, environ={UPDATE: "1", "CI": "true"})
    assert (tmp_path / "x.yaml").read_text() == "trainer:\n  nnodes: 1\n"


def test_pytest_under_ci_refuses_the_update_variable_before_any_test_runs() -> None:
    env = {**os.environ, UPDATE: "1", "CI": "true"}
    tests = Path(__file__).parent
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", str(tests / "test_goldens.py"), "-k", "changed_config"],
                         cwd=tests.parent, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 4, out.stdout + out.stderr  # pytest's usage error
    assert "refused under CI" in out.stdout + out.stderr
