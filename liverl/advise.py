"""When to scale: the "When to scale" table applied to one run's config and metrics.

``python -m liverl.advise RUN_DIR [--json]`` prints, per lever, the signal this run shows, a verdict
(scale / stay / already / cannot judge / did not fit / fix first) and the exact command, as it runs: the environment
the run needed (USE_NEW_VERL=1 NEW_VERL_DIR=<its checkout>), its group choices and its own overrides, and the smoke
command first where the target has no smoke pass on record.
Exit code: 0, or 2 when RUN_DIR is unreadable.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from liverl.errors import ConfigError
from liverl.guardrails.ledger import launch_cluster, read_ledger, smoke_key
from liverl.guardrails.memory_inputs import plan_inputs
from liverl.health.advice import GROUPS, Advice, RunContext, advise_rows
from liverl.health.analysis import load_run_config, load_thresholds
from liverl.health.render import render_advice
from liverl.health.run_end import plan_gpu_memory
from liverl.health.streams import RunNotFoundError
from liverl.memory import plan as memplan
from liverl.memory.arch import ArchError
from liverl.recipe.compose import compose_liverl
from liverl.recipe.render import hydra_value
from liverl.rundir import LIVERL_YAML, RUN_JSON, VERL_YAML

# a run's liverl.yaml keys that are not the user's overrides: Hydra's, the run's own path and name, what
# liverl.recipe.environ records about the command line, and how it was launched (a command chooses its own launcher)
NOT_CARRIED = ("hydra", "run_dir", "experiment_name", "liverl.from_env", "liverl.engine_given", "liverl.agent_given",
               "mode", "launcher")


def predicted_memory(run_dir: str | Path, gpu_gb: float | None) -> dict | None:
    """The memory model's prediction for the plan in RUN_DIR on its GPU, or None (no plan, or the GPU unknown)."""
    base = Path(run_dir)
    if gpu_gb is None or not (base / LIVERL_YAML).is_file() or not (base / VERL_YAML).is_file():
        return None
    try:
        inputs = plan_inputs(OmegaConf.load(base / LIVERL_YAML), OmegaConf.load(base / VERL_YAML))
        return memplan.predict(dataclasses.replace(inputs, gpu_bytes=gpu_gb * 1e9))
    except (ArchError, TypeError, ValueError, KeyError, AttributeError):  # a plan too old or partial to predict from
        return None


def _leaves(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict) and node:
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(_leaves(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: node}


def carried_overrides(run: DictConfig) -> list[str]:
    """The run's own overrides beyond its group choices: each value of its liverl.yaml that differs from what its
    groups give by default (model.path, data, window, verl.*, ...); values computed from other settings are left to
    be computed again."""
    run_dir = OmegaConf.select(run, "run_dir", default=None, throw_on_resolution_failure=False)
    groups = [f"{g}={OmegaConf.select(run, f'{g}.name')}" for g in GROUPS
              if isinstance(OmegaConf.select(run, f"{g}.name", default=None, throw_on_resolution_failure=False), str)]
    if not isinstance(run_dir, str) or "${" in run_dir:
        return []  # not a plan LiveRL wrote (a hand-made or partial liverl.yaml): nothing to compare against
    try:
        base = compose_liverl(groups, run_dir=run_dir)
        raw = _leaves(OmegaConf.to_container(base, resolve=False))
        resolved = _leaves(OmegaConf.to_container(base, resolve=True))
    except (ConfigError, OmegaConfBaseException, ValueError):
        return []
    out = []
    for key, value in _leaves(OmegaConf.to_container(run, resolve=False)).items():
        if any(key == n or key.startswith(n + ".") for n in NOT_CARRIED):
            continue
        if key in raw and ((isinstance(raw[key], str) and "${" in raw[key]) or resolved[key] == value):
            continue
        added = "+" if key not in raw and _closed(base, key) else ""
        out.append(f"{added}{key}={hydra_value(value)}")
    return out


def _closed(base: DictConfig, key: str) -> bool:
    """Whether Hydra needs `+` to add `key` to the composed tree: its nearest existing parent is struct (LiveRL's
    groups are; the `verl` subtree is open, verl's keys being checked against verl's own config instead)."""
    node = base
    for part in key.split(".")[:-1]:
        child = node.get(part) if part in node else None
        if not isinstance(child, DictConfig):
            break
        node = child
    return bool(OmegaConf.is_struct(node))


def run_environment(base: Path) -> dict[str, str]:
    """The environment the run's commands need: the new-verl checkout it ran on (run.json verl_source)."""
    try:
        source = json.loads((base / RUN_JSON).read_text()).get("verl_source", "")
    except (OSError, ValueError, AttributeError):
        return {}
    if isinstance(source, str) and source.startswith("checkout "):
        return {"USE_NEW_VERL": "1", "NEW_VERL_DIR": source.removeprefix("checkout ")}
    return {}


def smoke_ledger_check(run: DictConfig):
    """Whether the smoke ledger holds a pass for a target's scaffold x topology x engine on the run's cluster."""
    ledger = read_ledger()
    try:
        cluster = launch_cluster(run)
    except (AttributeError, KeyError):
        cluster = None

    def passed(target: dict[str, str]) -> bool:
        names = OmegaConf.create({g: {"name": v} for g, v in target.items()})
        return smoke_key(names, cluster) in ledger

    return passed


def run_context(run_dir: str | Path, thresholds: DictConfig) -> RunContext:
    """What advice needs besides the run's config and metrics (liverl.health.advice.RunContext)."""
    base = Path(run_dir) if Path(run_dir).is_dir() else Path(run_dir).parent
    config = load_run_config(base)
    gpu = plan_gpu_memory(base, config, thresholds)
    ctx = RunContext(memory=predicted_memory(base, gpu[0] if gpu else None), gpu=gpu, env=run_environment(base))
    if config:
        ctx.carried = carried_overrides(config)
        ctx.smoke_passed = smoke_ledger_check(config)
    return ctx


def advise(run_dir: str | Path, thresholds: DictConfig | None = None) -> list[Advice]:
    """The advice `python -m liverl.advise RUN_DIR` prints."""
    thresholds = thresholds or load_thresholds()
    return advise_rows(run_dir, thresholds, run_context(run_dir, thresholds))


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m liverl.advise", description=__doc__.splitlines()[0])
    parser.add_argument("run", help="run directory (liverl.yaml and metrics*.jsonl / train.log)")
    parser.add_argument("--json", action="store_true", help="print the advice as JSON")
    parser.add_argument("--thresholds", metavar="YAML", help="merge this file over conf/watch/default.yaml")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="override one threshold, e.g. --set advise.gpu_memory_gb=80 (the GPU's memory, where "
                        "the plan records none)")
    args = parser.parse_args(argv)
    try:
        advice = advise(args.run, load_thresholds(args.thresholds, args.sets))
    except RunNotFoundError as exc:
        print(f"liverl.advise: {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"liverl.advise: cannot read thresholds or run: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([asdict(a) for a in advice], indent=1))
    else:
        render_advice(advice, args.run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
