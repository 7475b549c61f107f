"""Reading verl metric streams: FileLogger attempts, console logs, partial lines, NaN/inf, missing keys."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from watch_streams import step_metrics, write_console_log, write_jsonl

from liverl.health.streams import RunNotFoundError, StreamReader, attempt_files, parse_console_line, read_run

KEYS = ("critic/score/mean", "actor/grad_norm", "fully_async/trainer/idle_ratio")


def _expected(steps: range, seed: int, key: str) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.array([step_metrics(s, rng, {})[key] for s in steps])


def test_filelogger_stream_round_trips_values(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "metrics.jsonl", range(1, 31), seed=3)
    stream = read_run(tmp_path, keys=KEYS)
    assert stream.steps.tolist() == list(range(1, 31))
    for key in KEYS:
        np.testing.assert_allclose(stream.columns[key], _expected(range(1, 31), 3, key))
    assert set(stream.columns) == set(KEYS)  # other logged keys are not stored


def test_prefix_keys_are_kept(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "metrics.jsonl", range(1, 4))
    stream = read_run(tmp_path, keys=(), prefixes=("trajectory_filter/reason/",))
    assert stream.keys_with_prefix("trajectory_filter/reason/") == sorted(
        f"trajectory_filter/reason/{r}" for r in
        ("agent_completed", "overlong", "max_turns_reached", "timeout", "env_setup_failed"))


def test_attempts_read_in_numeric_order_and_later_attempt_wins(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "metrics.jsonl", range(1, 51), seed=0)
    write_jsonl(tmp_path / "metrics.2.jsonl", range(46, 71), seed=2)
    write_jsonl(tmp_path / "metrics.10.jsonl", range(61, 81), seed=10)
    assert [p.name for p in attempt_files(tmp_path)] == ["metrics.jsonl", "metrics.2.jsonl", "metrics.10.jsonl"]
    stream = read_run(tmp_path, keys=KEYS)
    assert stream.steps.tolist() == list(range(1, 81))
    key = "critic/score/mean"
    np.testing.assert_allclose(stream.columns[key][:45], _expected(range(1, 51), 0, key)[:45])
    np.testing.assert_allclose(stream.columns[key][45:60], _expected(range(46, 71), 2, key)[:15])
    np.testing.assert_allclose(stream.columns[key][60:], _expected(range(61, 81), 10, key))


def test_resume_supersedes_the_dead_attempts_later_steps(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "metrics.jsonl", range(1, 51))
    write_jsonl(tmp_path / "metrics.1.jsonl", range(41, 44), seed=1)  # resumed at 41, now at 43
    stream = read_run(tmp_path, keys=KEYS)
    assert stream.steps.tolist() == list(range(1, 44))


def test_partial_last_line_is_ignored_then_read_once_complete(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "metrics.jsonl", range(1, 11))
    full = json.dumps({"step": 11, "data": {"actor/grad_norm": 0.25}}).encode() + b"\n"
    with path.open("ab") as fh:
        fh.write(full[:20])
    reader = StreamReader(tmp_path, keys=KEYS)
    reader.poll()
    stream = reader.stream()
    assert stream.steps[-1] == 10
    assert any("partially written last line" in n for n in stream.notes)
    with path.open("ab") as fh:
        fh.write(full[20:])
    assert reader.poll()
    stream = reader.stream()
    assert stream.steps[-1] == 11
    assert stream.columns["actor/grad_norm"][-1] == 0.25
    assert not any("partially" in n for n in stream.notes)


def test_nan_inf_and_null_are_nonfinite_not_missing(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "metrics.jsonl", range(1, 6), faults={"nan_grad": 3})  # FileLogger: NaN -> null
    with path.open("a") as fh:  # a writer that emits NaN/Infinity literals (Python's json)
        fh.write(json.dumps({"step": 6, "data": {"actor/grad_norm": math.inf, "critic/score/mean": math.nan}}) + "\n")
        fh.write("not json at all\n")
    stream = read_run(tmp_path, keys=KEYS)
    assert stream.nonfinite_steps("actor/grad_norm").tolist() == [3, 6]
    assert stream.nonfinite_steps("critic/score/mean").tolist() == [6]
    assert not stream.present["fully_async/trainer/idle_ratio"][-1]  # missing at step 6, not non-finite
    steps, values = stream.series("actor/grad_norm")
    assert steps.tolist() == [1, 2, 4, 5] and np.isfinite(values).all()
    assert any("1 unparsable line" in n for n in stream.notes)


def test_missing_keys_in_some_steps(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "metrics.jsonl", range(1, 6))
    write_jsonl(tmp_path / "metrics.1.jsonl", range(6, 9), drop=("fully_async/",))
    stream = read_run(tmp_path, keys=KEYS)
    idle = stream.columns["fully_async/trainer/idle_ratio"]
    assert np.isfinite(idle[:5]).all() and np.isnan(idle[5:]).all()
    assert stream.present["fully_async/trainer/idle_ratio"].tolist() == [True] * 5 + [False] * 3
    assert stream.first("rollout_corr/nope", "fully_async/trainer/idle_ratio") == "fully_async/trainer/idle_ratio"
    assert not stream.has("rollout_corr/nope")


def test_console_log_matches_filelogger(tmp_path: Path) -> None:
    (tmp_path / "jsonl").mkdir()
    (tmp_path / "console").mkdir()
    write_jsonl(tmp_path / "jsonl" / "metrics.jsonl", range(1, 21), seed=5)
    write_console_log(tmp_path / "console" / "train.log", range(1, 21), seed=5)
    from_jsonl = read_run(tmp_path / "jsonl", keys=KEYS)
    from_log = read_run(tmp_path / "console", keys=KEYS)
    assert from_log.steps.tolist() == from_jsonl.steps.tolist()
    for key in KEYS:
        np.testing.assert_allclose(from_log.columns[key], from_jsonl.columns[key], rtol=1e-12)
    assert from_log.notes == []  # unrelated log lines are not metrics and not errors


def test_console_line_parsing() -> None:
    line = "\x1b[36m(TaskRunner pid=1)\x1b[0m step:12 - a/b:1.5 - c:nan - d:np.float64(-2.0) - e:inf - f:hello"
    step, data = parse_console_line(line)
    assert step == 12
    assert data["a/b"] == 1.5 and data["d"] == -2.0 and math.isnan(data["c"]) and data["e"] == math.inf
    assert "f" not in data
    assert parse_console_line("INFO starting step 3 of the loop") is None


def test_single_file_argument(tmp_path: Path) -> None:
    log = write_console_log(tmp_path / "elsewhere.log", range(1, 4))
    assert read_run(log, keys=KEYS).steps.tolist() == [1, 2, 3]


def test_missing_run_names_path_and_expectation(tmp_path: Path) -> None:
    with pytest.raises(RunNotFoundError, match=r"nope.*metrics\.jsonl"):
        read_run(tmp_path / "nope")
    with pytest.raises(RunNotFoundError, match=r"no metric stream found"):
        read_run(tmp_path)


def test_incremental_poll_reads_only_new_lines(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "metrics.jsonl"
    with path.open("wb") as fh:
        fh.write(json.dumps({"step": 1, "data": step_metrics(1, rng, {})}).encode() + b"\n")
    reader = StreamReader(tmp_path, keys=KEYS)
    assert reader.poll()
    assert not reader.poll()  # nothing new
    with path.open("ab") as fh:
        fh.write(json.dumps({"step": 2, "data": {"actor/grad_norm": 0.5}}).encode() + b"\n")
        fh.write(json.dumps({"step": 2, "data": {"critic/score/mean": 0.7}}).encode() + b"\n")
    assert reader.poll()
    stream = reader.stream()
    assert stream.steps.tolist() == [1, 2]
    assert stream.columns["actor/grad_norm"][1] == 0.5 and stream.columns["critic/score/mean"][1] == 0.7
