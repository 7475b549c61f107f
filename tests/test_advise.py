"""liverl.advise: the "When to scale" table applied to a run's config and metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from watch_streams import healthy_config, write_run

from liverl import advise
from liverl.health.advice import Advice
from liverl.health.analysis import load_thresholds
from liverl.launch.dispatch import plan_and_launch
from liverl.recipe.compose import compose_liverl

ONE_NODE = {"topology__name": "1node", "topology__mode": "sync", "topology__trainer_nnodes": 1,
            "topology__rollout_nnodes": 0, "engine__name": "fsdp"}
SYNC_DROP = ("fully_async/",)


def _rows(run: Path) -> dict[str, Advice]:
    return {a.id: a for a in advise.advise(run)}


def test_healthy_two_node_run_needs_no_scaling(tmp_path: Path) -> None:
    rows = _rows(write_run(tmp_path, 40, config=healthy_config()))
    assert {k: a.verdict for k, a in rows.items()} == {
        "moe_cofit": "already", "rollout_bound": "already", "long_window": "stay", "scaffold": "stay"}
    assert all(a.command is None for k, a in rows.items() if k != "scaffold")
    # the page's fourth row is a choice, not a metric: its how-to, and the validated alternative as a command
    how = rows["scaffold"]
    assert "HARBOR_AGENT_IMPORT_PATH=pkg.module:AgentClass" in how.evidence and "scaffold=ohsdk" in how.evidence
    assert how.overrides == ["scaffold=ohsdk"]


H200 = {"gpu__memory_gb": 141}  # the GPU as the plan records it (liverl/health/run_end.py reads gpu.memory_gb)


def test_moe_that_does_not_cofit_moves_to_veomni_and_a_rollout_node(tmp_path: Path) -> None:
    run = write_run(tmp_path, 40, {"memory_full": 10}, config=healthy_config(**ONE_NODE, **H200), drop=SYNC_DROP)
    row = _rows(run)["moe_cofit"]
    peak = re.search(r"= (\d+) GB of 141 GB per GPU \(liverl.yaml gpu.memory_gb\)", row.evidence)
    assert row.verdict == "scale" and peak and int(peak.group(1)) >= 0.9 * 141
    assert row.overrides == ["engine=veomni", "topology=2node"]
    # no checkout in this run (no run.json verl_source): no new-verl environment is invented
    assert row.command == ("python -m liverl.train model=qwen35 scaffold=claude_code batch=official "
                           "engine=veomni topology=2node")


def test_moe_memory_is_never_judged_on_an_assumed_gpu(tmp_path: Path) -> None:
    run = write_run(tmp_path, 40, {"memory_full": 10}, config=healthy_config(**ONE_NODE), drop=SYNC_DROP)
    row = _rows(run)["moe_cofit"]
    assert row.verdict == "cannot judge" and "GPU's memory is unknown" in row.evidence
    h100 = advise.advise(run, load_thresholds(sets=["advise.gpu_memory_gb=80"]))[0]
    assert h100.verdict == "scale" and "of 80 GB per GPU (advise.gpu_memory_gb)" in h100.evidence


def test_moe_that_fits_or_cannot_be_measured(tmp_path: Path) -> None:
    fits = _rows(write_run(tmp_path / "fits", 40, config=healthy_config(**ONE_NODE, **H200),
                           drop=SYNC_DROP))["moe_cofit"]
    assert fits.verdict == "stay" and "MoE fits" in fits.evidence
    blind = _rows(write_run(tmp_path / "blind", 40, config=healthy_config(**ONE_NODE, **H200),
                            drop=(*SYNC_DROP, "actor/perf/")))["moe_cofit"]
    assert blind.verdict == "cannot judge" and "actor/perf/max_memory_reserved_gb" in blind.evidence
    assert blind.overrides == ["engine=veomni", "topology=2node"]
    dense = _rows(write_run(tmp_path / "dense", 40, {"memory_full": 1},
                            config=healthy_config(**ONE_NODE, model__moe=False)))["moe_cofit"]
    assert dense.verdict == "stay" and "dense" in dense.evidence


@pytest.mark.parametrize(("faults", "verdict"), [({"gen_bound": 5}, "scale"), ({}, "stay")])
def test_sync_run_waiting_on_rollouts_goes_fully_async(tmp_path: Path, faults: dict, verdict: str) -> None:
    row = _rows(write_run(tmp_path, 40, faults, config=healthy_config(**ONE_NODE), drop=SYNC_DROP))["rollout_bound"]
    assert row.verdict == verdict
    assert row.overrides == (["topology=2node"] if verdict == "scale" else [])
    assert ("80%" in row.evidence) == (verdict == "scale")


def test_async_run_still_rollout_bound_raises_concurrency(tmp_path: Path) -> None:
    # verl's default 16 per replica x 2 replicas (TP 4 on 8 GPUs) = 32 in flight < the 128 the queue admits
    config = healthy_config(staleness_threshold=1, trigger_parameter_sync_step=1, model__rollout_tp=4)
    config["verl"] = {"async_training": {"concurrent_samples_per_replica": 16}}
    row = _rows(write_run(tmp_path, 40, {"idle_high": 1}, config=config))["rollout_bound"]
    assert row.verdict == "scale"
    assert row.overrides == ["verl.async_training.concurrent_samples_per_replica=64"]
    assert "num_workers" not in " ".join(row.overrides)
    idle = re.search(r"idle_ratio = ([\d.]+) > 0.5", row.evidence)
    assert idle and 0.7 < float(idle.group(1)) < 0.9


def test_async_run_whose_queue_is_the_cap_adds_rollout_capacity(tmp_path: Path) -> None:
    # the page: high idle_ratio -> more concurrency or rollout capacity; staleness is a trade-off, stated
    config = healthy_config(staleness_threshold=1, trigger_parameter_sync_step=1, model__rollout_tp=4)
    config["verl"] = {"async_training": {"concurrent_samples_per_replica": 64}}  # already fills the queue
    row = _rows(write_run(tmp_path, 40, {"idle_high": 1}, config=config))["rollout_bound"]
    assert row.overrides == ["topology.rollout_nnodes=2", "topology.nnodes=3"]
    assert "staleness_threshold" not in " ".join(row.overrides) and "a trade-off, not the first lever" in row.evidence


def test_window_toward_131k(tmp_path: Path) -> None:
    long = healthy_config(window__prompt=40000, window__response=91072)
    row = _rows(write_run(tmp_path / "long", 20, config=long))["long_window"]
    assert (row.verdict, row.overrides) == ("scale", ["topology=3node"]) and "131072" in row.evidence
    three = healthy_config(window__prompt=40000, window__response=91072, topology__name="3node",
                           topology__trainer_nnodes=2)
    assert _rows(write_run(tmp_path / "three", 20, config=three))["long_window"].verdict == "already"
    clipped = _rows(write_run(tmp_path / "clip", 20, {"clip_high": 1}, config=healthy_config()))["long_window"]
    assert clipped.verdict == "scale" and "clip_ratio = 0.30" in clipped.evidence
    assert clipped.overrides == ["topology=3node", "window.prompt=40000", "window.response=91072"]


@pytest.mark.parametrize(("scaffold", "verdict"), [("claude_code", "fix first"), ("ohsdk", "already")])
def test_env_setup_failures_point_at_the_scaffold(tmp_path: Path, scaffold: str, verdict: str) -> None:
    run = write_run(tmp_path, 40, {"env_setup_failed": 10}, config=healthy_config(scaffold__name=scaffold))
    row = _rows(run)["scaffold"]
    assert row.verdict == verdict and "env_setup_failed is" in row.evidence
    if scaffold == "claude_code":  # the agent's install in the image comes first, another harness after it
        assert row.evidence.index("agent's install in the task image") < row.evidence.index("scaffold=ohsdk")
    assert row.overrides == (["scaffold=ohsdk"] if scaffold == "claude_code" else [])


def test_metrics_only_run_says_what_it_could_not_judge(tmp_path: Path) -> None:
    rows = _rows(write_run(tmp_path, 20))
    assert rows["moe_cofit"].verdict == "cannot judge" and "no liverl.yaml" in rows["moe_cofit"].evidence
    assert rows["rollout_bound"].verdict == "already"  # idle_ratio logged: a fully-async run
    assert "scaffold=unknown" in rows["scaffold"].evidence


def test_config_only_run(tmp_path: Path) -> None:
    import yaml

    (tmp_path / "liverl.yaml").write_text(yaml.safe_dump(healthy_config(**ONE_NODE)))
    rows = _rows(tmp_path)
    assert rows["rollout_bound"].verdict == "cannot judge" and "timing_s/gen" in rows["rollout_bound"].evidence


def test_unresolved_config_interpolations_are_tolerated(tmp_path: Path) -> None:
    (tmp_path / "liverl.yaml").write_text(
        "mode:\n  name: fully_async\ntopology:\n  name: 2node\n  mode: ${mode.name}\n"
        "fsdp_size: ${liverl.mul:1,8}\nrun_dir: ${hydra:runtime.output_dir}\n")
    row = _rows(tmp_path)["rollout_bound"]
    assert row.verdict == "cannot judge" and row.evidence.startswith("fully async")  # ${mode.name} resolved


def test_cli_json_table_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = write_run(tmp_path / "run", 40, config=healthy_config())
    assert advise.main([str(run), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in rows] == ["moe_cofit", "rollout_bound", "long_window", "scaffold"]
    assert advise.main([str(run)]) == 0
    assert "Stay on the current path" in capsys.readouterr().out
    assert advise.main([str(run), "--set", "advise.long_window=80000"]) == 0
    out = capsys.readouterr().out
    assert "python -m liverl.train model=qwen35 engine=veomni scaffold=claude_code batch=official topology=3node" in out
    assert advise.main([str(tmp_path / "missing")]) == 2
    (tmp_path / "empty").mkdir()
    assert advise.main([str(tmp_path / "empty")]) == 2
    assert "neither liverl.yaml nor a metric stream" in capsys.readouterr().err


def _plan(run_dir: Path, *overrides: str) -> Path:
    assert plan_and_launch(compose_liverl([*overrides, "launcher=dryrun"], run_dir=run_dir), run_dir) == 0
    return run_dir


def test_cofit_row_uses_the_memory_model_when_no_memory_metric(tmp_path: Path) -> None:
    # a planned (not run) sync MoE: no metric, so the prediction decides; over its GPU it is waived to be planned
    over = _plan(tmp_path / "over", "model=qwen3_30b_a3b", "engine=fsdp",
                 "verl.actor_rollout_ref.model.use_fused_kernels=false",
                 "verl.actor_rollout_ref.actor.entropy_from_logits_with_chunking=false",
                 "window.prompt=40000", "window.response=91072", "liverl.allow=[memory-fit]")
    memory = advise.predicted_memory(over, 150)
    assert memory is not None and not memory["trainer"]["fits"]
    h200 = load_thresholds(sets=["advise.gpu_memory_gb=150"])
    row = {a.id: a for a in advise.advise(over, h200)}["moe_cofit"]
    assert row.verdict == "scale" and "predicted trainer GPU peak" in row.evidence
    assert row.overrides == ["engine=veomni", "topology=2node"]
    fits = _plan(tmp_path / "fits", "model=qwen3_30b_a3b", "engine=fsdp", "window.prompt=2048", "window.response=2048")
    row = {a.id: a for a in advise.advise(fits, h200)}["moe_cofit"]
    assert row.verdict == "stay" and row.evidence.startswith("MoE predicted to fit")


def test_a_carried_key_gets_hydras_plus_where_the_composed_tree_is_closed() -> None:
    # asked of the composed tree, not of the key's name: LiveRL's groups are struct (a key they lack needs `+`),
    # verl's subtree is open (a new verl key composes without it)
    base = advise.compose_liverl([], run_dir="/tmp/run")
    assert advise._closed(base, "scaffold.harbor.agent_path_prepend")
    assert advise._closed(base, "brand_new_top_level_key")
    assert not advise._closed(base, "verl.actor_rollout_ref.rollout.some_new_knob")
    assert not advise._closed(base, "verl.new_subtree.deeper.knob")
