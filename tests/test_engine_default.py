"""The page's defaults and selections: engine follows the model, the agent import path selects its harness,
sp_size=1 for Qwen3.5 is fixed, a refused knob names the environment variable it came from."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import REPO, run_cli

from liverl.errors import ConfigError
from liverl.guardrails.framework import RULES
from liverl.recipe.compose import compose_liverl, group_options
from liverl.recipe.environ import arguments


def _compose(argv: list[str], environ: dict[str, str] | None = None):
    return compose_liverl(arguments(argv, environ or {}).args)


@pytest.mark.parametrize("model", group_options("model"))
def test_each_model_gets_the_engine_of_its_kind(model: str) -> None:
    # the page: MoE policies on VeOmni (R3), dense ones stay on FSDP; the model files' defaults agree with render
    from liverl.recipe.render import model_engine

    cfg = _compose([f"model={model}"])
    assert cfg.engine.name == ("veomni" if cfg.model.moe else "fsdp") == model_engine(cfg)
    assert _compose([f"model={model}", "engine=fsdp"]).engine.name == "fsdp"  # engine= given wins


def test_headline_command_plans_qwen35_on_veomni_and_says_why(tmp_path: Path) -> None:
    out = run_cli(["topology=3node", "batch=smoke", "launcher=dryrun", f"hydra.run.dir={tmp_path / 'a'}"], REPO)
    assert out.returncode == 0, out.stderr
    engine = next(line for line in out.stdout.splitlines() if line.strip().startswith("engine"))
    assert "veomni" in engine and "chosen for the model: qwen35 is MoE" in engine
    assert "router_replay=R3" in out.stdout
    # explicit engine=fsdp on an MoE stays a WARN (planned, not refused)
    fsdp = run_cli(["topology=3node", "batch=smoke", "engine=fsdp", "launcher=dryrun",
                    f"hydra.run.dir={tmp_path / 'b'}"], REPO)
    assert fsdp.returncode == 0, fsdp.stderr
    assert "asked for" in fsdp.stdout and "warn        [router-replay-policy] engine: MoE policy on FSDP" in fsdp.stdout


def test_import_path_alone_selects_that_class() -> None:
    cls = "liverl.scaffold.harbor_agents:MountedOpenHandsSDK"
    for how in ({"environ": {"HARBOR_AGENT_IMPORT_PATH": cls}, "argv": []},
                {"environ": {}, "argv": [f"scaffold.harbor.agent_import_path={cls}"]}):
        args = arguments(how["argv"], how["environ"])
        cfg = compose_liverl(args.args)
        assert cfg.scaffold.harbor.agent_name is None and cfg.scaffold.harbor.agent_import_path == cls
        assert any("HARBOR_AGENT_NAME=null" in n for n in args.notes)
    # the page's own ohsdk line (name null + path) is not "both given"
    both_null = _compose([], {"HARBOR_AGENT_NAME": "null", "HARBOR_AGENT_IMPORT_PATH": cls})
    assert both_null.scaffold.harbor.agent_name is None


def test_import_path_alone_plan_says_which_class_runs(tmp_path: Path) -> None:
    cls = "liverl.scaffold.harbor_agents:MountedOpenHandsSDK"
    out = run_cli(["launcher=dryrun", f"hydra.run.dir={tmp_path}"], REPO, env={"HARBOR_AGENT_IMPORT_PATH": cls})
    assert out.returncode == 0, out.stderr
    assert f"Harbor runs the import-path class {cls}" in out.stdout and "HARBOR_AGENT_NAME=null" in out.stdout


@pytest.mark.parametrize("name_arg", ["env", "cli"])
def test_name_and_import_path_both_given_is_exit_2_naming_both(tmp_path: Path, name_arg: str) -> None:
    cls = "liverl.scaffold.harbor_agents:MountedOpenHandsSDK"
    env = {"HARBOR_AGENT_IMPORT_PATH": cls}
    argv = ["launcher=dryrun", f"hydra.run.dir={tmp_path}"]
    if name_arg == "env":
        env["HARBOR_AGENT_NAME"] = "claude-code"
    else:
        argv.append("scaffold.harbor.agent_name=claude-code")
    out = run_cli(argv, REPO, env=env)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    named = "HARBOR_AGENT_NAME" if name_arg == "env" else "scaffold.harbor.agent_name"
    assert f"both an agent name ({named}) and an import path (HARBOR_AGENT_IMPORT_PATH)" in out.stderr


def test_sp_size_for_qwen35_cannot_be_waived() -> None:
    from liverl.recipe.build import build

    with pytest.raises(ConfigError) as exc:
        build(compose_liverl(["sp_size=2", "liverl.allow=[linear-attention-sp]"]))
    text = str(exc.value)
    assert "[config] liverl.allow: rule 'linear-attention-sp' cannot be waived" in text
    assert "linear-attention-sp" in RULES  # the id is real, it is refused for being fixed
    # other FATALs stay waivable
    build(compose_liverl(["model=qwen25_0p5b", "liverl.allow=[moe-new-verl]"]))


def test_a_refused_knob_names_its_environment_variable(tmp_path: Path) -> None:
    # single_turn's loop reports no termination reasons, so a filter asked for there is refused (filter_plan.py)
    out = run_cli(["scaffold=single_turn", "launcher=dryrun", f"hydra.run.dir={tmp_path}"], REPO,
                  env={"TRAJ_FILTER_ENABLE": "True"})
    assert out.returncode == 2
    line = next(ln for ln in out.stderr.splitlines() if "[new-verl-feature]" in ln)
    assert "$TRAJ_FILTER_ENABLE" in line
