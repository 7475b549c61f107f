"""benchmarks/plan_latency.py compares like with like: its baseline and `liverl.train` end the same way (neither
runs the interpreter's teardown, whose atexit hooks and module finalisation cost over a second with torch/ray)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from conftest import REPO

spec = importlib.util.spec_from_file_location("plan_latency", REPO / "benchmarks" / "plan_latency.py")
assert spec and spec.loader
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)

# an atexit hook runs at the interpreter's teardown and only there: it prints when a side tears down
HOOK = "import atexit, sys; atexit.register(lambda: print('TEARDOWN', file=sys.stderr)); "


def tears_down(code: str, cwd: Path) -> bool:
    out = subprocess.run([sys.executable, "-c", HOOK + code], cwd=cwd, capture_output=True, text=True, timeout=300,
                         check=False)
    assert out.returncode == 0, out.stderr
    return "TEARDOWN" in out.stderr


def test_the_baseline_and_the_plan_end_the_same_way(tmp_path: Path) -> None:
    args = bench.plan_command(tmp_path / "run")
    assert args[:2] == ["-m", "liverl.train"]
    plan = f"import runpy; sys.argv = {['liverl.train', *args[2:]]!r}; runpy.run_module('liverl.train', " \
           "run_name='__main__', alter_sys=True)"
    plan_tears_down = tears_down(plan, tmp_path)
    assert (tmp_path / "run" / "verl.yaml").is_file()  # the plan was written
    assert tears_down(bench.BASELINE, tmp_path) == plan_tears_down
    assert not plan_tears_down  # liverl.train skips the teardown when nothing was launched (liverl/train.py)
