"""watch / advise on metric streams of REAL verl runs (tests/fixtures/gpu_*_tiny: the tiny random Qwen2 trained by
verl 0.9.1 + vLLM 0.24.0 on an H200 host with `python -m liverl.tiny.smoke`; see docs/gpu-smoke.md).

gpu_sync_tiny: topology=gpu1, 3 steps (metrics.jsonl) then a relaunch resumed from global_step_3 (metrics.1.jsonl,
steps 4-5). gpu_async_tiny: topology=gpu2 (1 trainer GPU + 1 rollout GPU), 3 trainer steps."""

from __future__ import annotations

import json
from pathlib import Path

from liverl.health.advice import advise
from liverl.health.analysis import watch_run
from liverl.health.catalogue import GEN_TIME, IDLE, KL, MEMORY, PARTIAL, PEARSON, SCORE, STEP_TIME, TURNS
from liverl.health.streams import read_run

FIXTURES = Path(__file__).parent / "fixtures"
SYNC, ASYNC = FIXTURES / "gpu_sync_tiny", FIXTURES / "gpu_async_tiny"


def keys_of(run: Path) -> set[str]:
    out: set[str] = set()
    for path in run.glob("metrics*.jsonl"):
        for line in path.read_text().splitlines():
            out |= set(json.loads(line)["data"])
    return out


def test_the_names_liverl_reads_are_the_names_verl_emitted() -> None:
    sync, fully_async = keys_of(SYNC), keys_of(ASYNC)
    for names in (SCORE, STEP_TIME, GEN_TIME, TURNS, KL, PEARSON):
        assert names[0] in sync, names
    assert IDLE[0] in fully_async and PARTIAL[0] in fully_async and IDLE[0] not in sync
    # verl 0.9.1 logs the trainer's peak memory only under actor/perf/ (the plain perf/ names are never emitted)
    assert "actor/perf/max_memory_allocated_gb" in sync and "perf/max_memory_allocated_gb" not in sync
    assert any(k in sync for k in MEMORY)
    # the fully-async trainer does not log rollout-correction metrics when rollout_is is off
    assert KL[0] not in fully_async and PEARSON[0] not in fully_async


def test_resumed_stream_continues_the_step_numbers() -> None:
    stream = read_run(SYNC)
    assert stream.steps.tolist() == [1, 2, 3, 4, 5]
    run = json.loads((SYNC / "run.json").read_text())
    assert run["resume_from"].endswith("checkpoints/global_step_3") and run["status"] == "succeeded"


def test_sync_findings_on_a_real_stream() -> None:
    report = watch_run(SYNC, now=read_run(SYNC).last_write + 60)
    found = {f.id: f for f in report.findings}
    # a random-weight model with 448 embedding rows for 425 tokenizer ids: rollout and trainer log-probs differ by
    # ~0.06 nats on every step (rollout_ppl ~400 vs training_ppl ~425), a real mismatch from step 1
    kl = found.pop("rollout_corr_kl_spike")
    assert kl.severity == "CRIT" and kl.first_step == 1 and "from the first logged step (1)" in kl.message
    assert "spiked" not in kl.message
    # the generated task pays partial credit, so the random model earns a varying reward: no zero-reward finding
    assert not found, found
    skipped = {s["check"]: s for s in report.to_dict()["skipped"]}
    assert skipped["rollout_bound"]["needs"] == ["fully_async/trainer/idle_ratio"]
    assert "is_ess_collapse" in skipped and "rollout_corr/rollout_is_eff_sample_size" in skipped["is_ess_collapse"][
        "needs"][0]


def test_async_findings_on_a_real_stream() -> None:
    written = read_run(ASYNC).last_write
    report = watch_run(ASYNC, now=written + 60)
    assert [(f.id, f.severity) for f in report.findings] == [("partial_ratio", "INFO")]
    skipped = {s["check"] for s in report.to_dict()["skipped"]}
    assert {"rollout_corr_kl_spike", "probs_pearson_low", "is_ess_collapse"} <= skipped
    assert report.exit_code == 0
    # the relaunch into this run was killed (the host's time ran out) before its first step and never recorded an
    # end: run.json still says running, so an hour later the run is rightly reported stalled
    stalled = [f for f in watch_run(ASYNC, now=written + 3600).findings if f.id == "stalled"]
    assert stalled and stalled[0].severity == "CRIT" and stalled[0].first_step == 3


def test_advise_on_real_streams() -> None:
    rows = {a.id: a for a in advise(ASYNC)}
    assert rows["rollout_bound"].verdict == "already"
    # a random model writes to the end of a 64-token window: lengthen it, do not jump to 3 nodes and 131k
    window = rows["long_window"]
    assert window.verdict == "stay" and window.overrides == ["window.response=128"]
    assert "topology=3node" not in (window.command or "")
    assert {a.id: a.verdict for a in advise(SYNC)}["rollout_bound"] == "stay"
