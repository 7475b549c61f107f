"""watch on the metric stream of a REAL agentic step (tests/fixtures/gpu_agentic_claude_code_step1).

2026-12-06, one H200: `make smoke SCAFFOLD=claude_code`'s command (liverl.tiny.agentic_smoke: the tiny Qwen2 with the
agentic tokenizer, warm-started 300 steps on claude-code's captured first request, 64 toy Harbor tasks in the local
environment, 36,864 + 2,048-token window), verl 0.9.1 + vLLM 0.24.0, sync topology=gpu1, batch=smoke. The pinned
claude-code CLI (2.1.332) ran each trial through LiveRL's proxy to vLLM, and verl trained step 1 on the trajectories
(67 s, trainer peak 17.2 GiB allocated). Only 8 of the 32 trials ran: the agent loop's verl @register replaced the
plan's entry after the first instantiate on each worker (fixed, tests/scaffold/test_loop_registry.py), and step 2
stopped in verl ("no materializable trajectories"). The 8 trials: one turn each, 6 of 8 turns a tool call that did
not parse (the warm start had taught the format to about half the first turns), reward 0.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from liverl.health.analysis import watch_run
from liverl.health.catalogue import INVALID, KL, PARSE_FAILURES, PEARSON, REASON_PREFIX, SCAFFOLD_TURNS
from liverl.health.streams import read_run

RUN = Path(__file__).parent / "fixtures" / "gpu_agentic_claude_code_step1"
FIGURES = ("turns", "chains", "trained_turn_fraction", "trained_token_fraction", "parse_failures", "waste_s",
           "trial_s")


def test_the_stream_carries_liverls_scaffold_figures_beside_verls() -> None:
    row = json.loads((RUN / "metrics.jsonl").read_text().splitlines()[0])["data"]
    assert all(f"scaffold/{name}/mean" in row for name in FIGURES)
    verls = {KL[0], PEARSON[0]}
    assert {"scaffold/multi_turn_fraction", INVALID[0], REASON_PREFIX + "agent_completed", *verls} <= set(row)
    # every trial that ran was one chain, every turn trained; one model call each, so no multi-turn trial
    assert row["scaffold/chains/mean"] == 1.0 and row["scaffold/trained_turn_fraction/mean"] == 1.0
    assert row["scaffold/multi_turn_fraction"] == 0.0 and row[REASON_PREFIX + "agent_completed"] == 8.0


def test_vllm_and_the_trainer_agree_on_the_agentic_window() -> None:
    stream = read_run(RUN)
    assert np.all(np.abs(stream.series(KL[0])[1]) < 1e-3) and np.all(stream.series(PEARSON[0])[1] > 0.999)


def test_watch_flags_the_turns_the_parser_could_not_read() -> None:
    report = watch_run(RUN)
    found = [f for f in report.findings if f.id == "tool_parse_failures"]
    assert len(found) == 1 and found[0].severity == "CRIT" and found[0].current == 0.75
    assert "model.tool_call_parser.claude_code: hermes" in found[0].fix


def test_a_stream_whose_tool_calls_parse_has_no_such_finding(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(RUN, run)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for row in rows:
        row["data"][PARSE_FAILURES[0]] = 0.04 * row["data"][SCAFFOLD_TURNS[0]]  # under the 5% the gate allows
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert not [f for f in watch_run(run).findings if f.id == "tool_parse_failures"]
