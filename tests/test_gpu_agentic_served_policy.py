"""The warm start judged as the policy is served, against what REAL agentic trials then did.

2026-12-06, one H200 (`nvidia-h200`): `make smoke SCAFFOLD=claude_code|ohsdk ARGS="--steps=4 --resume-steps=1"`'s
command as in tests/test_gpu_agentic_complete_runs.py, the warm starts trained on the GPU host during the transfers
(1000 steps each), both smokes on the one GPU at once; the device time ended after 3 steps of each (claude-code was
writing `global_step_4`).

- tests/fixtures/gpu_agentic_claude_code_host: claude-code's warm start trained in bf16 (`forward="bf16"`) on its
  captured request rewritten as the GPU host sends it (the host's kernel name in its environment turn, where the
  capture had the CPU machine's). Its judge (bf16 compute, fp32 RoPE frequencies, fresh tasks) scored 56% of first
  turns with a tool call; its trials then made two or more model calls in 38-56% of trials a step (6-19% in the run
  before, whose warm start saw the capture's kernel name).
- tests/fixtures/gpu_agentic_ohsdk_bf16: the OpenHands SDK's warm start trained in bf16 too: judged 46%, its trials
  44-62% multi-turn with 0.84-0.91 unparsed tool calls per trial, where the autocast warm start's run had 97-100% and
  0.34-0.38 (tests/fixtures/gpu_agentic_ohsdk). Why liverl.tiny.agentic_smoke.FORWARD keeps the SDK's under autocast.
"""

from __future__ import annotations

import json
from pathlib import Path

from conftest import metric_rows

from liverl.health.analysis import watch_run
from liverl.tiny.agentic_smoke import FORWARD

FIXTURES = Path(__file__).parent / "fixtures"
CLAUDE = FIXTURES / "gpu_agentic_claude_code_host"
SDK_BF16 = FIXTURES / "gpu_agentic_ohsdk_bf16"
BEFORE = {s: FIXTURES / f"gpu_agentic_{s}" for s in ("claude_code", "ohsdk")}  # the run before (autocast warm starts)


def mean(run: Path, key: str) -> float:
    values = [r[key] for r in metric_rows(run)]
    return sum(values) / len(values)


def test_claude_codes_policy_acts_once_warm_started_on_the_hosts_own_requests() -> None:
    now, before = metric_rows(CLAUDE), metric_rows(BEFORE["claude_code"])
    assert [r["training/global_step"] for r in now] == [1, 2, 3]
    assert max(r["scaffold/multi_turn_fraction"] for r in before) < 0.2
    assert min(r["scaffold/multi_turn_fraction"] for r in now) > 0.35
    multi = "scaffold/multi_turn_fraction"
    assert mean(CLAUDE, multi) > 2.5 * mean(BEFORE["claude_code"], multi)
    warm = json.loads((CLAUDE / "warm_start.json").read_text())
    assert warm["forward"] == FORWARD["claude_code"] == "bf16"
    # the judge (first turns with a parsed call) within 10 points of the trials that made a second call
    assert abs(warm["first_turn"]["tool_call_rate"] - mean(CLAUDE, multi)) < 0.1


def test_watch_no_longer_says_claude_code_never_acts() -> None:
    found = {f.id: f for f in watch_run(CLAUDE).findings}
    assert "tool_call_collapse" not in found  # CRIT on the run before (test_gpu_agentic_complete_runs.py)
    assert found["tool_parse_failures"].severity == "WARN"  # about a fifth of its turns do not parse


def test_a_bf16_warm_start_serves_the_sdk_a_policy_whose_calls_parse_less() -> None:
    assert json.loads((SDK_BF16 / "warm_start.json").read_text())["forward"] == "bf16"
    assert FORWARD["ohsdk"] == "autocast"
    per_trial = "scaffold/parse_failures/mean"
    assert mean(SDK_BF16, per_trial) > 2 * mean(BEFORE["ohsdk"], per_trial)
    assert max(r["scaffold/multi_turn_fraction"] for r in metric_rows(SDK_BF16)) < \
        min(r["scaffold/multi_turn_fraction"] for r in metric_rows(BEFORE["ohsdk"]))
    found = {f.id: f for f in watch_run(SDK_BF16).findings}
    assert found["tool_parse_failures"].severity == "CRIT"
