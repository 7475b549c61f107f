"""`conform.*` (conf/conform/default.yaml) checked before anything runs: a bad value is `key: message (got: value)`."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from omegaconf import DictConfig, OmegaConf

from liverl.errors import ConfigError, Problem, did_you_mean
from liverl.paths import CONF_DIR, LIVERL_ROOT

POLICIES = ("double", "engine")
ENVIRONMENTS = ("local", "scaffold")


@dataclass
class Settings:
    scaffold: str
    parser: str
    policy: str
    tasks: int
    concurrency: int
    chat_template: Path | None
    task_dir: Path | None
    environment: str
    agent_bin: Path
    agent_runtime: Path
    prompt_length: int | None
    response_length: int | None
    double: Path
    thresholds: dict[str, float]
    engine: dict[str, Any]
    capture: Path | None = None


def _root_path(value: Any) -> Path:
    path = Path(str(value)).expanduser()
    return path if path.is_absolute() else LIVERL_ROOT / path


def _positive(problems: list[Problem], key: str, value: Any, allow_null: bool = False) -> None:
    if value is None and allow_null:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        problems.append(Problem(key=key, message="must be a positive integer", got=value,
                                fix=f"{key}=4" if not allow_null else f"{key}=null (the plan's) or a token count"))


def settings(cfg: DictConfig) -> Settings:
    c = OmegaConf.to_container(cfg.conform, resolve=True)
    problems: list[Problem] = []
    scaffold = str(cfg.scaffold.name)
    if not cfg.scaffold.harbor.get("model_api_format"):
        problems.append(Problem(key="scaffold", message="has no Harbor harness to check (no agent speaks to the "
                                "proxy)", got=scaffold, fix="scaffold=claude_code or scaffold=ohsdk"))
    parser = OmegaConf.select(cfg, f"model.tool_call_parser.{scaffold}")
    if not parser and not problems:
        problems.append(Problem(key=f"model.tool_call_parser.{scaffold}", message="no tool-call parser for this "
                                "scaffold", got=parser, fix=f"model.tool_call_parser.{scaffold}=qwen3_coder"))
    if c["policy"] not in POLICIES:
        problems.append(Problem(key="conform.policy", message="unknown policy", got=c["policy"],
                                fix="conform.policy=double (the tests' scripted policy, CPU) or conform.policy="
                                    "engine (vLLM serving model.path, a GPU host)"))
    _positive(problems, "conform.tasks", c["tasks"])
    _positive(problems, "conform.concurrency", c["concurrency"])
    _positive(problems, "conform.prompt_length", c["prompt_length"], allow_null=True)
    _positive(problems, "conform.response_length", c["response_length"], allow_null=True)
    if c["environment"] not in ENVIRONMENTS:
        problems.append(Problem(key="conform.environment", message="unknown environment", got=c["environment"],
                                fix="conform.environment=local (this host) or conform.environment=scaffold"))
    template = _root_path(c["chat_template"]) if c["chat_template"] else None
    if template is not None and not template.is_file():
        problems.append(Problem(key="conform.chat_template", message="no such file", got=c["chat_template"],
                                fix="a file holding a Jinja chat template, or conform.chat_template=null"))
    task_dir = _root_path(c["task_dir"]) if c["task_dir"] else None
    if task_dir is not None and not any(task_dir.glob("*/task.toml")):
        problems.append(Problem(key="conform.task_dir", message="holds no Harbor task (no */task.toml)",
                                got=c["task_dir"], fix="a folder of Harbor task folders, or conform.task_dir=null"))
    double = _root_path(c["double"])
    if (c["policy"] == "double" or task_dir is None) and not double.is_file():
        problems.append(Problem(key="conform.double", message="the double's module (the policy double and the "
                                "built-in tasks) is missing: it lives in a checkout's tests/", got=c["double"],
                                fix="run from a LiveRL checkout, or conform.policy=engine conform.task_dir=DIR"))
    for key, value in c["thresholds"].items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            problems.append(Problem(key=f"conform.thresholds.{key}", message="must be a fraction in [0, 1]",
                                    got=value, fix=f"conform.thresholds.{key}=0.95"))
    if problems:
        raise ConfigError(problems)
    return Settings(scaffold=scaffold, parser=str(parser), policy=c["policy"], tasks=c["tasks"],
                    concurrency=c["concurrency"], chat_template=template, task_dir=task_dir,
                    environment=c["environment"], agent_bin=_root_path(c["agent_bin"]),
                    agent_runtime=_root_path(c["agent_runtime"]), prompt_length=c["prompt_length"],
                    response_length=c["response_length"], double=double, thresholds=dict(c["thresholds"]),
                    engine=dict(c["engine"]), capture=_root_path(c["capture"]) if c["capture"] else None)


def conform_names(err: ConfigError) -> ConfigError:
    """Hydra's unknown-key error for a conform.* key, with the nearest conform.* names (the default LiveRL config
    that the composition error names keys from has no conform group)."""
    defaults = OmegaConf.load(CONF_DIR / "conform" / "default.yaml")
    names: list[str] = []

    def walk(node: Any, prefix: str) -> None:
        for k, v in node.items():
            names.append(f"{prefix}{k}")
            if isinstance(v, DictConfig):
                walk(v, f"{prefix}{k}.")

    walk(defaults.conform, "conform.")
    problems = [dataclasses.replace(p, message=f"not a conform setting; {did_you_mean(p.key, names)}",
                                    fix="the conform.* settings are in conf/conform/default.yaml")
                if p.key.startswith("conform.") and "not a LiveRL setting" in p.message else p
                for p in err.problems]
    return ConfigError(problems, err.findings)


def load_double(path: Path) -> ModuleType:
    """The double's module by file path, its folder first on sys.path (it imports its sibling test modules)."""
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(f"liverl_conform_double_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
