"""Write the plan: a run directory holding everything needed to see, reproduce and run the training."""

from __future__ import annotations

import json
import os
import re
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from liverl.build import Build, Override
from liverl.check import SP_KEYS, batch_shape, to_json
from liverl.errors import ConfigError
from liverl.secrets import env_scrubber, redact

RUNTIME_ENV_VARS = "ray_kwargs.ray_init.runtime_env.env_vars"

# the files of a plan, relative to the run directory
LIVERL_YAML = "liverl.yaml"
VERL_YAML = "verl.yaml"
AGENT_LOOP_YAML = "agent_loop.yaml"
COMMAND_SH = "command.sh"
ENV_JSON = "env.json"
SUMMARY_TXT = "summary.txt"
CHECKS_JSON = "checks.json"
RUN_JSON = "run.json"
ERRORS_TXT = "errors.txt"


@dataclass(frozen=True)
class Plan:
    run_dir: Path
    recipe: str
    entrypoint: str
    gpus: dict[str, int]

    @classmethod
    def load(cls, run_dir: str | os.PathLike) -> Plan:
        run = json.loads((Path(run_dir) / RUN_JSON).read_text())
        return cls(Path(run_dir), run["recipe"], run["verl_entrypoint"], run["gpus"])

    def verl_config(self) -> DictConfig:
        return OmegaConf.load(self.run_dir / VERL_YAML)

    def env(self) -> dict[str, str]:
        """The environment the plan sets (secrets are never stored; they come from the caller's env)."""
        return json.loads((self.run_dir / ENV_JSON).read_text())


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
    }
    if b.source.pythonpath():
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [b.source.pythonpath(), os.environ.get("PYTHONPATH")]))
    return env


def hydra_value(value: Any) -> str:
    """A value written in Hydra's override grammar."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{hydra_value(v)}" for k, v in value.items()) + "}"
    text = str(value)
    if re.fullmatch(r"[A-Za-z_/.\-][\w/.\-]*", text) and text.lower() not in ("null", "true", "false", "none"):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def verl_command(b: Build, env: dict[str, str]) -> str:
    """An equivalent `python -m verl...` command (verl's own Hydra main) a user could paste."""
    mode = b.liverl.mode
    args = [f"{k}={v}" for k, v in _group_choices(b).items()]
    args += [("+" if o.added else "") + f"{o.key}={hydra_value(o.value)}" for o in b.overrides]
    if b.source.checkout:
        args.insert(0, f"--config-path={b.source.package_dir / mode.verl_config_dir}")
    lines = [f"{k}={shlex.quote(v)}" for k, v in env.items()]
    lines.append(f"python -m {mode.verl_entrypoint}")
    lines += [shlex.quote(a) for a in args]
    return (
        "#!/usr/bin/env bash\n# The verl run this plan resolves to, as verl's own command line.\n"
        "# Secrets (WANDB_API_KEY, ANTHROPIC_API_KEY, HF_TOKEN, ...) are read from your environment.\n"
        "set -euo pipefail\n" + " \\\n  ".join(lines) + "\n"
    )


def _group_choices(b: Build) -> dict[str, str]:
    return {k: str(v) for k, v in b.liverl.verl.items() if k in b.source.groups and isinstance(v, str)}


def agent_loop_config(cfg: DictConfig) -> list[dict[str, Any]]:
    """verl's agent-loop registry file: one entry for the scaffold's Harbor loop."""
    s = cfg.scaffold
    return [
        {
            "name": s.agent_loop.name,
            "_target_": s.agent_loop.target,
            "scaffold": s.name,
            "tool_call_parser": cfg.model.tool_call_parser[s.name],
            "harbor": OmegaConf.to_container(s.harbor, resolve=True),
        }
    ]


def summary(b: Build, env: dict[str, str]) -> str:
    """A short human summary: pools, sizes, batch, window, knobs, what was decided."""
    c, v = b.liverl, b.verl
    prompts, n = batch_shape(v, c.mode.name)
    lines = [
        f"LiveRL plan: {c.experiment_name}",
        f"  mode        {c.mode.name} -> python -m {c.mode.verl_entrypoint} (recipe {c.mode.recipe})",
        f"  verl        {b.source.version} ({b.source.label})",
        f"  trainer     {v.trainer.nnodes} node(s) x {v.trainer.n_gpus_per_node} GPUs"
        + (" (colocated with vLLM, hybrid engine)" if v.actor_rollout_ref.hybrid_engine else ""),
    ]
    if c.mode.name == "fully_async":
        lines.append(f"  rollout     {v.rollout.nnodes} node(s) x {v.rollout.n_gpus_per_node} GPUs (standalone vLLM)")
    engine = v.actor_rollout_ref.actor.strategy
    fsdp = (
        v.actor_rollout_ref.actor.veomni.fsdp_size
        if engine == "veomni"
        else v.actor_rollout_ref.actor.fsdp_config.fsdp_size
    )
    sp = sorted({OmegaConf.select(v, k) for k in SP_KEYS if OmegaConf.select(v, k) is not None})
    offload = c.topology
    lines += [
        f"  engine      {c.engine.name} ({engine}); fsdp_size={fsdp}; sp={','.join(map(str, sp))}; "
        f"rollout tp={v.actor_rollout_ref.rollout.tensor_model_parallel_size}; "
        f"offload param={offload.param_offload} optimizer={offload.optimizer_offload}",
        f"  model       {c.model.name} ({c.model.path})",
        f"  batch       {c.batch.name}: {prompts} prompts x {n} responses = {prompts * n} trajectories/step, "
        f"{c.total_training_steps} steps",
        f"  window      {v.data.max_prompt_length} prompt + {v.data.max_response_length} response tokens",
        f"  scaffold    {c.scaffold.name}: HARBOR_AGENT_NAME={env['HARBOR_AGENT_NAME']} "
        f"HARBOR_AGENT_IMPORT_PATH={env['HARBOR_AGENT_IMPORT_PATH']}; tool parser "
        f"{v.actor_rollout_ref.rollout.engine_kwargs.vllm.get('tool-call-parser')}",
    ]
    knob_names = (
        "staleness_threshold",
        "partial_rollout",
        "trigger_parameter_sync_step",
        "require_batches",
        "rollout_is",
        "router_replay",
        "sp_size",
        "fsdp_size",
    )
    knob_text = " ".join(f"{k}={hydra_value(c[k])}" for k in knob_names if c[k] is not None or k == "rollout_is")
    lines.append(f"  knobs       {knob_text}")
    from_env = c.liverl.get("from_env") or {}
    if from_env:  # liverl.environ: the documented variables this plan took its values from
        taken = [f"{knob}={hydra_value(OmegaConf.select(c, str(knob)))} (${var})" for var, knob in from_env.items()]
        lines.append(f"  environment {', '.join(taken)}")
    lines += [f"  note        {note}" for note in b.notes]
    lines += [f"  {f.severity.lower():11} [{f.rule}] {f.key}: {f.message}" for f in b.findings if f.severity != "SKIP"]
    lines.append(f"  logs        metrics -> {env['VERL_FILE_LOGGER_PATH']}; wandb {env['WANDB_MODE']}")
    return "\n".join(lines) + "\n"


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
    OmegaConf.save(OmegaConf.create(agent_loop_config(b.liverl)), run_dir / AGENT_LOOP_YAML)
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
    )
    return Plan(run_dir, c.mode.recipe, c.mode.verl_entrypoint, gpus)


def set_status(run_dir: Path, status: str, **fields: Any) -> None:
    """Record a status transition in run.json (atomic replace)."""
    entry = {"status": status, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    update_run(run_dir, _transition=entry, **fields)


def update_run(run_dir: Path, _transition: dict[str, str] | None = None, **fields: Any) -> None:
    """Set fields in run.json (atomic replace; the launcher and a Ray job on a shared disk may both write)."""
    path = run_dir / RUN_JSON
    run = json.loads(path.read_text()) if path.is_file() else {}
    run.setdefault("history", [])
    run.update(fields)
    if _transition:
        run["status"] = _transition["status"]
        run["history"].append(_transition)
    tmp = path.with_name(f"{RUN_JSON}.{os.getpid()}.tmp")
    tmp.write_text(env_scrubber().scrub(json.dumps(run, indent=2)) + "\n")  # a reason may quote a secret
    tmp.replace(path)


def write_config_error(run_dir: Path, error: ConfigError) -> None:
    """A failed plan: the errors, and run.json saying so (no verl.yaml, nothing that looks runnable)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in (VERL_YAML, COMMAND_SH, SUMMARY_TXT):
        (run_dir / name).unlink(missing_ok=True)
    (run_dir / ERRORS_TXT).write_text(str(error) + "\n")
    (run_dir / CHECKS_JSON).write_text(json.dumps(to_json([*error.problems, *error.findings]), indent=2) + "\n")
    set_status(run_dir, "config_error")
