"""Compose LiveRL's own config (`conf/`): groups, knobs and the `verl:` override subtree."""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterator
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from liverl.derive import concurrency_per_replica, tokens_per_gpu
from liverl.errors import ConfigError, Problem, did_you_mean
from liverl.paths import CONF_DIR
from liverl.recipe.knobs import resolution_problems

PRIMARY = "train"
GROUPS = ("topology", "engine", "scaffold", "model", "batch", "launcher", "experiment")
# LiveRL settings inside `verl:` (everything else there is a verl key)
VERL_RESERVED = ("source",)


def _div(a: int, b: int) -> int:
    if b == 0 or a % b:
        raise ValueError(f"{a} is not divisible by {b}")
    return a // b


def _mul(*xs: int) -> int:
    out = 1
    for x in xs:
        out *= x
    return out


def register() -> None:
    """Register LiveRL's resolvers and the open `verl:` node (verl's schema checks it, not ours)."""
    resolvers = {
        "liverl.add": lambda *xs: sum(xs),
        "liverl.mul": _mul,
        "liverl.div": _div,
        "liverl.if": lambda cond, a, b: a if cond else b,
        "liverl.eq": lambda a, b: a == b,
        "liverl.not": lambda a: not a,
        "liverl.concurrency_per_replica": concurrency_per_replica,
        "liverl.tokens_per_gpu": tokens_per_gpu,
    }
    for name, fn in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)
    ConfigStore.instance().store(name="_verl_overrides", node=DictConfig({}, flags={"struct": False}))


register()


def group_options(group: str) -> list[str]:
    """The options of one of LiveRL's config groups, from the files in `conf/`."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def compose_liverl(overrides: list[str], run_dir: str | os.PathLike | None = None) -> DictConfig:
    """Compose LiveRL's config with the compose API (tests, `liverl.check`, benchmarks)."""
    extra = [f"run_dir={run_dir}"] if run_dir is not None else ["run_dir=/tmp/liverl-compose"]
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose(config_name=PRIMARY, overrides=[*overrides, *extra])
    except (ConfigCompositionException, MissingConfigException, OverrideParseException) as exc:
        raise translate_hydra_error(exc, overrides) from None


def _all_keys(cfg: DictConfig, prefix: str = "") -> Iterator[str]:
    for k in cfg:
        path = f"{prefix}{k}"
        yield path
        node = cfg._get_node(k)
        if isinstance(node, DictConfig) and path != "verl" and path != "hydra":
            yield from _all_keys(node, f"{path}.")


def default_key_names() -> list[str]:
    """Every dotted key of the default LiveRL config (for `did you mean`)."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name=PRIMARY, overrides=["run_dir=/tmp/liverl-compose"])
    return list(_all_keys(cfg))


def translate_hydra_error(exc: Exception, overrides: list[str]) -> ConfigError:
    """Turn Hydra's composition errors into LiveRL problems that name the key and its nearest names."""
    text = str(exc)
    missing = re.search(r"Could not find '([\w/]+)/([^']+)'", text) or re.search(
        r"In '[^']*': Could not find '([\w/]+)/([^']+)'", text
    )
    if missing:
        group, option = missing.group(1).strip("/"), missing.group(2)
        options = group_options(group)
        return ConfigError(
            [
                Problem(
                    key=group,
                    message=f"'{option}' is not an option of group '{group}'; {did_you_mean(option, options)}",
                    got=option,
                    fix=f"use one of: {', '.join(options)}",
                )
            ]
        )
    override = re.search(r"Could not override '([^']+)'", text) or re.search(r"Key '([^']+)' is not in struct", text)
    if override:
        key = override.group(1)
        groups = [g for g in GROUPS if key == g]
        if groups:
            return ConfigError(
                [Problem(key=key, message="unknown option", fix=f"use one of: {', '.join(group_options(key))}")]
            )
        return ConfigError(
            [
                Problem(
                    key=key,
                    message=f"not a LiveRL setting; {did_you_mean(key, default_key_names())}",
                    got=_override_value(key, overrides),
                    fix="use a LiveRL knob or group (python -m liverl.train --help), or a verl key as "
                    "verl.<dotted verl key>=value",
                )
            ]
        )
    return ConfigError([Problem(key="<command line>", message=text.splitlines()[0], fix="correct the override syntax")])


def _override_value(key: str, overrides: list[str]) -> str | None:
    for o in overrides:
        k, _, v = o.lstrip("+~").partition("=")
        if k == key:
            return v
    return None


def verl_overrides(cfg: DictConfig) -> dict[str, Any]:
    """The resolved `verl:` subtree as {dotted verl key: value}, LiveRL's reserved keys left out."""
    tree = OmegaConf.to_container(cfg.verl, resolve=True)
    assert isinstance(tree, dict)
    out: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict) and node:
            for k, v in node.items():
                walk(v, f"{prefix}{k}.")
        else:
            out[prefix[:-1]] = node

    for k, v in tree.items():
        if k not in VERL_RESERVED:
            walk(v, f"{k}.")
    return out


def _references(cfg: DictConfig) -> set[str]:
    """Names referenced by interpolations anywhere in the unresolved config."""
    refs: set[str] = set()
    container = OmegaConf.to_container(cfg, resolve=False)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
        elif isinstance(node, str) and "${" in node:
            refs.update(re.findall(r"\$\{([A-Za-z_][\w]*)(?=[}.\[,])", node))

    walk(container)
    return refs


def knobs(cfg: DictConfig) -> dict[str, Any]:
    """LiveRL's top-level scalar settings (the user's knobs), resolved."""
    out = {}
    for k in cfg:
        node = cfg._get_node(k)
        if isinstance(node, (DictConfig, ListConfig)) or k in ("run_dir",):
            continue
        out[str(k)] = cfg[k]
    return out


def unused_knobs(cfg: DictConfig) -> list[Problem]:
    """Knobs set to a value that no verl key (or other setting) reads: they would silently do nothing."""
    refs = _references(cfg)
    shape = f"topology={cfg.topology.name} (mode {cfg.mode.name}), engine={cfg.engine.name}"
    raw = OmegaConf.to_container(cfg, resolve=False)
    primary = _primary_defaults()
    problems = []
    for name, value in knobs(cfg).items():
        # left at train.yaml's default (e.g. sp_size=1 when a verl.* override sets SP directly): nothing was asked
        if value is not None and name not in refs and raw.get(name) != primary.get(name):
            problems.append(
                Problem(
                    key=name,
                    message=f"has no effect with {shape}: no verl key reads it (these groups do not use it, or a "
                    "verl.* override replaced the key it sets)",
                    got=value,
                    fix=f"drop {name}=..., or choose groups that use it"
                    + (" (fully-async topologies: 2node, 3node)" if name in _ASYNC_KNOBS else ""),
                    rule="unused-knob",
                )
            )
    return problems


@functools.cache
def _primary_defaults() -> dict[str, Any]:
    return OmegaConf.to_container(OmegaConf.load(CONF_DIR / f"{PRIMARY}.yaml"), resolve=False)


_ASYNC_KNOBS = {"staleness_threshold", "partial_rollout", "trigger_parameter_sync_step", "require_batches"}


def resolve(cfg: DictConfig) -> DictConfig:
    """Resolve every interpolation, turning resolver failures into configuration problems."""
    try:
        OmegaConf.resolve(cfg)
    except OmegaConfBaseException as exc:  # omegaconf wraps resolver errors in InterpolationResolutionError
        # name the value that cannot be computed and the knobs it is computed from (liverl.recipe.knobs)
        problems = resolution_problems(cfg) or [
            Problem(key="<config>", message=f"cannot be resolved: {exc}".splitlines()[0], fix="correct the values")
        ]
        raise ConfigError(problems) from None
    return cfg
