"""liverl.watch: each injected fault is found at its step; a healthy run raises no alarm."""

from __future__ import annotations

import json
import os
import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from watch_streams import FAULTS, healthy_config, write_console_log, write_jsonl, write_run

from liverl import watch
from liverl.health.analysis import load_thresholds, watch_run
from liverl.health.findings import Report

N_STEPS = 130
AT = 70
# how far after the injected step the reported first step may be (turns decline over 3 steps)
TOLERANCE = {"tool_call_collapse": 4, "reward_drop": 2}


def _alarms(report: Report) -> list[tuple[str, str, int | None]]:
    return [(f.id, f.severity, f.first_step) for f in report.findings if f.severity != "INFO"]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_healthy_run_raises_no_alarm(tmp_path: Path, seed: int) -> None:
    report = watch_run(write_run(tmp_path, N_STEPS, seed=seed, config=healthy_config()))
    assert _alarms(report) == []
    assert report.exit_code == 0
    # the healthy model logs every watched metric verl's fully-async trainer logs; routing coverage it does not log
    assert [(s.check, s.needs) for s in report.skipped] == [("routing_coverage", ["rollout/moe/routed_experts_found"])]
    assert [f.id for f in report.findings] == ["partial_ratio"]  # reported, not a problem


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_fault_is_found_at_its_step(tmp_path: Path, fault: str) -> None:
    finding_id, severity = FAULTS[fault]
    report = watch_run(write_run(tmp_path, N_STEPS, {fault: AT}, seed=7, config=healthy_config()))
    found = [f for f in report.findings if f.id == finding_id]
    assert len(found) == 1, report.findings
    f = found[0]
    assert f.severity == severity
    assert AT - TOLERANCE.get(finding_id, 0) <= f.first_step <= AT + TOLERANCE.get(finding_id, 0)
    assert f.message and f.fix
    assert report.exit_code == {"WARN": 1, "CRIT": 2}[severity]
    # only the injected fault alarms (flat-zero reward also zeroes advantages: suppressed as a consequence)
    assert {a[0] for a in _alarms(report)} == {finding_id}


@pytest.mark.parametrize("fault", ["idle_high", "lr_zero", "reward_drop_plain", "pearson_low"])
def test_recovered_fault_is_info_with_its_span(tmp_path: Path, fault: str) -> None:
    finding_id, _ = FAULTS[fault]
    report = watch_run(write_run(tmp_path, N_STEPS, {fault: (AT, AT + 20)}, seed=7, config=healthy_config()))
    f = next(f for f in report.findings if f.id == finding_id)
    assert f.severity == "INFO"
    assert abs(f.first_step - AT) <= TOLERANCE.get(finding_id, 0)
    assert "recovered" in f.message
    assert report.exit_code == 0


def test_reward_drop_with_a_filter_shift_is_the_silent_killer(tmp_path: Path) -> None:
    report = watch_run(write_run(tmp_path, N_STEPS, {"reward_drop_filter": AT}, config=healthy_config()))
    drop = next(f for f in report.findings if f.id == "reward_drop")
    assert (drop.severity, drop.first_step) == ("CRIT", AT)
    assert "trajectory_filter/invalid_ratio" in drop.message and "response_length" not in drop.message
    invalid = next(f for f in report.findings if f.id == "invalid_trajectories")
    assert invalid.first_step == AT and "overlong" in invalid.message


def test_short_kl_spike_warns_and_names_the_baseline(tmp_path: Path) -> None:
    report = watch_run(write_run(tmp_path, N_STEPS, {"kl_spike": (AT, AT + 2)}, config=healthy_config()))
    f = next(f for f in report.findings if f.id == "rollout_corr_kl_spike")
    assert (f.severity, f.first_step) == ("WARN", AT)
    assert "baseline of 0.000" in f.message and "scaffold or routing corruption" in f.message


def test_bypass_mode_kl_key(tmp_path: Path) -> None:
    rename = {"rollout_corr/kl": "actor/rollout_corr/kl"}
    report = watch_run(write_run(tmp_path, N_STEPS, {"kl_spike": AT}, rename=rename))
    f = next(f for f in report.findings if f.id == "rollout_corr_kl_spike")
    assert (f.metric, f.first_step) == ("actor/rollout_corr/kl", AT)


def test_sync_run_lists_checks_it_could_not_run(tmp_path: Path) -> None:
    run = write_run(tmp_path, N_STEPS, drop=("fully_async/", "rollout_corr/", "trajectory_filter/", "training/"))
    report = watch_run(run)
    skipped = {s.check: s.needs for s in report.skipped}
    assert skipped["rollout_bound"] == ["fully_async/trainer/idle_ratio"]
    assert skipped["rollout_corr_kl_spike"] == ["rollout_corr/kl or actor/rollout_corr/kl"]
    assert {"probs_pearson_low", "partial_ratio", "invalid_trajectories", "env_setup_failed",
            "is_ess_collapse"} <= set(skipped)
    assert "lr_zero" not in skipped and report.exit_code == 0


def test_reward_drop_without_shift_metrics_says_what_it_could_not_check(tmp_path: Path) -> None:
    run = write_run(tmp_path, N_STEPS, {"reward_drop_plain": AT}, drop=("response_length/", "trajectory_filter/"))
    f = next(f for f in watch_run(run).findings if f.id == "reward_drop")
    assert "could not check response_length/mean, trajectory_filter/invalid_ratio" in f.message


def test_same_reward_groups_on_smoke_is_expected(tmp_path: Path) -> None:
    config = healthy_config(batch__name="smoke", train_bsz=8, n_resp_per_prompt=4)
    report = watch_run(write_run(tmp_path, N_STEPS, {"same_reward": AT}, config=config))
    f = next(f for f in report.findings if f.id == "same_reward_groups")
    assert f.severity == "INFO" and "plumbing" in f.message
    assert report.exit_code == 0


def test_ess_fix_follows_the_configured_is_level(tmp_path: Path) -> None:
    run = write_run(tmp_path, N_STEPS, {"ess_collapse": AT}, config=healthy_config(rollout_is="token"))
    f = next(f for f in watch_run(run).findings if f.id == "is_ess_collapse")
    assert f.fix == "rollout_is=null"
    tokens = re.search(r"responses average ([\d,]+) tokens", f.message)
    assert tokens and int(tokens.group(1).replace(",", "")) > 50_000  # the long responses are named


@pytest.mark.parametrize(
    ("status", "expected"),
    [(None, "WARN"), ("running", "CRIT"), ("finished", None), ("refused", None), ("config_error", None)],
)
def test_stalled_run(tmp_path: Path, status: str | None, expected: str | None) -> None:
    run = write_run(tmp_path, 40)
    if status:
        (run / "run.json").write_text(json.dumps({"status": status}))
    now = time.time()
    os.utime(run / "metrics.jsonl", (now - 7200, now - 7200))  # steps take ~300 s; 2 h of silence
    stalled = [f for f in watch_run(run, now=now).findings if f.id == "stalled"]
    assert [f.severity for f in stalled] == ([expected] if expected else [])
    fresh = write_run(tmp_path / "fresh", 40)
    assert not [f for f in watch_run(fresh).findings if f.id == "stalled"]


def test_console_log_run_gets_the_same_findings(tmp_path: Path) -> None:
    write_console_log(tmp_path / "train.log", range(1, N_STEPS + 1), {"grad_starvation": AT})
    report = watch_run(tmp_path)
    assert _alarms(report) == [("grad_starvation", "WARN", AT)]


def test_resumed_attempt_supersedes_a_fault_of_the_dead_attempt(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "metrics.jsonl", range(1, 91), {"lr_zero": 60})
    assert watch_run(tmp_path).exit_code == 2
    write_jsonl(tmp_path / "metrics.1.jsonl", range(51, 131), seed=1)  # resumed from the step-50 checkpoint
    report = watch_run(tmp_path)
    assert _alarms(report) == [] and report.last_step == 130


def test_thresholds_are_configurable(tmp_path: Path) -> None:
    run = write_run(tmp_path, N_STEPS, {"idle_high": AT})
    assert watch_run(run).exit_code == 1
    assert watch_run(run, load_thresholds(sets=["idle_ratio.high=0.9"])).exit_code == 0
    (tmp_path / "t.yaml").write_text("idle_ratio:\n  min_steps: 100\n")
    assert watch_run(run, load_thresholds(str(tmp_path / "t.yaml"))).exit_code == 0


def test_cli_json_and_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = write_run(tmp_path, N_STEPS, {"reward_zero": AT, "nan_grad": 20})
    assert watch.main([str(run), "--json"]) == 2
    out = json.loads(capsys.readouterr().out)
    assert out["exit_code"] == 2 and out["last_step"] == N_STEPS
    by_id = {f["id"]: f for f in out["findings"]}
    assert by_id["reward_flat_zero"]["first_step"] == AT and by_id["reward_flat_zero"]["current"] == 0.0
    assert by_id["nonfinite_values"]["first_step"] == 20 and by_id["nonfinite_values"]["current"] is None


def test_cli_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = write_run(tmp_path, N_STEPS, {"turns_collapse": AT}, drop=("fully_async/",))
    assert watch.main([str(run)]) == 2
    out = capsys.readouterr().out
    assert "tool_call_collapse" in out and "could not run" in out and "rollout_bound" in out
    assert "critical (exit 2)" in out


def test_cli_missing_run_exits_2_naming_the_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert watch.main([str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "missing") in err and "metrics.jsonl" in err


def test_plot_is_a_nontrivial_png(tmp_path: Path) -> None:
    import matplotlib.image

    run = write_run(tmp_path, N_STEPS, {"idle_high": AT, "lr_zero": 100})
    png = tmp_path / "out.png"
    assert watch.main([str(run), "--plot", str(png), "--json"]) == 2
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = matplotlib.image.imread(png)
    assert img.shape[0] > 400 and img.shape[1] > 400
    rgb = img[..., :3]
    red = (rgb[..., 0] > 0.8) & (rgb[..., 1] < 0.3) & (rgb[..., 2] < 0.3)  # the CRIT marker
    assert (rgb < 0.9).any(axis=-1).mean() > 0.02 and red.sum() > 50


def test_follow_stops_on_critical_as_steps_arrive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "metrics.jsonl"
    write_jsonl(path, range(1, 21))

    def resume_with_fault() -> None:  # a resumed attempt appends steps while watch follows
        time.sleep(0.2)
        write_jsonl(tmp_path / "metrics.1.jsonl", range(21, 61), {"lr_zero": 40})

    writer = threading.Thread(target=resume_with_fault)
    writer.start()
    report, stream = watch.follow(tmp_path, load_thresholds(), interval=0.05, stop_on_critical=True, max_polls=400)
    writer.join()
    assert report.exit_code == 2
    assert [(f.id, f.first_step) for f in report.findings if f.severity == "CRIT"] == [("lr_zero", 40)]
    assert "CRIT lr_zero since step 40" in capsys.readouterr().out
    assert np.array_equal(stream.steps, np.arange(1, len(stream.steps) + 1))


def test_follow_cli_healthy_ends_after_max_polls(tmp_path: Path) -> None:
    run = write_run(tmp_path, 30)
    assert watch.main([str(run), "--follow", "--stop-on-critical", "--interval", "0", "--max-polls", "2"]) == 0


def test_benchmark_code_path_on_a_tiny_stream(capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.util

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "watch_speed.py"
    spec = importlib.util.spec_from_file_location("watch_speed", script)
    assert spec and spec.loader
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    figures = bench.main(["--steps", "40", "--metrics", "120", "--repeat", "1"])
    out = capsys.readouterr().out
    assert "40 steps x 120 metrics" in out and "ratio report/pandas" in out
    assert figures["ratio"] == pytest.approx(figures["report_s"] / figures["pandas_load_s"])
    assert figures["report_peak_mb"] > 0
