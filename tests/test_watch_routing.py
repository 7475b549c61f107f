"""Routing coverage under multi-turn replay (the page's failure mode): a watch check where verl logs what it needs
(rollout/moe/routed_experts_found, verl's v1 sync trainer with rollout.moe_load_balance_metrics_interval > 0, which
engine=veomni sets with R3), listed as skipped with that metric where verl does not log it (the fully-async trainer)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import built

from liverl.health.analysis import watch_run

KEY = "rollout/moe/routed_experts_found"


def _run(tmp_path: Path, found: list[float], replay: str) -> Path:
    lines = [json.dumps({"step": i + 1, "data": {KEY: v, "critic/score/mean": 0.3}}) for i, v in enumerate(found)]
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "liverl.yaml").write_text(yaml.safe_dump({"router_replay": replay, "model": {"moe": True},
                                                          "topology": {"mode": "sync"}}))
    return tmp_path


@pytest.mark.parametrize(("replay", "severity"), [("R3", "CRIT"), ("disabled", "WARN")])
def test_no_routes_to_replay_is_found(tmp_path: Path, replay: str, severity: str) -> None:
    report = watch_run(_run(tmp_path, [1.0, 1.0, 0.0, 0.0], replay))
    (f,) = [f for f in report.findings if f.id == "routing_coverage"]
    assert f.severity == severity and f.first_step == 3 and "healthy 1.0" in f.message
    assert ("nothing to replay" in f.message) == (replay == "R3")


def test_full_coverage_is_healthy(tmp_path: Path) -> None:
    report = watch_run(_run(tmp_path, [1.0] * 6, "R3"))
    assert not [f for f in report.findings if f.id == "routing_coverage"]
    assert "routing_coverage" not in {s.check for s in report.skipped}


def test_skipped_with_the_metric_it_needs_where_verl_does_not_log_it() -> None:
    report = watch_run(Path(__file__).parent / "fixtures" / "gpu_async_tiny", now=1e12)
    skipped = {s.check: s.needs for s in report.skipped}
    assert skipped["routing_coverage"] == [KEY]


def test_veomni_with_r3_turns_the_metric_on_in_sync_mode() -> None:
    # verl 0.9.1 reads the interval in its v1 trainer (trainer/ppo/v1/trainer_base.py:1882); 0 logs nothing
    assert built("topology=1node").verl.actor_rollout_ref.rollout.moe_load_balance_metrics_interval == 1
    assert built("topology=1node", "engine=fsdp").verl.actor_rollout_ref.rollout.moe_load_balance_metrics_interval == 0
