"""Build the verl config: compose verl's own config from the verl that will run, apply LiveRL's overrides."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import os
import subprocess
import sys
import warnings
from dataclasses import dataclass, field
from typing import Any

from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from liverl.errors import ConfigError, Problem, did_you_mean
from liverl.guardrails import Ctx, apply_waivers, run_rules
from liverl.guardrails.verl_keys import ROUTER_REPLAY_KEY
from liverl.recipe.compose import resolve, unused_knobs, verl_overrides
from liverl.recipe.filter_plan import liverl_filter_values
from liverl.recipe.fused_kernels import resolve_fused_kernels
from liverl.recipe.knobs import check_knobs, env_origins
from liverl.recipe.notes import plan_notes
from liverl.recipe.verl_source import VerlSource
from liverl.recipe.verl_types import check_verl_value

TRAJ_FILTER_KEY = "algorithm.trajectory_filter"
# keys verl's dataclasses declare but its YAML schema does not carry, set as added keys (+key= on verl's CLI):
# PolicyLossConfig.rollout_correction (workers/config/actor.py:101), which verl's driver itself fills in bypass mode
# (trainer/ppo/rollout_corr_helper.py:1142)
DATACLASS_ONLY = {"actor_rollout_ref.actor.policy_loss.rollout_correction"}


@dataclass
class Override:
    """One verl override as applied: `added` keys go into a free-form verl map (`+key=` on verl's CLI)."""

    key: str
    value: Any
    added: bool = False


@dataclass
class Build:
    """A LiveRL config turned into the verl config that will run."""

    liverl: DictConfig
    verl: DictConfig
    source: VerlSource
    overrides: list[Override]
    features: dict[str, bool]
    notes: list[str] = field(default_factory=list)
    # guardrail findings that do not block: WARN, SKIP, WAIVED (liverl.check)
    findings: list[Problem] = field(default_factory=list)


def copy_rollout_pool(verl_cfg: DictConfig) -> None:
    """What verl's fully_async_main does before run_ppo: the rollout pool size lives at the top level
    (verl/experimental/fully_async_policy/fully_async_main.py), the rollout workers read it under actor_rollout_ref."""
    verl_cfg.actor_rollout_ref.rollout.nnodes = verl_cfg.rollout.nnodes
    verl_cfg.actor_rollout_ref.rollout.n_gpus_per_node = verl_cfg.rollout.n_gpus_per_node


def build(cfg: DictConfig, structure_only: bool = False, launching: bool = False) -> Build:
    """Compose, override, check and validate the verl config for a composed LiveRL config.

    structure_only: check only what needs no file on this disk (checkpoint, data, new-verl checkout: SKIP).
    launching: judge as a launch would (missing paths and an unrecorded smoke run are FATAL, not WARN/SKIP).
    Raises ConfigError listing every problem and unwaived FATAL finding; nothing is written or launched here.
    Every problem and finding about a knob taken from the documented environment names that variable.
    """
    origins = env_origins(cfg)
    try:
        b = _build(cfg, structure_only, launching)
    except ConfigError as exc:
        raise ConfigError(name_env(exc.problems, origins), name_env(exc.findings, origins)) from None
    b.findings = name_env(b.findings, origins)
    return b


def name_env(problems: list[Problem], origins: dict[str, str]) -> list[Problem]:
    """Each problem whose key is a knob set from the environment (or the verl key it sets) says which variable."""
    out = []
    for p in problems:
        var = next((v for k, v in origins.items() if p.key == k or p.key.endswith("." + k)), None)
        if var and f"${var}" not in p.message and var not in p.message:
            p = dataclasses.replace(p, message=f"{p.message} [{p.key} came from ${var}]")
        out.append(p)
    return out


def _build(cfg: DictConfig, structure_only: bool, launching: bool) -> Build:
    wrong = check_knobs(cfg)  # declared types and ranges first: nothing below sees a wrong value
    if wrong:
        raise ConfigError(wrong)
    problems = unused_knobs(cfg)
    cfg = resolve(cfg.copy())
    skipped: list[Problem] = []
    try:
        source = VerlSource.resolve(cfg.verl.source)
    except ConfigError as exc:
        if not structure_only or any(p.rule != "new-verl-dir" for p in exc.problems):
            raise
        source = VerlSource.resolve("installed")
        skipped = [
            dataclasses.replace(
                p,
                severity="SKIP",
                message=f"{p.message}; structure-only mode composes against the installed verl instead",
            )
            for p in exc.problems
        ]
    overrides = verl_overrides(cfg)
    choices = {k: v for k, v in overrides.items() if "." not in k and k in source.groups and isinstance(v, str)}
    values = {k: v for k, v in overrides.items() if k not in choices}
    mode = cfg.mode
    try:
        verl_cfg = source.compose(mode.verl_config_dir, mode.verl_config_name, choices)
    except (HydraException, OmegaConfBaseException) as exc:  # hydra: an unknown verl group option
        raise ConfigError([*problems, _compose_problem(source, choices, exc)]) from None
    features = source.features(verl_cfg)
    notes: list[str] = []
    resolve_fused_kernels(cfg, values, structure_only, notes)
    problems += _gate_features(cfg, values, features, source, notes)
    problems += [
        p
        for k, v in values.items()
        if (p := check_verl_value(verl_cfg, k, v, source.version, in_process=source.checkout is None))
    ]
    applied = _apply(verl_cfg, values, problems, mode.verl_config_name)
    if problems:  # the verl config is incomplete: guardrails would judge the wrong thing
        raise ConfigError(problems)
    if mode.name == "fully_async":
        copy_rollout_pool(verl_cfg)
    ctx = Ctx(cfg, verl_cfg, features, source.label, structure_only=structure_only, launching=launching)
    blocking, findings = apply_waivers([*skipped, *run_rules(ctx)], cfg.liverl.allow)
    try:
        validate_with_verl(verl_cfg, source, mode.name)
    except ConfigError as exc:
        blocking += exc.problems
    if blocking:
        raise ConfigError(blocking, findings)
    notes += plan_notes(cfg, verl_cfg)
    return Build(cfg, verl_cfg, source, applied, features, notes, findings)


def _compose_problem(source: VerlSource, choices: dict[str, str], exc: Exception) -> Problem:
    for group, option in choices.items():
        options = sorted(p.stem for p in (source.package_dir / "trainer" / "config" / group).glob("*.yaml"))
        if option not in options:
            return Problem(
                key=f"verl.{group}",
                message=f"'{option}' is not an option of verl's '{group}' group; {did_you_mean(option, options)}",
                got=option,
                fix=f"use one of: {', '.join(options)}",
                rule="verl-unknown-key",
            )
    return Problem(
        key="verl",
        message=f"verl could not compose its config: {str(exc).splitlines()[0]}",
        fix="correct the verl group choices",
        rule="verl-schema",
    )


def _gate_features(
    cfg: DictConfig, values: dict[str, Any], features: dict[str, bool], source: VerlSource, notes: list[str]
) -> list[Problem]:
    """Turn new-verl features on or off by what the verl that runs has; asking for a missing one is an error."""
    problems = []
    new_verl_fix = "set USE_NEW_VERL=1 and NEW_VERL_DIR=/path/to/new-verl (a verl that has it)"
    tf = cfg.trajectory_filter
    tf_keys = [k for k in values if k.startswith(TRAJ_FILTER_KEY + ".")]
    if features["trajectory_filter"]:
        enable = tf.enable if tf.enable != "auto" else True
        values[f"{TRAJ_FILTER_KEY}.enable"] = bool(enable)
        if enable:
            values[f"{TRAJ_FILTER_KEY}.drop_reasons"] = list(tf.drop_reasons)
        on = "on (verl built-in), dropping " + ",".join(tf.drop_reasons)
        notes.append(f"trajectory filter: {on if enable else 'off (asked)'}")
    elif tf_keys:
        problems.append(
            Problem(
                key=f"verl.{tf_keys[0]}",
                message=f"trajectory filtering was asked for, but the verl that runs ({source.label}) has no "
                f"{TRAJ_FILTER_KEY} in its schema: it would silently not filter",
                got=True,
                fix=f"{new_verl_fix}, or trajectory_filter.enable=auto|false",
                rule="new-verl-feature",
            )
        )
    else:  # the public verl: LiveRL's own filter where it can run (liverl/recipe/filter_plan.py)
        refusal, note = liverl_filter_values(cfg, values)
        notes.append(note)
        if refusal:
            problems.append(Problem(key="trajectory_filter.enable", message=refusal, got=True,
                                    fix=f"{new_verl_fix}, or trajectory_filter.enable=auto|false",
                                    rule="new-verl-feature"))
    mode = values.get(ROUTER_REPLAY_KEY)
    if mode is not None and not features["veomni_router_replay"]:
        if mode == "disabled":
            del values[ROUTER_REPLAY_KEY]
            notes.append("router replay: off (this verl's VeOmni engine has no router_replay)")
        else:
            problems.append(
                Problem(
                    key="router_replay",
                    message=f"VeOmni router replay {mode} was asked for, but the verl that runs "
                    f"({source.label}) has no {ROUTER_REPLAY_KEY}",
                    got=mode,
                    fix=f"{new_verl_fix}, or router_replay=disabled",
                    rule="new-verl-feature",
                )
            )
    elif mode is not None:
        notes.append(f"router replay: {mode}")
    return problems


def _empty_maps(cfg: DictConfig, prefix: str = "") -> set[str]:
    """Paths of verl's free-form maps (empty dicts in its schema, e.g. rollout.engine_kwargs.vllm)."""
    out = set()
    for k in cfg:
        node = cfg._get_node(k)
        if isinstance(node, DictConfig):
            path = f"{prefix}{k}"
            if len(node) == 0 and not node._is_none() and not node._is_missing():
                out.add(path)
            else:
                out |= _empty_maps(node, f"{path}.")
    return out


def _apply(verl_cfg: DictConfig, values: dict[str, Any], problems: list[Problem], name: str) -> list[Override]:
    """Set each override under verl's struct mode: a key verl does not have is a problem, never added."""
    free_maps = _empty_maps(verl_cfg) | DATACLASS_ONLY
    applied = []
    for key, value in values.items():
        added = any(key.startswith(m + ".") for m in free_maps)
        try:
            if added:
                with open_dict(verl_cfg):
                    OmegaConf.update(verl_cfg, key, value, merge=True)
            else:
                OmegaConf.update(verl_cfg, key, value, merge=True)
            applied.append(Override(key, value, added))
        except (ConfigAttributeError, ConfigKeyError):
            problems.append(_unknown_verl_key(verl_cfg, key, value, name))
        except OmegaConfBaseException as exc:
            problems.append(
                Problem(
                    key=f"verl.{key}",
                    message=f"verl rejects the value: {str(exc).splitlines()[0]}",
                    got=value,
                    fix="use a value of the type verl's schema declares",
                    rule="verl-schema",
                )
            )
    return applied


def _unknown_verl_key(verl_cfg: DictConfig, key: str, value: Any, name: str) -> Problem:
    parts = key.split(".")
    node: Any = verl_cfg
    depth = 0
    for depth, part in enumerate(parts):  # noqa: B007 - depth is used after the loop
        if isinstance(node, DictConfig) and part in node:
            node = node._get_node(part)
        else:
            break
    parent = ".".join(parts[:depth])
    siblings = [f"{parent}.{k}" if parent else str(k) for k in node] if isinstance(node, DictConfig) else []
    return Problem(
        key=f"verl.{key}",
        message=f"verl's {name} config has no key '{key}'; {did_you_mean(key, siblings)}",
        got=value,
        fix="correct the key (verl's struct mode rejects unknown keys); verl's keys are in its trainer/config/*.yaml",
        rule="verl-unknown-key",
    )


def validate_with_verl(verl_cfg: DictConfig, source: VerlSource, mode: str) -> None:
    """verl's own checks, as its entrypoint for this mode runs them: validate_config (main_ppo; fully_async_main does
    not call it) and the actor/rollout/algorithm dataclass conversions (their __post_init__ validators).

    Runs in this process for the installed verl; for a checkout, in a subprocess that imports the checkout.
    """
    if source.checkout is None:
        error = _validate(verl_cfg, mode)
    else:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(source.checkout), os.environ.get("PYTHONPATH")])),
        }
        payload = json.dumps({"mode": mode, "config": OmegaConf.to_container(verl_cfg, resolve=False)})
        command = [sys.executable, "-m", "liverl.recipe.build"]
        proc = subprocess.run(command, input=payload, capture_output=True, text=True, env=env, check=False)
        lines = (proc.stdout.strip() or proc.stderr.strip() or "no output").splitlines()
        error = lines[-1] if proc.returncode else None
    if error:
        raise ConfigError(
            [
                Problem(
                    key="verl",
                    message=f"verl's own validation failed: {error}",
                    fix="correct the keys it names",
                    rule="verl-validate",
                )
            ]
        )


def uses_reference_policy(cfg: DictConfig) -> bool:
    """verl 0.9.1's need_reference_policy (verl.trainer.ppo.utils, whose import costs a second more than
    verl.utils.config); tests/test_verl_predicates.py keeps the two equal."""
    return bool(cfg.algorithm.get("use_kl_in_reward", False) or cfg.actor_rollout_ref.actor.use_kl_loss)


def uses_critic(cfg: DictConfig) -> bool:
    """verl 0.9.1's need_critic (see uses_reference_policy)."""
    if cfg.critic.enable is not None:
        return bool(cfg.critic.enable)
    return cfg.algorithm.adv_estimator == "gae"


def _validate(cfg: DictConfig, mode: str) -> str | None:
    """Run verl's validators on a config; return the error message, or None."""
    from verl.utils.config import omega_conf_to_dataclass, validate_config

    logging.disable(logging.INFO)  # verl's config classes log INFO notes while converting
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if mode == "sync":  # converts and validates the actor too
                validate_config(cfg, use_reference_policy=uses_reference_policy(cfg), use_critic=uses_critic(cfg))
            else:
                omega_conf_to_dataclass(cfg.actor_rollout_ref.actor)
            omega_conf_to_dataclass(cfg.actor_rollout_ref.rollout)
            omega_conf_to_dataclass(cfg.algorithm)
    # what verl's validators raise (asserts, ValueError; TypeError/InstantiationException from a dataclass; omegaconf
    # errors for a missing key); anything else is a bug here and propagates
    except (AssertionError, ValueError, TypeError, HydraException, OmegaConfBaseException) as exc:
        return f"{type(exc).__name__}: {' '.join(str(exc).split())[:500]}"
    finally:
        logging.disable(logging.NOTSET)
    return None


if __name__ == "__main__":  # subprocess validation against a verl checkout (see validate_with_verl)
    request = json.load(sys.stdin)
    message = _validate(OmegaConf.create(request["config"]), request["mode"])
    print(message or "ok")
    sys.exit(1 if message else 0)
