"""verl.source: compose from a new-verl checkout (USE_NEW_VERL=1, NEW_VERL_DIR) and run with it first on PYTHONPATH.

The checkout is a fixture made from the installed verl plus the new-verl schema keys (algorithm.trajectory_filter).
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from conftest import run_cli
from omegaconf import OmegaConf

from liverl.errors import ConfigError
from liverl.recipe.build import build
from liverl.recipe.compose import compose_liverl


def build_with(monkeypatch: pytest.MonkeyPatch, checkout: Path | None, *overrides: str):
    if checkout is None:
        monkeypatch.delenv("USE_NEW_VERL", raising=False)
    else:
        monkeypatch.setenv("USE_NEW_VERL", "1")
        monkeypatch.setenv("NEW_VERL_DIR", str(checkout))
    return build(compose_liverl(list(overrides)))


def test_trajectory_filter_is_on_by_default_under_a_verl_that_has_it(monkeypatch, new_verl_checkout: Path) -> None:
    b = build_with(monkeypatch, new_verl_checkout, "topology=3node")
    assert b.source.checkout == new_verl_checkout.resolve()
    assert b.source.version == "0.9.1+new-verl-fixture"
    tf = b.verl.algorithm.trajectory_filter
    assert tf.enable is True and list(tf.drop_reasons) == ["timeout", "env_setup_failed"]
    assert tf.filter_overlong is False  # the rest of the checkout's schema is kept
    assert any("trajectory filter: on" in n for n in b.notes)


def test_liverls_filter_runs_on_the_installed_verl_in_fully_async(monkeypatch) -> None:
    b = build_with(monkeypatch, None, "topology=3node")
    assert "trajectory_filter" not in b.verl.algorithm and b.verl.algorithm.adv_estimator == "liverl_grpo_filtered"
    # no v1 sampler there: the estimator writes the filter's metrics to RUN_DIR/liverl_metrics.jsonl
    assert any("trajectory filter: on" in n and "liverl_metrics.jsonl" in n for n in b.notes)


def test_liverls_filter_runs_on_the_installed_verl_in_sync_mode(monkeypatch) -> None:
    b = build_with(monkeypatch, None, "topology=1node")
    assert "trajectory_filter" not in b.verl.algorithm
    # verl's extension points (liverl/scaffold/traj_filter.py): a registered estimator, a custom v1 sampler
    assert b.verl.algorithm.adv_estimator == "liverl_grpo_filtered"
    assert b.verl.trainer.v1.sampler.custom_sampler.path == "pkg://liverl.scaffold.traj_filter"
    assert b.verl.trainer.v1.sampler.sampler_kwargs.train_batch_size == b.verl.data.train_batch_size
    assert any("trajectory filter: on (LiveRL's" in n for n in b.notes)
    b = build_with(monkeypatch, None, "topology=1node", "trajectory_filter.enable=false")
    assert b.verl.algorithm.adv_estimator == "grpo"


def test_liverls_filter_is_off_for_a_loop_that_reports_no_termination_reasons(monkeypatch) -> None:
    b = build_with(monkeypatch, None, "topology=1node", "scaffold=single_turn")
    assert b.verl.algorithm.adv_estimator == "grpo" and b.verl.trainer.v1.sampler.custom_sampler.path is None
    assert any("trajectory filter: off" in n and "single_turn_agent" in n for n in b.notes)
    with pytest.raises(ConfigError, match=r"trajectory_filter\.enable: .*reports no termination reasons"):
        build_with(monkeypatch, None, "topology=1node", "scaffold=single_turn", "trajectory_filter.enable=true")


def test_drop_reasons_and_disable_follow_the_user(monkeypatch, new_verl_checkout: Path) -> None:
    b = build_with(monkeypatch, new_verl_checkout, "trajectory_filter.drop_reasons=[timeout]")
    assert list(b.verl.algorithm.trajectory_filter.drop_reasons) == ["timeout"]
    b = build_with(monkeypatch, new_verl_checkout, "trajectory_filter.enable=false")
    assert b.verl.algorithm.trajectory_filter.enable is False


def test_config_is_composed_from_the_checkout_not_the_installed_verl(
    monkeypatch, new_verl_checkout: Path, tmp_path: Path
) -> None:
    # a key that only the checkout has must be settable; the installed verl rejects it
    b = build_with(monkeypatch, new_verl_checkout, "verl.algorithm.trajectory_filter.filter_overlong=true")
    assert b.verl.algorithm.trajectory_filter.filter_overlong is True
    with pytest.raises(ConfigError) as err:
        build_with(monkeypatch, None, "verl.algorithm.trajectory_filter.filter_overlong=true")
    assert err.value.problems[0].key == "verl.algorithm.trajectory_filter.filter_overlong"


def test_plan_puts_the_checkout_first_on_pythonpath_and_in_rays_runtime_env(
    new_verl_checkout: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    proc = run_cli(
        ["topology=2node", "launcher=dryrun", f"hydra.run.dir={run_dir}"],
        cwd=tmp_path,
        env={"USE_NEW_VERL": "1", "NEW_VERL_DIR": str(new_verl_checkout)},
    )
    assert proc.returncode == 0, proc.stderr
    env = json.loads((run_dir / "env.json").read_text())
    assert env["PYTHONPATH"].split(":")[0] == str(new_verl_checkout.resolve())
    verl_cfg = OmegaConf.load(run_dir / "verl.yaml")
    assert verl_cfg.ray_kwargs.ray_init.runtime_env.env_vars.PYTHONPATH.split(":")[0] == str(
        new_verl_checkout.resolve()
    )
    assert verl_cfg.algorithm.trajectory_filter.enable is True
    command = shlex.split((run_dir / "command.sh").read_text().split("set -euo pipefail\n")[1].replace("\\\n", " "))
    assert f"PYTHONPATH={new_verl_checkout.resolve()}" in [c.split(":")[0] for c in command]
    assert "0.9.1+new-verl-fixture" in (run_dir / "summary.txt").read_text()


@pytest.mark.parametrize(
    "env,key,words",
    [
        ({"USE_NEW_VERL": "1"}, "NEW_VERL_DIR", "NEW_VERL_DIR is not set"),
        ({"USE_NEW_VERL": "1", "NEW_VERL_DIR": "/nonexistent/verl"}, "NEW_VERL_DIR", "is not a verl checkout"),
    ],
)
def test_a_missing_new_verl_is_a_config_error(tmp_path: Path, env, key, words) -> None:
    proc = run_cli(["launcher=dryrun", f"hydra.run.dir={tmp_path}/run"], cwd=tmp_path, env={"NEW_VERL_DIR": "", **env})
    assert proc.returncode == 2 and f"{key}:" in proc.stderr and words in proc.stderr, proc.stderr


# each capability of the new verl, probed on the checkout (liverl.recipe.verl_source.CODE_CAPABILITIES)
CAPABILITIES = ("veomni_router_replay", "veomni_r3_worker", "async_routed_experts_concat")


def test_the_full_fixture_checkout_is_the_new_verl(monkeypatch, new_verl_checkout: Path) -> None:
    b = build_with(monkeypatch, new_verl_checkout, "topology=3node")  # qwen35 (MoE) on veomni with R3
    assert all(b.features[c] for c in CAPABILITIES)
    assert not [f for f in b.findings if f.rule in ("moe-new-verl", "router-replay-unvalidated")]


@pytest.mark.parametrize("capability", CAPABILITIES)
def test_a_checkout_lacking_a_capability_is_not_the_new_verl(monkeypatch, new_verl_without, capability: str) -> None:
    from liverl.guardrails.verl_keys import NEW_VERL_CAPABILITIES

    checkout = new_verl_without(capability)
    # the schema key missing: R3 itself cannot be set (new-verl-feature); with replay off the MoE rule names it
    extra = ("router_replay=disabled",) if capability == "veomni_router_replay" else ()
    b = build_with(monkeypatch, checkout, "topology=3node", *extra)
    assert b.features[capability] is False
    assert all(b.features[c] for c in CAPABILITIES if c != capability)
    moe = [f for f in b.findings if f.rule == "moe-new-verl"]
    assert moe and moe[0].severity == "WARN" and "is not the new verl" in moe[0].message
    assert NEW_VERL_CAPABILITIES[capability] in moe[0].message
    with pytest.raises(ConfigError) as refused:
        build(compose_liverl(["topology=3node", *extra]), launching=True)
    assert "[moe-new-verl]" in str(refused.value) and NEW_VERL_CAPABILITIES[capability] in str(refused.value)
    if capability == "veomni_router_replay":
        with pytest.raises(ConfigError, match=r"router_replay: VeOmni router replay R3 was asked for"):
            build_with(monkeypatch, checkout, "topology=3node")
