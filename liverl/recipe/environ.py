"""The documented environment, read once, for every entry point (`python -m liverl.train`, `liverl.check`, the
scripts, which are a single exec of `python -m liverl.train experiment=<preset> "$@"`).

TRAIN_BSZ N_RESP MODEL_PATH TRAIN_FILES VAL_FILES TRAJ_FILTER_ENABLE TRAJ_FILTER_DROP_REASONS HARBOR_AGENT_NAME
HARBOR_AGENT_IMPORT_PATH become overrides placed before the command line's; a knob the command line sets is not
taken from the environment (the command line wins, and that is said). Each one taken is recorded as
`liverl.from_env.<VAR>=<knob>`, so the plan's summary and any error about the knob name the variable.
A batch of the smoke batch's size (8 prompts x 4 responses) is the smoke batch, however it was asked for.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from omegaconf import OmegaConf

from liverl.paths import CONF_DIR

_BATCH_DIR = CONF_DIR / "batch"


@dataclass(frozen=True)
class EnvVar:
    name: str
    knob: str
    kind: str  # int | str | bool | list | nullable


ENV_VARS = (
    EnvVar("TRAIN_BSZ", "train_bsz", "int"),
    EnvVar("N_RESP", "n_resp_per_prompt", "int"),
    EnvVar("MODEL_PATH", "model.path", "str"),
    EnvVar("TRAIN_FILES", "train_files", "str"),
    EnvVar("VAL_FILES", "val_files", "str"),
    EnvVar("TRAJ_FILTER_ENABLE", "trajectory_filter.enable", "bool"),
    EnvVar("TRAJ_FILTER_DROP_REASONS", "trajectory_filter.drop_reasons", "list"),
    # set but empty (or null) means null: Harbor then loads the import-path class (scaffold=ohsdk)
    EnvVar("HARBOR_AGENT_NAME", "scaffold.harbor.agent_name", "nullable"),
    EnvVar("HARBOR_AGENT_IMPORT_PATH", "scaffold.harbor.agent_import_path", "str"),
)
DRY_RUN = "--dry-run"


@dataclass
class Arguments:
    """The overrides to compose, and where they came from."""

    args: list[str]
    from_env: dict[str, str] = field(default_factory=dict)  # VAR -> knob
    notes: list[str] = field(default_factory=list)


def quote(text: str) -> str:
    """A string as a quoted Hydra override value (so any text reaches the knob check, which names the knob)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def hydra_text(var: EnvVar, raw: str) -> str | None:
    """The override value for one variable's text (None: the variable does not set anything)."""
    text = raw.strip()
    if var.kind == "nullable":
        return "null" if text.lower() in ("", "null", "none") else quote(text)
    if not text:
        return None
    if var.kind == "int":
        return text if re.fullmatch(r"[+-]?\d{1,18}", text) else quote(text)
    if var.kind == "bool":
        words = {"true": "true", "1": "true", "yes": "true", "on": "true", "false": "false", "0": "false",
                 "no": "false", "off": "false", "auto": "auto"}
        return words.get(text.lower(), quote(text))
    if var.kind == "list":
        return "[" + ",".join(quote(r.strip()) for r in text.split(",") if r.strip()) + "]"
    return quote(text)


def _key(arg: str) -> str:
    return arg.lstrip("+~").partition("=")[0]


def _set_on_command_line(args: list[str]) -> dict[str, str]:
    return {_key(a): a.partition("=")[2] for a in args if "=" in a and not a.startswith("-")}


def arguments(argv: list[str], environ: Mapping[str, str]) -> Arguments:
    """The documented environment mapped onto overrides, followed by the command line (which wins)."""
    cli = ["launcher=dryrun" if a == DRY_RUN else a for a in argv]  # Hydra's own flags keep their places
    given = _set_on_command_line(cli)
    out = Arguments([])
    env_args = []
    for var in ENV_VARS:
        if var.name not in environ:
            continue
        value = hydra_text(var, environ[var.name])
        if value is None:
            continue
        if var.knob in given:
            out.notes.append(f"{var.name} is not used: the command line sets {var.knob}={given[var.knob]}")
            continue
        env_args.append(f"{var.knob}={value}")
        out.from_env[var.name] = var.knob
    _import_path_alone(env_args, given, environ, out)
    # after the command line (whose own settings were left out above), so its flags and their values stay together
    out.args = [*cli, *env_args, *(f"+liverl.from_env.{k}={v}" for k, v in out.from_env.items())]
    if "engine" in given:  # the plan says whether the engine was asked for or chosen for the model (notes.py)
        out.args.append("liverl.engine_given=true")
    _smoke_batch(out, {**_set_on_command_line(env_args), **given})
    return out


AGENT_NAME, AGENT_IMPORT = "scaffold.harbor.agent_name", "scaffold.harbor.agent_import_path"


def _import_path_alone(env_args: list[str], given: dict[str, str], environ: Mapping[str, str], out: Arguments) -> None:
    """An agent import path given without an agent name selects that class: the name becomes null.

    Harbor's factory takes a registered name first and only then the import path (.venv-harbor harbor/agents/
    factory.py:315-330), so a path next to the scaffold's registered name (claude-code) would silently not run.
    Both given (environment or command line) is a contradiction the knob check refuses (rule scaffold-agent)."""
    path_from = AGENT_IMPORT if AGENT_IMPORT in given else (
        "HARBOR_AGENT_IMPORT_PATH" if any(a.startswith(AGENT_IMPORT + "=") for a in env_args) else None)
    name_from = AGENT_NAME if AGENT_NAME in given else (
        "HARBOR_AGENT_NAME" if any(a.startswith(AGENT_NAME + "=") for a in env_args) else None)
    for role, source in (("name", name_from), ("import_path", path_from)):
        if source:  # rule scaffold-agent refuses a name and a path both asked for (it names both)
            env_args.append(f"+liverl.agent_given.{role}={source}")
    if path_from and not name_from:
        env_args.append(f"{AGENT_NAME}=null")
        out.notes.append("an agent import path without an agent name: HARBOR_AGENT_NAME=null, so Harbor loads the "
                         "import-path class instead of the scaffold's registered agent")


def smoke_shape() -> tuple[int, int]:
    """The smoke batch's prompts x responses, from conf/batch/smoke.yaml."""
    smoke = OmegaConf.load(_BATCH_DIR / "smoke.yaml")
    return int(smoke.train_bsz), int(smoke.n_resp_per_prompt)


def _smoke_batch(out: Arguments, given: dict[str, str]) -> None:
    """8 x 4 asked through the knobs (or TRAIN_BSZ/N_RESP) is batch=smoke: the smoke ledger records it, and an
    official-sized step count does not stay behind."""
    asked = (given.get("train_bsz"), given.get("n_resp_per_prompt"))
    if asked != tuple(str(n) for n in smoke_shape()) or given.get("batch") == "smoke":
        return
    was = given.get("batch")
    out.args = [a for a in out.args if _key(a) != "batch"] + ["batch=smoke"]
    out.notes.append(
        f"train_bsz={asked[0]} x n_resp_per_prompt={asked[1]} is the smoke batch: planning batch=smoke"
        + (f" (instead of batch={was})" if was else " (whatever batch the preset chose)")
        + "; set total_training_steps=N to change its step count"
    )
