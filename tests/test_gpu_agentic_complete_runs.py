"""watch / advise on the metric streams of REAL agentic runs: 5 training steps with a resumed relaunch.

2026-12-06, one H100 (`nvidia-h100-x1`): `make smoke SCAFFOLD=claude_code|ohsdk ARGS="--steps=4 --resume-steps=1"`'s
command (liverl.tiny.agentic_smoke: the tiny Qwen2 with the agentic tokenizer, warm-started 1000 steps on the
harness's captured first request, 64 toy Harbor tasks in the local environment, 36,864 + 2,048-token window, fixed
4 GiB KV cache), verl 0.9.1 + vLLM 0.24.0, sync topology=gpu1, batch=smoke (8 prompts x 4 = 32 trials a step); both
smokes and both conformance runs on the one GPU at once.

- tests/fixtures/gpu_agentic_claude_code: the pinned claude-code CLI (2.1.332); 4 steps, then a relaunch that resumed
  from global_step_4 and trained step 5. Most first turns were text without a tool call: 1.06-1.19 model calls per
  trial, 6-19% of trials with two or more.
- tests/fixtures/gpu_agentic_ohsdk: the OpenHands SDK; 4 steps, every trial but one two model calls or more, reward
  0.016-0.078. Its relaunch resumed from global_step_4 and was writing global_step_5 when the device time ended
  (relaunch.log, from the run's log): metrics.1.jsonl is empty, as a relaunch cut mid-step leaves it.

Later the same day, one H100, the same command for claude-code alone, its warm start (bf16, 1000 steps, 188 s) trained
on the host's own first request (liverl.tiny.transcripts.as_host; tests/test_gpu_agentic_served_policy.py says why):
- tests/fixtures/gpu_agentic_claude_code_5steps: 4 steps, then a relaunch that resumed from global_step_4 and trained
  step 5; 47-62% of trials a step with two or more model calls, 54% over the run; 98 of 176 first replies called Bash.

The next session, one H100, the same command for the OpenHands SDK alone, its warm start (autocast, 1000 steps, 55 s)
trained on the host's own first request:
- tests/fixtures/gpu_agentic_ohsdk_5steps: 4 steps, then a relaunch that resumed from global_step_4 and trained step 5
  (its metrics row is there: the fifth session's relaunch was cut before it); 53-72% of trials a step with two or
  more model calls, 62% over the run; 11 of 168 trials scored partial credit.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import metric_rows

from liverl import advise
from liverl.health.analysis import load_thresholds, watch_run
from liverl.health.catalogue import INVALID, KL, PEARSON, REASON_PREFIX, SCAFFOLD_TURNS, SCORE
from liverl.health.streams import read_run

FIXTURES = Path(__file__).parent / "fixtures"
RUNS = {s: FIXTURES / f"gpu_agentic_{s}" for s in ("claude_code", "ohsdk")}
ACTING = FIXTURES / "gpu_agentic_claude_code_5steps"  # claude-code's policy warm-started on the host's own request
SDK_ACTING = FIXTURES / "gpu_agentic_ohsdk_5steps"  # the SDK's, likewise
COMPLETE = {**RUNS, "claude_code_5steps": ACTING, "ohsdk_5steps": SDK_ACTING}
FIGURES = ("turns", "chains", "trained_turn_fraction", "trained_token_fraction", "parse_failures", "waste_s",
           "trial_s")
TRIALS = 32  # batch=smoke: 8 prompts x 4 responses


@pytest.mark.parametrize("run", sorted(COMPLETE))
def test_every_step_carries_liverls_scaffold_figures_and_verls_agreement(run: str) -> None:
    for row in metric_rows(COMPLETE[run]):
        assert all(f"scaffold/{name}/mean" in row for name in FIGURES), row["training/global_step"]
        assert row["scaffold/chains/mean"] == 1.0 and row["scaffold/trained_turn_fraction/mean"] >= 0.95
        # every trial is counted once by the trajectory filter's reasons; none was dropped
        reasons = {k: v for k, v in row.items() if k.startswith(REASON_PREFIX)}
        assert sum(reasons.values()) == TRIALS and row[INVALID[0]] == 0.0
    stream = read_run(COMPLETE[run])
    assert np.all(np.abs(stream.series(KL[0])[1]) < 1e-3) and np.all(stream.series(PEARSON[0])[1] > 0.999)


@pytest.mark.parametrize("run", [RUNS["claude_code"], ACTING, SDK_ACTING],
                         ids=["claude_code", "claude_code_5steps", "ohsdk_5steps"])
def test_five_steps_trained_across_a_resumed_relaunch(run: Path) -> None:
    assert [r["training/global_step"] for r in metric_rows(run)] == [1, 2, 3, 4, 5]
    state = json.loads((run / "run.json").read_text())
    assert state["status"] == "succeeded" and state["resume_from"].endswith("checkpoints/global_step_4")
    assert state["gpu"]["name"] == "h100" and state["gpu"]["planned"] == "h200"  # the probe re-judged the plan
    assert "global_step_5/actor" in (run / "checkpoints.txt").read_text()


def test_the_sdks_relaunch_resumed_and_was_cut_mid_step() -> None:
    run = RUNS["ohsdk"]
    assert [r["training/global_step"] for r in metric_rows(run)] == [1, 2, 3, 4]
    assert (run / "metrics.1.jsonl").read_text() == ""
    log = (run / "relaunch.log").read_text()
    assert "global_step_4/actor/model_world_size_1_rank_0.pt" in log and "global_step_5" in log
    report = watch_run(run)  # an empty stream of the running attempt is read as no steps yet
    assert (report.first_step, report.last_step) == (1, 4)


def test_the_sdk_policy_acts_over_several_turns_and_claude_codes_does_not() -> None:
    sdk, claude = metric_rows(RUNS["ohsdk"]), metric_rows(RUNS["claude_code"])
    assert min(r["scaffold/multi_turn_fraction"] for r in sdk) >= 0.5  # the bar: at least half
    assert max(r["scaffold/multi_turn_fraction"] for r in claude) < 0.5
    assert max(r[SCORE[0]] for r in sdk) > 0.0  # some tasks solved, with partial credit


def test_watch_says_the_claude_code_policy_never_acts() -> None:
    report = watch_run(RUNS["claude_code"])
    found = {f.id: f for f in report.findings}
    collapse = found["tool_call_collapse"]
    assert collapse.severity == "CRIT" and collapse.metric == SCAFFOLD_TURNS[0] and collapse.first_step == 1
    assert "about one model call per trial" in collapse.message and "warm-up" in collapse.fix
    assert found["tool_parse_failures"].severity == "WARN"
    assert report.exit_code == 2


def test_watch_reads_verls_turn_count_as_two_per_call_when_liverls_is_absent(tmp_path: Path) -> None:
    # the same stream without LiveRL's scaffold/turns/mean: verl's num_turns/mean (2.1-2.4 here) is 2 per call
    run = tmp_path / "run"
    run.mkdir()
    for name in ("liverl.yaml", "run.json"):
        (run / name).write_text((RUNS["claude_code"] / name).read_text())
    kept = [{"step": r["training/global_step"], "data": {k: v for k, v in r.items() if not k.startswith("scaffold/")}}
            for r in metric_rows(RUNS["claude_code"])]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))
    found = {f.id: f for f in watch_run(run).findings}
    assert found["tool_call_collapse"].metric == "num_turns/mean" and found["tool_call_collapse"].current < 1.5
    sdk = {f.id for f in watch_run(RUNS["ohsdk"], load_thresholds()).findings}
    assert "tool_call_collapse" not in sdk and "tool_parse_failures" in sdk


@pytest.mark.parametrize("scaffold", sorted(RUNS))
def test_advise_cannot_judge_scale_on_a_five_step_smoke(scaffold: str) -> None:
    by_id = {a.id: a for a in advise.advise(RUNS[scaffold], load_thresholds())}
    assert by_id["rollout_bound"].verdict == "cannot judge"
    assert by_id["moe_cofit"].verdict == "stay" and "dense" in by_id["moe_cofit"].evidence


@pytest.mark.parametrize(("run", "forward"), [(ACTING, "bf16"), (SDK_ACTING, "autocast")],
                         ids=["claude_code_5steps", "ohsdk_5steps"])
def test_an_acting_policy_makes_half_its_trials_multi_turn_over_five_steps(run: Path, forward: str) -> None:
    now = metric_rows(run)
    assert [json.loads(line)["step"] for line in (run / "metrics.1.jsonl").read_text().splitlines()] == [5]
    multi = [r["scaffold/multi_turn_fraction"] for r in now]
    assert sum(multi) / len(multi) >= 0.5  # the bar, over the run's 160 trials
    warm = json.loads((run / "warm_start.json").read_text())
    assert warm["forward"] == forward and warm["host"]["os_release"].endswith("-gpu")  # the host's own request
    assert abs(warm["first_turn"]["tool_call_rate"] - sum(multi) / len(multi)) < 0.1  # the judge foretold the trials
    assert max(r[SCORE[0]] for r in now) > 0.0


def test_claude_codes_warm_start_on_the_hosts_request_more_than_doubled_its_multi_turn_trials() -> None:
    before = max(r["scaffold/multi_turn_fraction"] for r in metric_rows(RUNS["claude_code"]))
    assert min(r["scaffold/multi_turn_fraction"] for r in metric_rows(ACTING)) > 2 * before


@pytest.mark.parametrize("run", [ACTING, SDK_ACTING], ids=["claude_code_5steps", "ohsdk_5steps"])
def test_watch_and_advise_on_an_acting_run(run: Path) -> None:
    report = watch_run(run)
    found = {f.id: f for f in report.findings}
    assert "tool_call_collapse" not in found  # CRIT on claude-code's run before this warm start
    assert found["tool_parse_failures"].severity == "WARN" and 0.25 < found["tool_parse_failures"].current < 0.5
    assert (report.first_step, report.last_step, report.exit_code) == (1, 5, 1)
    by_id = {a.id: a for a in advise.advise(run, load_thresholds())}
    assert by_id["rollout_bound"].verdict == "cannot judge"  # 3 settled steps: each attempt's first is warm-up
