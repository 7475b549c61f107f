"""The declared type and range of every LiveRL knob, checked before anything else is resolved or built.

A wrong value is a configuration error (exit 2) that names the knob, the value, what is allowed and the fix;
a value computed by interpolation that cannot be computed names the knobs it is computed from.
Defaults live in conf/ (train.yaml, the groups); what each knob may hold lives here, once.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from liverl.errors import Problem
from liverl.guardrails.verl_keys import HARBOR_LOOP, TRAJ_FILTER_REASONS
from liverl.secrets import REDACTED, secrets_in

ASYNC_MODE = "fully_async"
_ABSENT = object()
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_IMPORT_PATH = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


def is_int(v: Any) -> bool:
    """An int that is not a bool."""
    return isinstance(v, int) and not isinstance(v, bool)


def _is_text(v: Any) -> bool:
    return isinstance(v, str) and bool(v.strip()) and "\n" not in v and "\x00" not in v


def _is_list(v: Any) -> bool:
    return isinstance(v, (list, tuple, ListConfig))


@dataclass(frozen=True)
class Knob:
    """One setting's contract: what it may hold (`allowed`, checked by `ok`) and an example of a good value."""

    path: str
    allowed: str
    ok: Callable[[Any], bool]
    example: str
    nullable: bool = False
    # a fully-async knob: unset (null) outside fully-async topologies, required inside them
    async_only: bool = False
    # a Harbor knob: may be null when the scaffold's agent loop is not LiveRL's Harbor loop (scaffold=single_turn)
    harbor_only: bool = False


def _int(path: str, lo: int, hi: int, example: str, **kw: Any) -> Knob:
    return Knob(path, f"an integer from {lo} to {hi:,}", lambda v: is_int(v) and lo <= v <= hi, example, **kw)


def _enum(path: str, choices: tuple[Any, ...], example: str, **kw: Any) -> Knob:
    text = " | ".join("null" if c is None else str(c).lower() if isinstance(c, bool) else str(c) for c in choices)
    ok = lambda v: any(v is c or (type(v) is type(c) and v == c) for c in choices)  # noqa: E731 - True != 1 here
    return Knob(path, f"one of {text}", ok, example, nullable=None in choices, **kw)


def _text(path: str, example: str, **kw: Any) -> Knob:
    return Knob(path, "a non-empty string (one line)", _is_text, example, **kw)


def _texts(path: str, what: str, each: Callable[[Any], bool], example: str, empty_ok: bool = True) -> Knob:
    return Knob(path, f"a list of {what}", lambda v: _is_list(v) and (empty_ok or len(v) > 0) and all(map(each, v)),
                example)


def _files(path: str) -> Knob:
    return Knob(path, "a path, or a non-empty list of paths", lambda v: _is_text(v) or (
        _is_list(v) and len(v) > 0 and all(map(_is_text, v))), f"{path}=/data/{path.split('_')[0]}.parquet")


KNOBS: tuple[Knob, ...] = (
    _int("train_bsz", 1, 65_536, "train_bsz=64 (or batch=smoke|official)"),
    _int("n_resp_per_prompt", 1, 1_024, "n_resp_per_prompt=8 (or batch=smoke|official)"),
    _int("total_training_steps", 1, 10_000_000, "total_training_steps=200"),
    _int("sp_size", 1, 256, "sp_size=1"),
    _int("fsdp_size", 1, 65_536, "fsdp_size=8 (or leave it: all trainer GPUs)"),
    _enum("rollout_is", (None, "token", "sequence"), "rollout_is=token"),
    Knob("staleness_threshold", "a number from 0 to 1,000", lambda v: isinstance(v, (int, float))
         and not isinstance(v, bool) and 0 <= v <= 1_000, "staleness_threshold=1", async_only=True),
    _enum("partial_rollout", (True, False), "partial_rollout=true", async_only=True),
    _int("trigger_parameter_sync_step", 1, 10_000, "trigger_parameter_sync_step=1", async_only=True),
    _int("require_batches", 1, 65_536, "require_batches=1 (train_bsz must be a multiple of it)", async_only=True),
    _enum("router_replay", (None, "disabled", "R2", "R3"), "router_replay=R3"),
    _enum("trajectory_filter.enable", ("auto", True, False), "trajectory_filter.enable=auto"),
    _texts("trajectory_filter.drop_reasons", "known drop reasons (" + ", ".join(TRAJ_FILTER_REASONS) + ")",
           lambda r: r in TRAJ_FILTER_REASONS, "trajectory_filter.drop_reasons=[timeout,env_setup_failed]"),
    _files("train_files"),
    _files("val_files"),
    _text("project_name", "project_name=liverl"),
    _text("experiment_name", "experiment_name=my_run"),
    _text("model.path", "model.path=/ckpt/Qwen3.5-35B-A3B (or MODEL_PATH=...)"),
    _int("window.prompt", 1, 10_000_000, "window.prompt=30000"),
    _int("window.response", 1, 10_000_000, "window.response=58304"),
    _text("scaffold.harbor.agent_name", "scaffold.harbor.agent_name=claude-code (null: load the import path)",
          nullable=True),
    Knob("scaffold.harbor.agent_import_path", "an import path module.path:ClassName",
         lambda v: isinstance(v, str) and bool(_IMPORT_PATH.fullmatch(v)),
         "scaffold.harbor.agent_import_path=harbor.agents.installed.claude_code:ClaudeCode", harbor_only=True),
    _int("scaffold.harbor.max_turns", 1, 100_000, "scaffold.harbor.max_turns=200"),
    _int("scaffold.harbor.agent_timeout_sec", 1, 604_800, "scaffold.harbor.agent_timeout_sec=2400"),
    _int("scaffold.harbor.val_agent_timeout_sec", 1, 604_800, "scaffold.harbor.val_agent_timeout_sec=4800"),
    _int("scaffold.harbor.teardown_grace_sec", 1, 3_600, "scaffold.harbor.teardown_grace_sec=60"),
    _int("scaffold.harbor.max_concurrent_trials", 1, 100_000,
         "scaffold.harbor.max_concurrent_trials=16 (null: the worker's share of the rollout's in-flight samples)",
         nullable=True),
    _text("scaffold.harbor.proxy_bind_host", "scaffold.harbor.proxy_bind_host=auto (or an address of this host)"),
    # null with scaffold.harbor.environment_import_path: Harbor loads that class (a Kubernetes or a local one);
    # null with neither: Harbor defaults to docker (harbor/models/trial/config.py, EnvironmentConfig.set_default_type)
    _text("scaffold.harbor.environment_type", "scaffold.harbor.environment_type=docker (null: load the import path)",
          nullable=True),
    _texts("liverl.allow", "guardrail rule ids", _is_text, "liverl.allow=[memory-fit]"),
    Knob("cluster.host_memory_gib", "a number of GiB from 1 to 100,000", lambda v: isinstance(v, (int, float))
         and not isinstance(v, bool) and 1 <= v <= 100_000, "cluster.host_memory_gib=2000", nullable=True),
    _enum("gpu.name", ("h100", "h200", "a100_80gb", "b200"), "gpu=h100 (a group: conf/gpu/*.yaml)"),
    _int("gpu.memory_bytes", 2**30, 2**50, "gpu.memory_bytes=84932978278"),
    _text("verl.source", "verl.source=auto (or installed, or /path/to/verl)"),
    _text("launcher.address", "launcher.address=http://HEAD:8265 (null: $RAY_ADDRESS)", nullable=True),
    _enum("launcher.wait", (True, False), "launcher.wait=true"),
    _enum("launcher.upload_code", (True, False), "launcher.upload_code=true"),
    _enum("launcher.submit", (True, False), "launcher.submit=false"),
    _text("launcher.python", "launcher.python=python", nullable=True),
    _texts("launcher.forward_env", "environment variable names", lambda n: isinstance(n, str) and bool(
        _ENV_NAME.fullmatch(n)), "launcher.forward_env=[WANDB_API_KEY,HF_TOKEN]"),
    _texts("launcher.send_env", "environment variable names", lambda n: isinstance(n, str) and bool(
        _ENV_NAME.fullmatch(n)), "launcher.send_env=[]"),
    _text("launcher.partition", "launcher.partition=gpu", nullable=True),
    _text("launcher.account", "launcher.account=myproject", nullable=True),
    _text("launcher.time", "launcher.time=24:00:00"),
    _int("launcher.ray_port", 1, 65_535, "launcher.ray_port=6379"),
    _int("launcher.bringup_timeout", 1, 86_400, "launcher.bringup_timeout=600"),
    _texts("launcher.sbatch_args", "sbatch options", _is_text, "launcher.sbatch_args=[--qos=high]"),
)
BY_PATH = {k.path: k for k in KNOBS}


def show(value: Any) -> str:
    """A value as the user would type it (null, '' and whitespace visible)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (DictConfig, ListConfig)):
        value = OmegaConf.to_container(value, resolve=False)
    text = str(value)
    return repr(text) if isinstance(value, str) and (not text.strip() or text != text.strip()) else text[:200]


def env_origins(cfg: DictConfig) -> dict[str, str]:
    """{knob path: environment variable} for the knobs set from the environment (liverl.recipe.environ)."""
    from_env = OmegaConf.select(cfg, "liverl.from_env", default=None)
    return {} if not from_env else {str(v): str(k) for k, v in from_env.items()}


def check_knobs(cfg: DictConfig) -> list[Problem]:
    """Every knob against its declared type and range, on the composed (unresolved) config."""
    mode = OmegaConf.select(cfg, "mode.name", default=None, throw_on_resolution_failure=False)
    harbor = OmegaConf.select(cfg, "scaffold.agent_loop.name", default=None, throw_on_resolution_failure=False)
    origins = env_origins(cfg)
    problems = []
    for knob in KNOBS:
        try:
            value = OmegaConf.select(cfg, knob.path, default=_ABSENT, throw_on_missing=True)
        except OmegaConfBaseException as exc:  # an interpolation or resolver that fails: name its sources
            problems.append(resolution_problem(cfg, knob.path, exc))
            continue
        if value is _ABSENT:
            continue
        if isinstance(value, (DictConfig, ListConfig)):
            value = OmegaConf.to_container(value, resolve=True)
        if value is None and (
            knob.nullable or (knob.async_only and mode != ASYNC_MODE) or (knob.harbor_only and harbor != HARBOR_LOOP)
        ):
            continue
        if value is not None and knob.ok(value):
            continue
        problems.append(_knob_problem(knob, value, mode, origins.get(knob.path)))
    return problems + secret_problems(cfg)


def leaves(node: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(node, dict):
        return [leaf for k, v in node.items() if k != "hydra" for leaf in leaves(v, f"{prefix}{k}.")]
    if isinstance(node, list):
        return [leaf for i, v in enumerate(node) for leaf in leaves(v, f"{prefix}{i}.")]
    return [(prefix[:-1], node)]


def secret_problems(cfg: DictConfig) -> list[Problem]:
    """A secret given as a setting would be written into the plan (verl.yaml, command.sh, .hydra/) and shown by
    Ray's dashboard: refused, with the way to pass it instead (liverl.secrets decides what is secret)."""
    return [
        Problem(
            key=path,
            message="is a secret (by its name or its shape); a setting is written into the plan, so a secret never "
            "goes there",
            got=REDACTED,
            fix="pass it through the environment instead (export it where the run starts; launcher.forward_env "
            "hands variables to the Ray workers in memory), e.g. VLLM_API_KEY for vLLM's api-key",
            rule="secret-in-config",
        )
        for path, value in leaves(OmegaConf.to_container(cfg, resolve=False))
        if isinstance(value, str) and "${" not in value and secrets_in(path, value)
    ]


def _knob_problem(knob: Knob, value: Any, mode: str | None, var: str | None) -> Problem:
    required = " (fully-async topologies need it)" if knob.async_only and mode == ASYNC_MODE else ""
    source = f"; it was set from ${var}" if var else ""
    fix = f"set {knob.example}" + (f", or export {var} with such a value (or unset it)" if var else "")
    return Problem(key=knob.path, message=f"must be {knob.allowed}{required}{source}", got=show(value), fix=fix,
                   rule="knob-type")


_REF = re.compile(r"\$\{([A-Za-z_][\w.]*)\}")


def _raw(cfg: DictConfig, key: str) -> Any:
    node: Any = OmegaConf.to_container(cfg, resolve=False)
    for part in key.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def _interpolated_leaves(node: Any, prefix: str = "") -> list[str]:
    if isinstance(node, dict):
        return [p for k, v in node.items() if k != "hydra" for p in _interpolated_leaves(v, f"{prefix}{k}.")]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in _interpolated_leaves(v, f"{prefix}{i}.")]
    return [prefix[:-1]] if isinstance(node, str) and "${" in node else []


def _fails(cfg: DictConfig, key: str) -> BaseException | None:
    try:
        OmegaConf.select(cfg, key)
    except OmegaConfBaseException as exc:  # omegaconf wraps a resolver's error in InterpolationResolutionError
        return exc
    return None


def resolution_problems(cfg: DictConfig) -> list[Problem]:
    """Every value that cannot be computed, reported where it goes wrong: the values whose own sources compute
    (a failure that only propagates from another is left out)."""
    failing = {}
    for key in _interpolated_leaves(OmegaConf.to_container(cfg, resolve=False)):
        exc = _fails(cfg, key)
        if exc is not None:
            failing[key] = exc
    roots = [k for k in failing if not any(_fails(cfg, r) for r in _REF.findall(str(_raw(cfg, k))))]
    return [resolution_problem(cfg, k, failing[k]) for k in (roots or list(failing))]


def resolution_problem(cfg: DictConfig, key: str, exc: BaseException) -> Problem:
    """A value that cannot be computed: the key, its expression, the knobs it is computed from and their values."""
    raw = _raw(cfg, key)
    expr = raw if isinstance(raw, str) else ""
    refs = list(dict.fromkeys(_REF.findall(expr)))
    values = []
    for ref in refs:
        try:
            values.append(f"{ref}={show(OmegaConf.select(cfg, ref, default=None))}")
        except OmegaConfBaseException:  # that source fails too: say so, do not raise
            values.append(f"{ref}=<cannot be computed>")
    cause = " ".join(str(exc.__cause__ or exc).split()).split(" full_key:")[0]
    cause = re.sub(r"^\w+ raised while resolving interpolation: ", "", cause)[:300]
    div = re.fullmatch(r"\$\{liverl\.div:\$\{([\w.]+)\},\$\{([\w.]+)\}\}", expr)
    if div:
        fix = f"make {div.group(1)} a multiple of {div.group(2)} (both knobs), e.g. {div.group(2)}=1"
    elif refs:
        fix = f"correct {' or '.join(refs)}: {key} is computed from {'them' if len(refs) > 1 else 'it'}"
    else:
        fix = f"correct {key}"
    origin = f"{key} = {expr} " if expr else f"{key} "
    computed = f"is computed from {', '.join(values)} and cannot be: " if values else "cannot be computed: "
    return Problem(key=", ".join(refs) or key, message=f"{origin}{computed}{cause}", got=None, fix=fix,
                   rule="interpolation")
