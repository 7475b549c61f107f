"""The property test's inputs (tests/test_property.py): for every knob, values that must plan and where each lands,
and values that must be refused and by which check (rule id, key).

The expectations are written here from the knobs' documented contracts (README, conf/, scaling-up.md), not read
from liverl.recipe.knobs: a contract that changes in the code without changing here fails the property.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from liverl.recipe.environ import quote

VERL, AGENT, LIVERL = "verl.yaml", "agent_loop.yaml", "liverl.yaml"  # the plan's files (liverl.recipe.plan)
ASYNC = ("topology=2node",)
REASONS = ["agent_completed", "overlong", "max_turns_reached", "timeout", "env_setup_failed"]  # verl's filter knows


@dataclass(frozen=True)
class Valid:
    """Values of one knob that must plan under `groups`; the value must be found at `key` of the plan's `file`
    (launcher=None: a dryrun plan; a launcher: that launcher's groups, built in-process, see test_property)."""

    values: st.SearchStrategy
    file: str
    key: str
    groups: tuple[str, ...] = ()
    launcher: str | None = None
    render: Callable[[Any], dict[str, Any]] | None = None  # several overrides from one drawn value
    expect: Callable[[Any], Any] = lambda v: v


@dataclass(frozen=True)
class Invalid:
    """Values that must be refused with exit 2, by the check `rule`, naming `key` (default: the knob)."""

    values: st.SearchStrategy
    rule: str = "knob-type"
    groups: tuple[str, ...] = ()
    key: str | None = None
    extra: tuple[str, ...] = field(default=())


def hydra(value: Any) -> str:
    """A Python value as a Hydra override value (strings quoted: any text reaches the knob check)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ",".join(hydra(v) for v in value) + "]"
    return quote(value)


# --- value strategies -----------------------------------------------------------------------------------------
NAME = st.text(st.characters(codec="utf-8", categories=["L", "Nd"]) | st.sampled_from("_-. "), min_size=1,
               max_size=12).filter(lambda s: s.strip() == s and s.strip())
PATH = st.from_regex(r"/[a-z0-9_-]{1,10}(/[a-z0-9_.-]{1,10}){0,2}\.parquet", fullmatch=True)
ENV_NAMES = st.lists(st.from_regex(r"[A-Z_][A-Z0-9_]{0,10}", fullmatch=True), max_size=3)
BOOL = st.booleans()
NOT_NUMBERS = st.one_of(st.sampled_from(["", " ", "abc", "1O", "日本語", "8 "]),
                        st.lists(st.integers(0, 9), max_size=2))
FLOATS = st.floats(allow_nan=True, allow_infinity=True).filter(lambda f: not f.is_integer())


def bad_int(lo: int, hi: int) -> st.SearchStrategy:
    """Not an integer in [lo, hi]: out of range, a float, a boolean, text, null, a list."""
    return st.one_of(st.integers(max_value=lo - 1), st.integers(min_value=hi + 1), FLOATS, st.floats(-1e6, 1e6).map(
        lambda f: float(round(f))), BOOL, NOT_NUMBERS, st.none())


def bad_choice(nullable: bool) -> st.SearchStrategy:
    none = st.nothing() if nullable else st.none()
    return st.one_of(st.sampled_from(["", "yes", "TOKEN", "r3", "1", "日本語"]), st.integers(-2, 2), FLOATS, none,
                     st.lists(st.integers(0, 2), min_size=1, max_size=2))


def bad_text(nullable: bool, lists: bool = True) -> st.SearchStrategy:
    """Not one line of text: blank, several lines, a number, a boolean, null (unless nullable), a list."""
    none = st.nothing() if nullable else st.none()
    as_list = st.lists(st.sampled_from(["a", "b"]), min_size=1, max_size=2) if lists else st.nothing()
    return st.one_of(st.sampled_from(["", " ", "\t", "a\nb"]), st.integers(), FLOATS, BOOL, none, as_list)


BAD_ENV_NAMES = st.one_of(st.sampled_from(["WANDB_API_KEY", "", 3]), st.lists(
    st.sampled_from(["1ABC", "A-B", "", " A", "A B", "ü"]), min_size=1, max_size=2))


# --- valid: must plan, the value reaching the key that reads it ----------------------------------------------
# FSDP's Ulysses key; standard attention: SP > 1 is allowed (qwen35 is linear-attention: SP = 1)
Q3 = ("model=qwen3_30b_a3b", "engine=fsdp")
SMALL = ("model=qwen25_0p5b",)  # fits one GPU: any FSDP group size fits the memory rule
AL = "0.harbor."  # agent_loop.yaml is a list of one agent-loop entry
VALID: dict[str, Valid] = {
    # sync, 4 responses per prompt over 8 data-parallel ranks: an even number of prompts (rule batch-dp-divisible)
    "train_bsz": Valid(st.integers(1, 32_768).map(lambda k: 2 * k), VERL, "data.train_batch_size", ("topology=1node",)),
    "n_resp_per_prompt": Valid(st.integers(1, 1_024), VERL, "actor_rollout_ref.rollout.n"),
    "total_training_steps": Valid(st.integers(1, 10_000_000), VERL, "trainer.total_training_steps"),
    "sp_size": Valid(st.sampled_from([1, 2, 4, 8]), VERL, "actor_rollout_ref.actor.ulysses_sequence_parallel_size", Q3),
    "fsdp_size": Valid(st.sampled_from([1, 2, 4, 8]), VERL, "actor_rollout_ref.actor.fsdp_config.fsdp_size", SMALL),
    "rollout_is": Valid(st.sampled_from([None, "token", "sequence"]), VERL, "algorithm.rollout_correction.rollout_is"),
    "staleness_threshold": Valid(st.one_of(st.integers(0, 1_000), st.floats(0, 1_000)), VERL,
                                 "async_training.staleness_threshold", ASYNC),
    "partial_rollout": Valid(BOOL, VERL, "async_training.partial_rollout", ASYNC),
    # a dense policy: with R3 (the MoE presets) and FSDP2 CPU offload only 1 plans (rule async-offload-version-copy)
    "trigger_parameter_sync_step": Valid(st.integers(1, 10_000), VERL, "async_training.trigger_parameter_sync_step",
                                         (*ASYNC, *SMALL)),
    # train_bsz = require_batches x an even mini-batch (4 responses each over 8 ranks)
    "require_batches": Valid(st.tuples(st.integers(1, 64), st.integers(1, 32)), VERL, "async_training.require_batches",
                             ASYNC, render=lambda v: {"require_batches": v[0], "train_bsz": v[0] * 2 * v[1]},
                             expect=lambda v: v[0]),
    # null is left out: engine=veomni with router_replay=null writes null to verl's string field (a finding, issue 21)
    "router_replay": Valid(st.sampled_from(["disabled", "R2", "R3"]), VERL,
                           "actor_rollout_ref.actor.veomni.router_replay.mode", ("engine=veomni",)),
    "trajectory_filter.enable": Valid(st.sampled_from(["auto", True, False]), LIVERL, "trajectory_filter.enable"),
    "trajectory_filter.drop_reasons": Valid(st.lists(st.sampled_from(REASONS), unique=True), AGENT,
                                            "0.trajectory_filter.drop_reasons", ("topology=1node",)),
    "train_files": Valid(st.one_of(PATH, st.lists(PATH, min_size=1, max_size=3)), VERL, "data.train_files"),
    "val_files": Valid(st.one_of(PATH, st.lists(PATH, min_size=1, max_size=3)), VERL, "data.val_files"),
    "project_name": Valid(NAME, VERL, "trainer.project_name"),
    "experiment_name": Valid(NAME, VERL, "trainer.experiment_name"),
    "model.path": Valid(st.from_regex(r"/[a-z0-9_-]{1,10}(/[A-Za-z0-9_.-]{1,12}){0,2}", fullmatch=True), VERL,
                        "actor_rollout_ref.model.path"),
    "window.prompt": Valid(st.integers(1, 30_000), VERL, "data.max_prompt_length"),
    "window.response": Valid(st.integers(1, 58_304), VERL, "data.max_response_length"),
    "scaffold.harbor.agent_name": Valid(st.sampled_from(["claude-code", None]), AGENT, AL + "agent_name"),
    "scaffold.harbor.agent_import_path": Valid(st.sampled_from(["harbor.agents.installed.aider:Aider",
                                                                "harbor.agents.installed.codex:Codex"]),
                                               AGENT, AL + "agent_import_path", ("scaffold.harbor.agent_name=null",)),
    "scaffold.harbor.max_turns": Valid(st.integers(1, 100_000), AGENT, AL + "max_turns"),
    "scaffold.harbor.agent_timeout_sec": Valid(st.integers(1, 604_800), AGENT, AL + "agent_timeout_sec"),
    "scaffold.harbor.val_agent_timeout_sec": Valid(st.integers(1, 604_800), AGENT, AL + "val_agent_timeout_sec"),
    "scaffold.harbor.environment_type": Valid(st.sampled_from(["docker", "modal", "daytona", None]), AGENT,
                                              AL + "environment_type"),
    "scaffold.harbor.teardown_grace_sec": Valid(st.integers(1, 3_600), AGENT, AL + "teardown_grace_sec"),
    "scaffold.harbor.max_concurrent_trials": Valid(st.integers(1, 100_000), AGENT, AL + "max_concurrent_trials"),
    # a loopback bind is refused with docker (rule proxy-unreachable, the default environment)
    "scaffold.harbor.proxy_bind_host": Valid(st.sampled_from(["auto", "0.0.0.0"]), AGENT, AL + "proxy_bind_host"),
    "cluster.host_memory_gib": Valid(st.integers(4_096, 100_000), LIVERL, "cluster.host_memory_gib"),
    "gpu.name": Valid(st.sampled_from(["h100", "h200", "a100_80gb", "b200"]), LIVERL, "gpu.name"),
    "gpu.memory_bytes": Valid(st.integers(150 * 2**30, 2**44), LIVERL, "gpu.memory_bytes"),
    "liverl.allow": Valid(st.lists(st.sampled_from(["memory-fit", "rollout-is", "val-timeout", "paths-exist"]),
                                   unique=True, max_size=3), LIVERL, "liverl.allow"),
    "verl.source": Valid(st.sampled_from(["auto", "installed"]), LIVERL, "verl.source"),
    # launchers: each key under a launcher that has it (conf/launcher/*.yaml); slurm without submitting
    **{f"launcher.{k}": Valid(s, LIVERL, f"launcher.{k}", ("launcher.submit=false",), launcher="slurm")
       for k, s in {"partition": NAME | st.none(), "account": NAME | st.none(), "time": st.sampled_from(
           ["24:00:00", "1-00:00:00", "30"]), "python": st.sampled_from(["python", "/usr/bin/python3", None]),
           "ray_port": st.integers(1, 65_535), "bringup_timeout": st.integers(1, 86_400),
           "sbatch_args": st.lists(st.sampled_from(["--qos=high", "--mem=0", "--exclusive"]), max_size=2)}.items()},
    "launcher.submit": Valid(st.just(False), LIVERL, "launcher.submit", launcher="slurm"),
    **{f"launcher.{k}": Valid(s, LIVERL, f"launcher.{k}", launcher="ray_job")
       for k, s in {"wait": BOOL, "upload_code": BOOL, "send_env": ENV_NAMES,
                    "address": st.sampled_from(["http://head:8265", "http://10.0.0.1:8265", None])}.items()},
    "launcher.forward_env": Valid(ENV_NAMES, LIVERL, "launcher.forward_env", launcher="local"),
}

# --- invalid: refused with exit 2 by the check that owns it ---------------------------------------------------
INVALID: dict[str, Invalid] = {
    "train_bsz": Invalid(bad_int(1, 65_536)),
    "n_resp_per_prompt": Invalid(bad_int(1, 1_024)),
    "total_training_steps": Invalid(bad_int(1, 10_000_000)),
    "sp_size": Invalid(bad_int(1, 256)),
    "fsdp_size": Invalid(bad_int(1, 65_536)),
    "rollout_is": Invalid(bad_choice(nullable=True)),
    "staleness_threshold": Invalid(st.one_of(st.floats(max_value=-1e-9), st.floats(min_value=1000.001), st.just(
        math.nan), BOOL, NOT_NUMBERS, st.none()), groups=ASYNC),
    "partial_rollout": Invalid(bad_choice(nullable=False), groups=ASYNC),
    "trigger_parameter_sync_step": Invalid(bad_int(1, 10_000), groups=ASYNC),
    "require_batches": Invalid(bad_int(1, 65_536), groups=ASYNC),
    "router_replay": Invalid(bad_choice(nullable=True), groups=("engine=veomni",)),
    "trajectory_filter.enable": Invalid(bad_choice(nullable=False)),
    "trajectory_filter.drop_reasons": Invalid(st.one_of(st.sampled_from(["timeout", 3, None]), st.lists(
        st.sampled_from(["Timeout", "crash", "", "overlong "]), min_size=1, max_size=2))),
    "train_files": Invalid(st.one_of(bad_text(False, lists=False), st.just([]), st.just([""]))),
    "val_files": Invalid(st.one_of(bad_text(False, lists=False), st.just([]), st.just(["a", " "]))),
    "project_name": Invalid(bad_text(nullable=False)),
    "experiment_name": Invalid(bad_text(nullable=False)),
    "model.path": Invalid(bad_text(nullable=False)),
    "window.prompt": Invalid(bad_int(1, 10_000_000)),
    "window.response": Invalid(bad_int(1, 10_000_000)),
    "scaffold.harbor.agent_name": Invalid(bad_text(nullable=True)),
    "scaffold.harbor.agent_import_path": Invalid(st.one_of(st.sampled_from(
        ["harbor.agents.installed.aider", "Aider", "a.b:", ":C", "a b:C", "a.b:C.D"]), bad_text(nullable=False))),
    "scaffold.harbor.max_turns": Invalid(bad_int(1, 100_000)),
    "scaffold.harbor.agent_timeout_sec": Invalid(bad_int(1, 604_800)),
    "scaffold.harbor.val_agent_timeout_sec": Invalid(bad_int(1, 604_800)),
    "scaffold.harbor.environment_type": Invalid(bad_text(nullable=True)),
    "scaffold.harbor.teardown_grace_sec": Invalid(bad_int(1, 3_600)),
    "scaffold.harbor.max_concurrent_trials": Invalid(st.one_of(st.integers(max_value=0), st.integers(
        min_value=100_001), FLOATS, BOOL, NOT_NUMBERS)),
    "scaffold.harbor.proxy_bind_host": Invalid(bad_text(nullable=False)),
    "cluster.host_memory_gib": Invalid(st.one_of(st.integers(max_value=0), st.integers(min_value=100_001), BOOL,
                                                 NOT_NUMBERS)),
    "gpu.name": Invalid(bad_choice(nullable=False)),
    "gpu.memory_bytes": Invalid(bad_int(2**30, 2**50)),
    "liverl.allow": Invalid(st.one_of(st.sampled_from(["memory-fit", 3]), st.lists(st.sampled_from(["", " ", 1]),
                                                                                 min_size=1, max_size=2))),
    "verl.source": Invalid(bad_text(nullable=False)),
    **{f"launcher.{k}": Invalid(s, groups=("launcher=slurm", "launcher.submit=false"))
       for k, s in {"partition": bad_text(True), "account": bad_text(True), "time": bad_text(False),
                    "python": bad_text(True), "ray_port": bad_int(1, 65_535), "bringup_timeout": bad_int(1, 86_400),
                    "sbatch_args": st.one_of(st.just("--qos=high"), st.lists(st.sampled_from(["", "a\nb", 3]),
                                                                             min_size=1, max_size=2))}.items()},
    "launcher.submit": Invalid(bad_choice(nullable=False), groups=("launcher=slurm",)),
    **{f"launcher.{k}": Invalid(s, groups=("launcher=ray_job",))
       for k, s in {"wait": bad_choice(False), "upload_code": bad_choice(False), "send_env": BAD_ENV_NAMES,
                    "address": bad_text(True)}.items()},
    "launcher.forward_env": Invalid(BAD_ENV_NAMES, groups=("launcher=local",)),
}

# refusals owned by other checks than the knob's type: (overrides, rule, key named)
CROSS: list[tuple[tuple[str, ...], str, str]] = [
    *((("topology=1node", f"{k}={v}"), "unused-knob", k) for k, v in [
        ("staleness_threshold", 1), ("partial_rollout", "true"), ("trigger_parameter_sync_step", 2),
        ("require_batches", 1)]),
    (("engine=fsdp", "router_replay=R3"), "unused-knob", "router_replay"),
    *(((f"launcher={launcher}", f"launcher.{k}={v}"), "config", f"launcher.{k}") for launcher, k, v in [
        ("dryrun", "wait", "true"), ("dryrun", "address", "null"), ("local", "sbatch_args", "[]"),
        ("ray_job", "ray_port", 6379), ("slurm", "upload_code", "true"), ("local", "submit", "false")]),
    (("topology=2node", "train_bsz=10", "require_batches=4"), "interpolation", "train_bsz, require_batches"),
    (("topology=1node", "train_bsz=3"), "batch-dp-divisible", "train_bsz, n_resp_per_prompt"),
    (("model=qwen35", "sp_size=2"), "linear-attention-sp", "sp_size"),
    (("model=qwen25_0p5b", "fsdp_size=3"), "fsdp-fits", "fsdp_size"),
    (("topology=3node", "trigger_parameter_sync_step=2"), "async-offload-version-copy", "trigger_parameter_sync_step"),
]
