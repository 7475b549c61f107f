"""Write the plan: a run directory holding everything needed to see, reproduce and run the training."""

from __future__ import annotations

import json
import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from liverl.errors import ConfigError
from liverl.guardrails import to_json
from liverl.recipe.build import Build, Override
from liverl.recipe.filter_plan import filter_env
from liverl.recipe.render import agent_loop_config, summary, verl_command
from liverl.rundir import (
    AGENT_LOOP_YAML,
    CHECKS_JSON,
    COMMAND_SH,
    ENV_JSON,
    ERRORS_TXT,
    LIVERL_YAML,
    RUNTIME_ENV_VARS,
    SUMMARY_TXT,
    VERL_YAML,
    Plan,
    set_status,
)
from liverl.secrets import redact


def plan_env(b: Build, run_dir: Path) -> dict[str, str]:
    """Environment variables the run needs, in the order they are applied."""
    h = b.liverl.scaffold.harbor
    env = {
        "VERL_FILE_LOGGER_PATH": str(run_dir / "metrics.jsonl"),
        "WANDB_DIR": str(run_dir),
        # wandb is on when configured (an API key or an explicit WANDB_MODE), offline otherwise
        "WANDB_MODE": os.environ.get("WANDB_MODE") or ("online" if os.environ.get("WANDB_API_KEY") else "offline"),
        "HARBOR_AGENT_NAME": "null" if h.agent_name is None else str(h.agent_name),
        "HARBOR_AGENT_IMPORT_PATH": str(h.agent_import_path),
        "HARBOR_TELEMETRY": "0",
        "TOKENIZERS_PARALLELISM": "false",
        # LiveRL's trajectory filter: verl imports its registrations in every process (filter_plan.filter_env)
        **filter_env(b.liverl, b.verl, run_dir),
    }
    if b.source.pythonpath():
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [b.source.pythonpath(), os.environ.get("PYTHONPATH")]))
    return env


def gpus_needed(v: DictConfig, mode: str) -> dict[str, int]:
    """GPUs per pool the plan needs: {'nodes', 'gpus_per_node', 'total'}."""
    nodes = v.trainer.nnodes + (v.rollout.nnodes if mode == "fully_async" else 0)
    per_node = v.trainer.n_gpus_per_node
    return {"nodes": nodes, "gpus_per_node": per_node, "total": nodes * per_node}


def write_plan(b: Build, run_dir: Path) -> Plan:
    """Write the run directory; run.json (status `planned`) is written last, so a partial plan never claims success."""
    run_dir.mkdir(parents=True, exist_ok=True)
    env = plan_env(b, run_dir)
    # Ray workers on a cluster do not inherit the driver's environment: verl's ray.init passes this runtime env
    # (the same verl on PYTHONPATH, the metrics file, the Harbor agent settings); secrets are never in it
    runtime_env = Override(RUNTIME_ENV_VARS, redact(env), added=True)
    OmegaConf.update(b.verl, runtime_env.key, runtime_env.value, merge=True, force_add=True)
    b.overrides.append(runtime_env)
    OmegaConf.save(b.liverl, run_dir / LIVERL_YAML, resolve=True)
    OmegaConf.save(b.verl, run_dir / VERL_YAML, resolve=True)
    OmegaConf.save(OmegaConf.create(agent_loop_config(b.liverl, b.verl)), run_dir / AGENT_LOOP_YAML)
    (run_dir / ENV_JSON).write_text(json.dumps(redact(env), indent=2) + "\n")
    cmd = run_dir / COMMAND_SH
    cmd.write_text(verl_command(b, redact(env)))
    cmd.chmod(0o755)
    (run_dir / CHECKS_JSON).write_text(json.dumps(to_json(b.findings), indent=2) + "\n")
    text = summary(b, env)
    (run_dir / SUMMARY_TXT).write_text(text)
    c = b.liverl
    gpus = gpus_needed(b.verl, c.mode.name)
    set_status(
        run_dir,
        "planned",
        recipe=c.mode.recipe,
        verl_entrypoint=c.mode.verl_entrypoint,
        launcher=c.launcher.name,
        gpus=gpus,
        verl_source=b.source.label,
        verl_version=b.source.version,
        waived=sorted({f.rule for f in b.findings if f.severity == "WAIVED"}),
        # the GPU memory-fit judged against (liverl.rundir.recorded_gpu); a launch replaces it by the probed one
        gpu={"name": c.gpu.name, "device": c.gpu.device, "memory_bytes": int(c.gpu.memory_bytes), "source": "plan"},
    )
    return Plan(run_dir, c.mode.recipe, c.mode.verl_entrypoint, gpus)


def write_config_error(run_dir: Path, error: ConfigError) -> None:
    """A failed plan: the errors, and run.json saying so (no verl.yaml, nothing that looks runnable)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in (VERL_YAML, COMMAND_SH, SUMMARY_TXT):
        (run_dir / name).unlink(missing_ok=True)
    (run_dir / ERRORS_TXT).write_text(str(error) + "\n")
    (run_dir / CHECKS_JSON).write_text(json.dumps(to_json([*error.problems, *error.findings]), indent=2) + "\n")
    set_status(run_dir, "config_error")
