"""Render a plan's human files: command.sh (verl's own command line) and summary.txt, and agent_loop.yaml."""

from __future__ import annotations

import re
import shlex
from typing import Any

from omegaconf import DictConfig, OmegaConf

from liverl.guardrails.memory_inputs import summary_line
from liverl.guardrails.verl_keys import SP_KEYS, batch_shape
from liverl.recipe.build import Build
from liverl.recipe.filter_plan import filter_entry


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


def agent_loop_config(cfg: DictConfig, verl_cfg: DictConfig) -> list[dict[str, Any]]:
    """verl's agent-loop registry file: one entry for the scaffold's loop, its settings and which trajectory filter
    runs (the Harbor loop zeroes the mask of dropped trajectories only where LiveRL's filter runs)."""
    s = cfg.scaffold
    return [
        {
            "name": s.agent_loop.name,
            "_target_": s.agent_loop.target,
            "scaffold": s.name,
            "tool_call_parser": cfg.model.tool_call_parser.get(s.name),
            "harbor": OmegaConf.to_container(s.harbor, resolve=True),
            "trajectory_filter": filter_entry(verl_cfg, cfg),
        }
    ]


def model_engine(cfg: DictConfig) -> str:
    """The engine a model gets unless engine= is given: MoE -> veomni, dense -> fsdp (the model files' defaults,
    conf/model/*.yaml; tests/test_engine_default.py keeps the two equal)."""
    return "veomni" if cfg.model.moe else "fsdp"


def engine_origin(cfg: DictConfig) -> str:
    """Why this engine: asked for (engine=...), or chosen for the model."""
    if cfg.liverl.get("engine_given"):
        return ", asked for"
    if cfg.engine.name == model_engine(cfg):
        kind = "MoE" if cfg.model.moe else "dense"
        return f", chosen for the model: {cfg.model.name} is {kind}; engine= to choose another"
    return ", set by the preset"


def agent_runs(cfg: DictConfig) -> str:
    """Which agent Harbor runs: a registered name wins over the import path (harbor/agents/factory.py:315-330)."""
    h = cfg.scaffold.harbor
    if h.agent_name not in (None, "", "null"):
        return f"Harbor runs its registered agent '{h.agent_name}'"
    return f"Harbor runs the import-path class {h.agent_import_path}" if h.agent_import_path else "no agent"


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
        f"  engine      {c.engine.name} ({engine}{engine_origin(c)}); fsdp_size={fsdp}; sp={','.join(map(str, sp))}; "
        f"rollout tp={v.actor_rollout_ref.rollout.tensor_model_parallel_size}; "
        f"offload param={offload.param_offload} optimizer={offload.optimizer_offload} "
        f"fsdp2_cpu={offload.get('fsdp2_cpu_offload', False)}",
        f"  model       {c.model.name} ({c.model.path})",
        f"  batch       {c.batch.name}: {prompts} prompts x {n} responses = {prompts * n} trajectories/step, "
        f"{c.total_training_steps} steps",
        f"  window      {v.data.max_prompt_length} prompt + {v.data.max_response_length} response tokens",
        f"  memory      {summary_line(c, v)}",
        f"  scaffold    {c.scaffold.name}: HARBOR_AGENT_NAME={env['HARBOR_AGENT_NAME']} "
        f"HARBOR_AGENT_IMPORT_PATH={env['HARBOR_AGENT_IMPORT_PATH']} ({agent_runs(c)}); tool parser "
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
    if from_env:  # liverl.recipe.environ: the documented variables this plan took its values from
        taken = [f"{knob}={hydra_value(OmegaConf.select(c, str(knob)))} (${var})" for var, knob in from_env.items()]
        lines.append(f"  environment {', '.join(taken)}")
    lines += [f"  note        {note}" for note in b.notes]
    lines += [f"  {f.severity.lower():11} [{f.rule}] {f.key}: {f.message}" for f in b.findings if f.severity != "SKIP"]
    lines.append(f"  logs        metrics -> {env['VERL_FILE_LOGGER_PATH']}; wandb {env['WANDB_MODE']}")
    return "\n".join(lines) + "\n"
