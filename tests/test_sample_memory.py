"""benchmarks/gpu/sample_memory.sh wait: it waits for the smokes it started, not for every log in the runs folder.

On the GPU host (2026-12-06) a helper's own log in the same folder, which never gets an exit-code file, kept `wait`
going for its full time after the smoke had ended: nine of the session's thirty device minutes.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu" / "sample_memory.sh"


def wait(runs: Path, seconds: int) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    done = subprocess.run(["bash", str(SCRIPT), "wait", str(seconds)], capture_output=True, text=True, check=False,
                          env={**os.environ, "RUNS": str(runs), "OUT": str(runs / "out")}, timeout=seconds + 60)
    return done, time.monotonic() - start


def test_wait_ends_when_its_smokes_end_whatever_else_logs_there(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    for name in ("ag_cc", "points-run"):  # what `agentic` / `points` start: a marker, a log, and at the end an rc
        (runs / f"{name}.started").touch()
        (runs / f"{name}.log").write_text("step:5 - done\n")
        (runs / f"{name}.rc").write_text("0 511\n")
    (runs / "go.log").write_text("a helper's log; nothing here writes go.rc\n")
    done, took = wait(runs, 120)
    assert done.returncode == 0, done.stderr
    assert took < 30
    assert "ag_cc: exit 0 511" in done.stdout and "points-run: exit 0 511" in done.stdout and "go" not in done.stdout


def test_wait_keeps_waiting_for_a_smoke_still_running(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "ag_oh.started").touch()
    (runs / "ag_oh.log").write_text("step:3 - training\n")
    done, took = wait(runs, 2)  # no rc: it waits until its deadline and says where the smoke is
    assert 2 <= took < 10  # it looks every few seconds: no overshoot of a minute past its deadline
    assert "ag_oh: step:3 -" in done.stdout


def test_wait_ends_soon_after_the_smoke_ends(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "ag_cc.started").touch()
    (runs / "ag_cc.log").write_text("step:4 - training\n")
    ends = threading.Timer(3, lambda: (runs / "ag_cc.rc").write_text("0 300\n"))
    ends.start()
    done, took = wait(runs, 300)
    ends.join()
    assert "ag_cc: exit 0 300" in done.stdout
    assert 3 <= took < 15  # not the next whole minute


def test_wait_waits_for_a_smoke_whose_log_has_no_step_yet(tmp_path: Path) -> None:
    # on the GPU host (2026-12-06, tenth session) `wait` returned at once, printing nothing, while the SDK smoke was
    # still starting: no line of its log matched yet, grep's exit 1 under `set -e -o pipefail` ended the script
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "sdk.started").touch()
    (runs / "sdk.log").write_text("ray init kwargs: {...}\n")
    done, took = wait(runs, 3)
    assert done.returncode == 0, done.stderr
    assert 3 <= took < 10
    assert "sdk: " in done.stdout and "peak MiB per GPU" in done.stdout
