"""watch / advise on metric streams of REAL verl runs (tests/fixtures/gpu_*: the tiny random Qwen2 trained by
verl 0.9.1 + vLLM 0.24.0 on H200 hosts with `python -m liverl.tiny.smoke`; docs/gpu-smoke.md has the figures).

Each run: 3 steps (metrics.jsonl), then a relaunch into the same run directory that resumed from global_step_3
(metrics.1.jsonl, steps 4-5).
- gpu_sync_tiny: topology=gpu1 engine=fsdp (sync, trainer + vLLM on one GPU).
- gpu_sync_veomni: topology=gpu1 engine=veomni (the same on VeOmni's engine).
- gpu_async_tiny: topology=gpu2 engine=fsdp (fully async: 1 trainer GPU + 1 rollout GPU).
- gpu_sync_untied (2026-12-05, one H100): topology=gpu1 engine=fsdp on the tiny model with an LM head of its own
  (`liverl.tiny.smoke --untied`): LiveRL turned verl's fused log-prob kernels off for the untied model, and the run
  trained and resumed (with them on, verl's first log-prob pass dies on FSDP2: memory issue, dense_common.py:123).
Kept from the first GPU session (2026-11-30, earlier):
- gpu_sync_tiny_vocab448: the model had 448 embedding rows for 425 tokenizer ids (since fixed in the generator).
- gpu_async_tiny_killed_relaunch: 3 fully-async steps; the relaunch was killed before a step (the call's time ran out).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from liverl.health.advice import advise_rows as advise
from liverl.health.analysis import watch_run
from liverl.health.catalogue import GEN_TIME, IDLE, KL, MEMORY, PARTIAL, PEARSON, SCORE, STEP_TIME, TURNS
from liverl.health.streams import read_run

FIXTURES = Path(__file__).parent / "fixtures"
SYNC, VEOMNI, ASYNC = FIXTURES / "gpu_sync_tiny", FIXTURES / "gpu_sync_veomni", FIXTURES / "gpu_async_tiny"
VOCAB448, KILLED = FIXTURES / "gpu_sync_tiny_vocab448", FIXTURES / "gpu_async_tiny_killed_relaunch"
UNTIED = FIXTURES / "gpu_sync_untied"
RESUMED = (SYNC, VEOMNI, ASYNC, UNTIED)
ALL = (*RESUMED, VOCAB448, KILLED)


def keys_of(run: Path) -> set[str]:
    out: set[str] = set()
    for path in run.glob("metrics*.jsonl"):
        for line in path.read_text().splitlines():
            out |= set(json.loads(line)["data"])
    return out


@pytest.mark.parametrize("sync_run", [SYNC, VEOMNI, UNTIED])
def test_the_names_liverl_reads_are_the_names_verl_emitted(sync_run: Path) -> None:
    sync, fully_async = keys_of(sync_run), keys_of(ASYNC)
    for names in (SCORE, STEP_TIME, GEN_TIME, TURNS, KL, PEARSON):
        assert names[0] in sync, names
    assert IDLE[0] in fully_async and PARTIAL[0] in fully_async and IDLE[0] not in sync
    # verl 0.9.1 logs the trainer's peak memory only under actor/perf/ (the plain perf/ names are never emitted)
    assert "actor/perf/max_memory_allocated_gb" in sync and "perf/max_memory_allocated_gb" not in sync
    assert any(k in sync for k in MEMORY)
    # the fully-async trainer does not log rollout-correction metrics when rollout_is is off
    assert KL[0] not in fully_async and PEARSON[0] not in fully_async


@pytest.mark.parametrize("run_dir", RESUMED, ids=lambda p: p.name)
def test_the_relaunch_resumed_and_the_step_numbers_continue(run_dir: Path) -> None:
    run = json.loads((run_dir / "run.json").read_text())
    assert run["resume_from"].endswith("checkpoints/global_step_3") and run["status"] == "succeeded"
    assert [a["status"] for a in run["attempts"]] == ["succeeded"] and run["attempt"] == 1
    first = {json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()}
    second = {json.loads(line)["step"] for line in (run_dir / "metrics.1.jsonl").read_text().splitlines()}
    # the fully-async rollouter logs a row at the step it resumes from (3) and a step-0 row at the start
    assert first - {0} == {1, 2, 3} and second - {3} == {4, 5}
    assert read_run(run_dir).steps.tolist()[-1] == 5


@pytest.mark.parametrize("run_dir", [SYNC, VEOMNI, UNTIED], ids=lambda p: p.name)
def test_rollout_and_trainer_log_probs_agree_once_the_vocabulary_matches(run_dir: Path) -> None:
    # the generator sizes the embedding to the tokenizer: vLLM's and the trainer's log-probs now agree on every step
    # (VeOmni's engine too), where the 448-row model was 0.06 nats apart
    stream = read_run(run_dir)
    assert np.all(np.abs(stream.series(KL[0])[1]) < 1e-3)
    assert np.all(stream.series(PEARSON[0])[1] > 0.999)
    assert np.all(np.abs(read_run(VOCAB448).series(KL[0])[1] - 0.06) < 0.01)


@pytest.mark.parametrize("run_dir", [SYNC, VEOMNI, UNTIED], ids=lambda p: p.name)
def test_sync_real_streams_are_healthy_and_say_what_they_could_not_check(run_dir: Path) -> None:
    report = watch_run(run_dir, now=read_run(run_dir).last_write + 3600)
    # the generated task pays partial credit, so the random model earns a varying reward: no zero-reward finding;
    # the run ended (run.json: succeeded), so an hour later it is not stalled
    assert report.findings == [] and report.exit_code == 0
    skipped = {s["check"]: s for s in report.to_dict()["skipped"]}
    assert skipped["rollout_bound"]["needs"] == ["fully_async/trainer/idle_ratio"]
    assert "rollout_corr/rollout_is_eff_sample_size" in skipped["is_ess_collapse"]["needs"][0]


def test_vocabulary_mismatch_is_a_critical_finding_from_step_one() -> None:
    report = watch_run(VOCAB448, now=read_run(VOCAB448).last_write + 60)
    found = {f.id: f for f in report.findings}
    # 448 embedding rows for 425 tokenizer ids: rollout ppl ~400 vs training ppl ~425 on every step
    kl = found.pop("rollout_corr_kl_spike")
    assert kl.severity == "CRIT" and kl.first_step == 1 and "from the first logged step (1)" in kl.message
    assert "spiked" not in kl.message and not found


def test_async_real_stream() -> None:
    written = read_run(ASYNC).last_write
    report = watch_run(ASYNC, now=written + 3600)
    assert [(f.id, f.severity) for f in report.findings] == [("partial_ratio", "INFO")]
    skipped = {s["check"] for s in report.to_dict()["skipped"]}
    assert {"rollout_corr_kl_spike", "probs_pearson_low", "is_ess_collapse"} <= skipped
    assert report.exit_code == 0


def test_a_killed_relaunch_is_reported_stalled() -> None:
    # the relaunch into this run was killed before its first step and never recorded an end: run.json still says
    # running, so an hour later the run is rightly reported stalled
    written = read_run(KILLED).last_write
    stalled = [f for f in watch_run(KILLED, now=written + 3600).findings if f.id == "stalled"]
    assert stalled and stalled[0].severity == "CRIT" and stalled[0].first_step == 3


def test_each_attempts_warm_up_step_is_left_out_of_time_readings() -> None:
    stream = read_run(SYNC)
    steps, seconds = stream.series(STEP_TIME[0])
    assert steps.tolist() == [1, 2, 3, 4, 5]
    # the first step of each attempt (1, and 4 after the relaunch) pays for vLLM's and the kernels' warm-up
    assert min(seconds[0], seconds[3]) > 5 * max(seconds[1], seconds[2], seconds[4])
    assert stream.settled(STEP_TIME[0])[0].tolist() == [2, 3, 5]


@pytest.mark.parametrize("run_dir", ALL, ids=lambda p: p.name)
def test_advise_on_real_streams(run_dir: Path) -> None:
    rows = {a.id: a for a in advise(run_dir)}
    # a 3+2-step smoke leaves at most 3 settled steps: no verdict on buying rollout capacity
    bound = rows["rollout_bound"]
    assert bound.verdict == "cannot judge" and "advise.min_settled_steps" in bound.evidence
    # a random model writes to the end of a 64-token window: lengthen it, do not jump to 3 nodes and 131k
    window = rows["long_window"]
    assert window.verdict == "stay" and window.overrides == ["window.response=128"]
    assert "topology=3node" not in (window.command or "")
    assert rows["moe_cofit"].verdict == "stay"


def test_the_untied_model_trained_on_the_unfused_path_and_the_launch_recorded_the_real_gpu() -> None:
    # the plan turned the fused kernels off for the untied model (liverl/recipe/fused_kernels.py) and verl ran it:
    # 5 steps, resumed; the per-node probe replaced the planned h200 by the H100 it found (run.json gpu)
    verl = (UNTIED / "verl.yaml").read_text()
    assert "use_fused_kernels: true" not in verl and "use_fused_kernels: false" in verl
    assert "fused log-prob kernels: off (untied embeddings" in (UNTIED / "summary.txt").read_text()
    gpu = json.loads((UNTIED / "run.json").read_text())["gpu"]
    assert gpu["source"] == "probe" and gpu["planned"] == "h200" and gpu["name"] == "h100"
    assert 79 * 2**30 < gpu["memory_bytes"] < 80 * 2**30
    assert read_run(UNTIED).steps.tolist()[-1] == 5
