"""Guardrails: every known way a run goes wrong, checked on the built verl config before anything launches.

Each rule has a stable id and yields findings: FATAL blocks the launch (waivable only by naming the rule id in
`liverl.allow=[...]`), WARN is printed and written to the run directory, SKIP says what could not be checked
here and why. `python -m liverl.check [--structure-only] [--all] [overrides]` reports without launching.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from liverl.environ import arguments
from liverl.errors import CONFIG_ERROR_EXIT, ConfigError, Problem, did_you_mean

FATAL, WARN, SKIP, WAIVED = "FATAL", "WARN", "SKIP", "WAIVED"

# Every key verl reads for Ulysses sequence parallelism (actor engine key, the deprecated actor key the
# reference model follows, the ref's copies, VeOmni's).
SP_KEYS = (
    "actor_rollout_ref.actor.ulysses_sequence_parallel_size",
    "actor_rollout_ref.actor.fsdp_config.ulysses_sequence_parallel_size",
    "actor_rollout_ref.ref.ulysses_sequence_parallel_size",
    "actor_rollout_ref.ref.fsdp_config.ulysses_sequence_parallel_size",
    "actor_rollout_ref.actor.veomni.ulysses_parallel_size",
    "actor_rollout_ref.ref.veomni.ulysses_parallel_size",
)
ROUTER_REPLAY_KEY = "actor_rollout_ref.actor.veomni.router_replay.mode"
ROLLOUT_REPLAY_KEY = "actor_rollout_ref.rollout.enable_rollout_routing_replay"
TOOL_PARSER_KEY = "actor_rollout_ref.rollout.engine_kwargs.vllm.tool-call-parser"
# termination reasons the new verl's trajectory filter knows
TRAJ_FILTER_REASONS = ("agent_completed", "overlong", "max_turns_reached", "timeout", "env_setup_failed")
# sequence-level IS: ESS ~0.06 measured on ~54k-token responses; warn from 16k on
LONG_RESPONSE_TOKENS = 16384
# a 35B-class policy on one 8-GPU trainer node with a >=120k window peaks at ~149 GB on a 139.8 GB GPU
BIG_MODEL_B, BIG_WINDOW = 30, 120_000
SMOKE, OFFICIAL = (8, 4), (64, 8)
LEDGER_ENV = "LIVERL_SMOKE_LEDGER"


def batch_shape(verl_cfg: DictConfig, mode: str) -> tuple[int, int]:
    """(prompts, responses per prompt) that reach the trainer each step, read from the verl config."""
    n = verl_cfg.actor_rollout_ref.rollout.n
    if mode == "fully_async":
        return verl_cfg.actor_rollout_ref.actor.ppo_mini_batch_size * verl_cfg.async_training.require_batches, n
    return verl_cfg.data.train_batch_size, n


@dataclass
class Ctx:
    """What a rule may look at: the LiveRL and verl configs, and how much of this machine it may use."""

    cfg: DictConfig
    verl: DictConfig
    features: dict[str, bool]
    verl_label: str
    structure_only: bool = False
    launching: bool = False
    # the Ray cluster a launch goes to (None: launcher.address or RAY_ADDRESS)
    address: str | None = None

    def v(self, key: str, default: Any = None) -> Any:
        return OmegaConf.select(self.verl, key, default=default)

    @property
    def mode(self) -> str:
        return self.cfg.mode.name

    @property
    def trainer_gpus(self) -> int:
        return self.verl.trainer.nnodes * self.verl.trainer.n_gpus_per_node

    @property
    def sp(self) -> int:
        key = (
            "actor_rollout_ref.actor.veomni.ulysses_parallel_size"
            if self.cfg.engine.name == "veomni"
            else "actor_rollout_ref.actor.ulysses_sequence_parallel_size"
        )
        return int(self.v(key, 1))

    @cached_property
    def hf_config(self) -> dict[str, Any] | None:
        """The checkpoint's config.json (text part for multimodal configs), or None when it is not on this disk."""
        path = Path(str(self.cfg.model.path)).expanduser() / "config.json"
        if self.structure_only or not path.is_file():
            return None
        raw = json.loads(path.read_text())
        for nested in ("text_config", "llm_config"):
            if isinstance(raw.get(nested), dict):
                raw = {**raw, **raw[nested]}
        return raw

    def checkpoint_unavailable(self) -> str:
        return (
            "structure-only mode: the checkpoint is not read"
            if self.structure_only
            else f"no config.json under model.path={self.cfg.model.path} on this disk"
        )

    @property
    def is_moe(self) -> bool:
        """From the checkpoint when it is here, else what the model group declares."""
        hf = self.hf_config
        if hf is None:
            return bool(self.cfg.model.moe)
        keys = ("num_experts", "n_routed_experts", "num_local_experts", "moe_intermediate_size", "num_experts_per_tok")
        return str(hf.get("model_type", "")).endswith("_moe") or any(hf.get(k) for k in keys)


Rule = Callable[[Ctx], Iterable[Problem]]
RULES: dict[str, Rule] = {}
TITLES: dict[str, str] = {}


def rule(rule_id: str, title: str) -> Callable[[Rule], Rule]:
    def register(fn: Rule) -> Rule:
        RULES[rule_id] = fn
        TITLES[rule_id] = title
        return fn

    return register


def finding(severity: str, key: str, got: Any, reason: str, fix: str) -> Problem:
    return Problem(key=key, message=reason, fix=fix, got=got, severity=severity)


def run_rules(ctx: Ctx) -> list[Problem]:
    """Every rule over the context; each finding stamped with its rule id."""
    out = []
    for rule_id, fn in RULES.items():
        try:
            out += [dataclasses.replace(f, rule=rule_id) for f in fn(ctx)]
        except (TypeError, ValueError, ArithmeticError, AttributeError, KeyError) as exc:  # a value of a wrong kind
            out.append(
                Problem(
                    key="verl config",
                    message=f"this rule cannot judge the config ({TITLES[rule_id]}): {type(exc).__name__}: {exc}",
                    fix="correct the verl.* values this rule reads (a null, zero or wrong-typed size or count)",
                    rule=rule_id,
                )
            )
    return out


def apply_waivers(findings: list[Problem], allow: Iterable[str]) -> tuple[list[Problem], list[Problem]]:
    """Split findings into (blocking FATALs, the rest); FATALs named in `allow` become WAIVED."""
    allow = set(allow)
    unknown = sorted(allow - set(RULES))
    if unknown:
        raise ConfigError(
            [
                Problem(
                    key="liverl.allow",
                    message=f"'{u}' is not a guardrail rule id; {did_you_mean(u, RULES)}",
                    got=u,
                    fix="name rule ids from `python -m liverl.check --rules`",
                    rule="config",
                )
                for u in unknown
            ]
        )
    blocking, rest = [], []
    for f in findings:
        if f.severity == FATAL and f.rule in allow:
            rest.append(dataclasses.replace(f, severity=WAIVED))
        elif f.severity == FATAL:
            blocking.append(f)
        else:
            rest.append(f)
    return blocking, rest


# --- 1. sequence parallel


@rule("linear-attention-sp", "Qwen3.5 (GatedDeltaNet): Ulysses SP is 1 on every key verl reads")
def _linear_attention_sp(c: Ctx) -> Iterable[Problem]:
    if not c.cfg.model.linear_attention:
        return
    wrong = {k: c.v(k) for k in SP_KEYS if c.v(k, 1) != 1}
    if wrong:
        from_knob = c.cfg.sp_size != 1
        yield finding(
            FATAL,
            "sp_size" if from_knob else f"verl.{next(iter(wrong))}",
            c.cfg.sp_size if from_knob else next(iter(wrong.values())),
            f"must be 1 for {c.cfg.model.name}: Ulysses sequence parallel corrupts the GatedDeltaNet "
            "(linear-attention) layers, silently (wrong activations, no crash); verl would read SP>1 from "
            f"{', '.join(wrong)}",
            "keep sp_size=1 (and leave verl's SP keys alone); fit long windows with more trainer GPUs (topology=3node, "
            "fsdp_size) and CPU optimizer offload",
        )


@rule("sp-divides", "SP divides the trainer GPUs and the attention heads")
def _sp_divides(c: Ctx) -> Iterable[Problem]:
    sp = c.sp
    if sp > 1 and c.trainer_gpus % sp:
        yield finding(
            FATAL,
            "sp_size",
            sp,
            f"Ulysses SP {sp} does not divide the {c.trainer_gpus} trainer GPUs: the "
            "device mesh assertion fails at worker start",
            "choose an sp_size that divides the trainer GPUs",
        )
    if sp > 1:
        hf = c.hf_config
        if hf is None:
            yield finding(
                SKIP,
                "sp_size",
                sp,
                f"SP vs attention heads not checked: {c.checkpoint_unavailable()}",
                "run `python -m liverl.check` where the checkpoint is",
            )
            return
        heads, kv = hf.get("num_attention_heads"), hf.get("num_key_value_heads") or hf.get("num_attention_heads")
        if heads and (heads % sp or (kv % sp and sp % kv)):
            yield finding(
                FATAL,
                "sp_size",
                sp,
                f"SP {sp} must divide the attention heads ({heads}) and divide or be a "
                f"multiple of the key-value heads ({kv}); verl asserts this when it patches the model",
                "choose an sp_size that fits the heads",
            )


# --- 2. topology arithmetic


@rule("topology-nodes", "nodes = trainer nodes + rollout nodes")
def _topology_nodes(c: Ctx) -> Iterable[Problem]:
    t = c.cfg.topology
    if t.nnodes != t.trainer_nnodes + t.rollout_nnodes:
        yield finding(
            FATAL,
            "topology.nnodes",
            t.nnodes,
            f"nodes must equal trainer nodes ({t.trainer_nnodes}) + "
            f"rollout nodes ({t.rollout_nnodes}): Ray placement would wait for nodes that never come",
            "fix the topology file, or set topology.trainer_nnodes/topology.rollout_nnodes consistently",
        )


@rule("fsdp-fits", "the FSDP group size divides the trainer GPUs")
def _fsdp_fits(c: Ctx) -> Iterable[Problem]:
    key = (
        "actor_rollout_ref.actor.veomni.fsdp_size"
        if c.cfg.engine.name == "veomni"
        else "actor_rollout_ref.actor.fsdp_config.fsdp_size"
    )
    size = c.v(key)
    if size not in (None, -1) and (size > c.trainer_gpus or c.trainer_gpus % size):
        yield finding(
            FATAL,
            "fsdp_size",
            size,
            f"FSDP group size {size} must divide the {c.trainer_gpus} trainer GPUs "
            f"({c.verl.trainer.nnodes} node(s) x {c.verl.trainer.n_gpus_per_node}): the device mesh cannot be "
            "built",
            f"use fsdp_size={c.trainer_gpus} (all trainer GPUs) or a divisor of it",
        )


@rule("rollout-parallel-fits", "rollout TP x DP divides the rollout GPUs")
def _rollout_fits(c: Ctx) -> Iterable[Problem]:
    r = c.verl.actor_rollout_ref.rollout
    gpus = (c.verl.rollout.nnodes * c.verl.rollout.n_gpus_per_node) if c.mode == "fully_async" else c.trainer_gpus
    per_replica = r.tensor_model_parallel_size * r.data_parallel_size
    if per_replica > gpus or gpus % per_replica:
        yield finding(
            FATAL,
            "verl.actor_rollout_ref.rollout.tensor_model_parallel_size",
            per_replica,
            f"rollout TP x DP ({r.tensor_model_parallel_size} x {r.data_parallel_size}) must divide the "
            f"{gpus} rollout GPUs: vLLM replicas cannot be placed",
            "set model.rollout_tp (or verl.actor_rollout_ref.rollout.tensor_model_parallel_size) to a divisor",
        )


@rule("rollout-tp-kv-heads", "rollout TP fits the checkpoint's key-value heads")
def _tp_kv(c: Ctx) -> Iterable[Problem]:
    tp = c.verl.actor_rollout_ref.rollout.tensor_model_parallel_size
    hf = c.hf_config
    if hf is None:
        yield finding(
            SKIP,
            "model.rollout_tp",
            tp,
            f"TP vs key-value heads not checked: {c.checkpoint_unavailable()}",
            "run `python -m liverl.check` where the checkpoint is",
        )
        return
    kv = hf.get("num_key_value_heads") or hf.get("num_attention_heads")
    if kv and kv % tp and tp % kv:
        yield finding(
            FATAL,
            "model.rollout_tp",
            tp,
            f"rollout TP {tp} does not fit the checkpoint's {kv} key-value "
            "heads: vLLM fails with a CUDA illegal memory access at the first forward",
            f"use a TP that divides {kv}",
        )


# --- 3. fully-async invariants (verl asserts them inside Ray actors, after the cluster is up)


@rule("fully-async-invariant", "what verl's fully-async actors assert at run time")
def _async_invariants(c: Ctx) -> Iterable[Problem]:
    if c.mode != "fully_async":
        return
    want = {
        "data.train_batch_size": (lambda x: x == 0, "== 0"),
        "data.gen_batch_size": (lambda x: x == 1, "== 1"),
        "actor_rollout_ref.hybrid_engine": (lambda x: x is False, "false (dedicated rollout GPUs)"),
        "actor_rollout_ref.rollout.calculate_log_probs": (lambda x: x is True, "true"),
        "actor_rollout_ref.rollout.mode": (lambda x: x == "async", "async"),
        "async_training.staleness_threshold": (lambda x: x is not None and x >= 0, ">= 0"),
        "async_training.trigger_parameter_sync_step": (lambda x: x is not None and x >= 1, ">= 1"),
        "rollout.nnodes": (lambda x: x is not None and x > 0, "> 0"),
        "rollout.n_gpus_per_node": (lambda x: x is not None and x > 0, "> 0"),
    }
    for key, (ok, text) in want.items():
        if not ok(c.v(key)):
            yield finding(
                FATAL,
                f"verl.{key}",
                c.v(key),
                f"verl's fully-async trainer asserts {key} {text} inside a "
                "Ray actor, after the cluster and vLLM are up",
                f"leave {key} to LiveRL's topology ({text})",
            )


@rule("sync-hybrid-engine", "the synchronous trainer runs with the hybrid engine")
def _sync_hybrid(c: Ctx) -> Iterable[Problem]:
    if c.mode == "sync" and c.v("actor_rollout_ref.hybrid_engine") is not True:
        yield finding(
            FATAL,
            "verl.actor_rollout_ref.hybrid_engine",
            c.v("actor_rollout_ref.hybrid_engine"),
            "the synchronous trainer colocates vLLM with the trainer and requires the hybrid engine",
            "leave it true, or use a fully-async topology (topology=2node|3node) for dedicated rollout GPUs",
        )


@rule("async-rollout-n-unused", "the fully-async top-level rollout.n is read by no code")
def _rollout_n_unused(c: Ctx) -> Iterable[Problem]:
    top = c.v("rollout.n")
    if (
        c.mode == "fully_async"
        and top is not None
        and top != c.v("actor_rollout_ref.rollout.n")
        and "n" in (c.cfg.verl.get("rollout") or {})
    ):
        yield finding(
            WARN,
            "verl.rollout.n",
            top,
            "the fully-async config's top-level rollout.n is read by no verl "
            "code; responses per prompt come from actor_rollout_ref.rollout.n",
            "use n_resp_per_prompt=N",
        )


# --- 4. batch arithmetic


@rule("batch-reach", "train_bsz x n_resp_per_prompt is what the trainer gets")
def _batch_reach(c: Ctx) -> Iterable[Problem]:
    prompts, n = batch_shape(c.verl, c.mode)
    where = (
        "actor_rollout_ref.actor.ppo_mini_batch_size x async_training.require_batches"
        if c.mode == "fully_async"
        else "data.train_batch_size"
    )
    if prompts != c.cfg.train_bsz:
        yield finding(
            FATAL,
            f"verl.{where}",
            prompts,
            f"the trainer would get {prompts} prompts per step, not train_bsz={c.cfg.train_bsz}",
            "set the batch with train_bsz=N (or batch=smoke|official), not verl keys",
        )
    if n != c.cfg.n_resp_per_prompt:
        yield finding(
            FATAL,
            "verl.actor_rollout_ref.rollout.n",
            n,
            f"the trainer would get {n} responses per prompt, not n_resp_per_prompt={c.cfg.n_resp_per_prompt}",
            "set n_resp_per_prompt=N, not the verl key",
        )


@rule("batch-dp-divisible", "each update's trajectories split over the data-parallel ranks")
def _batch_dp(c: Ctx) -> Iterable[Problem]:
    mini = c.verl.actor_rollout_ref.actor.ppo_mini_batch_size * c.verl.actor_rollout_ref.rollout.n
    dp = max(1, c.trainer_gpus // max(1, c.sp))
    if mini % dp:
        yield finding(
            FATAL,
            "train_bsz, n_resp_per_prompt",
            f"{c.cfg.train_bsz} x {c.cfg.n_resp_per_prompt}",
            f"each update's {mini} trajectories (mini-batch x responses) must split evenly over the "
            f"{dp} data-parallel trainer ranks: verl asserts it at the first update, after rollouts ran",
            f"make (prompts per mini-batch x n_resp_per_prompt) a multiple of {dp}",
        )


@rule("mini-batch-le-batch", "the PPO mini-batch fits in the batch")
def _mini_le_batch(c: Ctx) -> Iterable[Problem]:
    if c.mode == "sync" and c.verl.actor_rollout_ref.actor.ppo_mini_batch_size > c.verl.data.train_batch_size:
        yield finding(
            FATAL,
            "verl.actor_rollout_ref.actor.ppo_mini_batch_size",
            c.verl.actor_rollout_ref.actor.ppo_mini_batch_size,
            f"the PPO mini-batch cannot exceed the {c.verl.data.train_batch_size}-prompt batch",
            "lower the mini-batch or raise train_bsz",
        )


@rule("batch-size-named", "smoke = 8x4 and official = 64x8 unless deliberately changed")
def _batch_named(c: Ctx) -> Iterable[Problem]:
    named = {"smoke": SMOKE, "official": OFFICIAL}.get(c.cfg.batch.name)
    actual = (c.cfg.train_bsz, c.cfg.n_resp_per_prompt)
    if named and actual != named:
        yield finding(
            WARN,
            "batch",
            f"{actual[0]} x {actual[1]}",
            f"batch={c.cfg.batch.name} is {named[0]} x "
            f"{named[1]}, but this run was changed to {actual[0]} x {actual[1]} prompts x responses",
            "fine if deliberate; otherwise drop the train_bsz / n_resp_per_prompt (TRAIN_BSZ / N_RESP) override",
        )


# --- 5. new-verl capabilities


@rule("traj-filter-reasons", "trajectory-filter drop reasons are ones the filter knows")
def _traj_reasons(c: Ctx) -> Iterable[Problem]:
    unknown = [r for r in c.cfg.trajectory_filter.drop_reasons if r not in TRAJ_FILTER_REASONS]
    if unknown:
        yield finding(
            FATAL,
            "trajectory_filter.drop_reasons",
            unknown,
            "unknown termination reasons never match, so those trajectories would silently be kept",
            f"use reasons from: {', '.join(TRAJ_FILTER_REASONS)}",
        )


@rule("router-replay-unvalidated", "VeOmni router replay runs on the validated (new) verl")
def _rr_unvalidated(c: Ctx) -> Iterable[Problem]:
    if c.v(ROUTER_REPLAY_KEY) not in (None, "disabled") and "checkout" not in c.verl_label:
        yield finding(
            WARN,
            "verl.source",
            c.verl_label,
            "VeOmni router replay on the installed verl is unvalidated: the "
            "new verl has the engine-worker R3 wiring and the async-rollouter routed_experts fixes",
            "USE_NEW_VERL=1 NEW_VERL_DIR=/path/to/new-verl",
        )


# --- 6. router replay vs the policy


@rule("router-replay-policy", "router replay matches the policy (MoE or dense) and the engine")
def _rr_policy(c: Ctx) -> Iterable[Problem]:
    mode, rollout = c.v(ROUTER_REPLAY_KEY), c.v(ROLLOUT_REPLAY_KEY)
    source = "config.json" if c.hf_config is not None else f"model={c.cfg.model.name}"
    if mode in ("R2", "R3") and not c.is_moe:
        yield finding(
            FATAL,
            "router_replay",
            mode,
            f"router replay on a dense checkpoint ({source}): it fails deep "
            "into startup ('router replay is not wired for model_type') or trains silently without replay",
            "router_replay=disabled for dense models",
        )
    if c.is_moe and c.cfg.engine.name == "veomni" and mode in (None, "disabled"):
        yield finding(
            WARN,
            "router_replay",
            mode,
            "MoE policy without R3: training re-routes tokens the rollout routed "
            "differently; routing coverage collapses (~24% vs 100% measured)",
            "router_replay=R3",
        )
    if c.is_moe and c.cfg.engine.name == "fsdp":
        yield finding(
            WARN,
            "engine",
            "fsdp",
            "MoE policy on FSDP: verl 0.9.1 forces router replay off for FSDP, so rollout and training routing diverge",
            "engine=veomni (R3 router replay)",
        )
    if rollout and c.cfg.engine.name == "fsdp":
        yield finding(
            FATAL,
            f"verl.{ROLLOUT_REPLAY_KEY}",
            rollout,
            "the rollout records routing for R3, but verl 0.9.1 "
            "forces router replay off on the FSDP engine: the routes are never replayed",
            "engine=veomni for R3, or leave enable_rollout_routing_replay false",
        )
    if mode == "R3" and not rollout:
        yield finding(
            FATAL,
            f"verl.{ROLLOUT_REPLAY_KEY}",
            rollout,
            "R3 replays the rollout's routing, which the rollout only records with enable_rollout_routing_replay=true",
            "leave it to engine=veomni (true with R3)",
        )
    if mode == "R2" and c.v("algorithm.rollout_correction.bypass_mode"):
        yield finding(
            FATAL,
            "router_replay",
            mode,
            "R2 records routes while recomputing old log-probs, which bypass mode (the fully-async default) skips",
            "router_replay=R3, or verl.algorithm.rollout_correction.bypass_mode=false",
        )


# --- 7. VeOmni engine


@rule("veomni-fused-offload", "VeOmni: fused kernels and activation offload off")
def _veomni_fused(c: Ctx) -> Iterable[Problem]:
    if c.cfg.engine.name != "veomni":
        return
    for key in ("actor_rollout_ref.model.use_fused_kernels", "actor_rollout_ref.model.enable_activation_offload"):
        if c.v(key):
            yield finding(
                FATAL,
                f"verl.{key}",
                True,
                "VeOmni's backward crashes with 'storage of size 0' after the FSDP2 reshard when this is on",
                f"verl.{key}=false",
            )


# --- 8. scaffold


@rule("scaffold-agent", "Harbor agent name and import path fit the scaffold")
def _scaffold_agent(c: Ctx) -> Iterable[Problem]:
    h = c.cfg.scaffold.harbor
    if c.cfg.scaffold.name == "ohsdk" and h.agent_name not in (None, "", "null"):
        yield finding(
            FATAL,
            "scaffold.harbor.agent_name",
            h.agent_name,
            "a registered agent name wins over the import "
            "path: Harbor installs the OpenHands SDK into an in-pod venv, which fails on no-egress task pods, "
            "so every trajectory ends env_setup_failed",
            "HARBOR_AGENT_NAME=null (scaffold.harbor.agent_name=null) to load the image-mounted import-path class",
        )
    if h.agent_import_path is not None and not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", str(h.agent_import_path)):
        yield finding(
            FATAL,
            "scaffold.harbor.agent_import_path",
            h.agent_import_path,
            "Harbor loads custom agents as 'module.path:Class'; this cannot be imported",
            "use the form package.module:ClassName",
        )
    if c.cfg.scaffold.name == "claude_code" and h.agent_name not in ("claude-code",):
        yield finding(
            WARN,
            "scaffold.harbor.agent_name",
            h.agent_name,
            "the claude-code scaffold expects Harbor's "
            "'claude-code' agent; another name (or null: the import-path class) runs a different harness",
            "HARBOR_AGENT_NAME=claude-code, unless the import-path class is deliberate",
        )


# --- 9. tool-call parser x model x scaffold


def required_parser(model: str, scaffold: str) -> str | None:
    """The vLLM tool-call parser a model needs under a scaffold (None: no known requirement)."""
    m = model.lower()
    if re.search(r"qwen3[._-]?[56]|qwen3[56]", m):
        return "qwen3_coder"
    if re.search(r"qwen3[._-]?30b[._-]?a3b", m):
        return "qwen3_coder" if scaffold == "claude_code" else "hermes"
    return None


@rule("tool-call-parser", "the tool-call parser fits model x scaffold")
def _tool_parser(c: Ctx) -> Iterable[Problem]:
    need = required_parser(f"{c.cfg.model.name} {c.cfg.model.path}", c.cfg.scaffold.name)
    have = c.v(TOOL_PARSER_KEY)
    if need and have != need:
        yield finding(
            FATAL,
            f"model.tool_call_parser.{c.cfg.scaffold.name}",
            have,
            f"{c.cfg.model.name} under "
            f"{c.cfg.scaffold.name} needs the '{need}' parser: otherwise 100% of tool calls fail to parse and "
            "step 0 dies with an empty response mask",
            f"model.tool_call_parser.{c.cfg.scaffold.name}={need}",
        )


# --- 10. rollout correction


@rule("rollout-is", "rollout importance sampling is null, token or sequence (not sequence on long responses)")
def _rollout_is(c: Ctx) -> Iterable[Problem]:
    value = c.v("algorithm.rollout_correction.rollout_is")
    if value not in (None, "token", "sequence"):
        yield finding(
            FATAL,
            "rollout_is",
            value,
            "verl accepts any value at config time and fails only when it computes the first IS weights",
            "rollout_is=null, token or sequence",
        )
    elif value == "sequence" and c.verl.data.max_response_length >= LONG_RESPONSE_TOKENS:
        yield finding(
            WARN,
            "rollout_is",
            value,
            f"sequence-level IS on responses up to {c.verl.data.max_response_length} "
            "tokens: the effective sample size collapses (ESS ~0.06 measured on ~54k tokens)",
            "rollout_is=token, or rollout_is=null",
        )


# --- 11. learning-rate schedule


@rule("lr-schedule-steps", "a decaying lr schedule knows the total steps")
def _lr_steps(c: Ctx) -> Iterable[Problem]:
    sched = c.v("actor_rollout_ref.actor.optim.lr_scheduler_type")
    steps = c.v("trainer.total_training_steps") if c.mode == "sync" else c.v("rollout.total_rollout_steps")
    if sched not in (None, "constant") and steps in (None, -1):
        yield finding(
            FATAL,
            "verl.actor_rollout_ref.actor.optim.lr_scheduler_type",
            sched,
            f"a {sched} schedule decays "
            "over the total training steps, which are unknown here (-1): the lr collapses to 0 and the "
            "model freezes",
            "set total_training_steps=N, or lr_scheduler_type=constant",
        )


# --- 12. memory


@rule("memory-window", "a 35B-class policy with a >=120k window has two trainer nodes")
def _memory(c: Ctx) -> Iterable[Problem]:
    window = c.verl.data.max_prompt_length + c.verl.data.max_response_length
    if c.cfg.model.params_b >= BIG_MODEL_B and c.verl.trainer.nnodes == 1 and window >= BIG_WINDOW:
        yield finding(
            FATAL,
            "topology, window",
            f"{c.cfg.topology.name}, {window}",
            f"a {c.cfg.model.params_b}B policy "
            f"on one trainer node with a {window}-token window peaks at ~149 GB on a 139.8 GB GPU (~122 GB "
            "on two trainer nodes): OOM in the first backward",
            "topology=3node (2 trainer nodes), or a window under 120k (window.response=58304)",
        )


# --- 13. smoke before official


def ledger_path() -> Path:
    return Path(os.environ.get(LEDGER_ENV) or Path.home() / ".liverl" / "smoke_ledger.json")


def read_ledger() -> dict[str, Any]:
    """The recorded smoke passes, keyed by scaffold|topology|cluster (empty before the first one)."""
    path = ledger_path()
    return json.loads(path.read_text()) if path.is_file() else {}


def cluster_id(address: str | None) -> str:
    """The Ray cluster a run goes to: its address, or this machine for an embedded Ray."""
    return address if address and address != "local" else f"local:{os.uname().nodename}"


def smoke_key(cfg: DictConfig, address: str | None) -> str:
    return f"{cfg.scaffold.name}|{cfg.topology.name}|{cluster_id(address)}"


def record_smoke_pass(cfg: DictConfig, run_dir: Path, address: str | None) -> None:
    """Remember that a smoke run passed on this scaffold x topology x cluster (official runs need one)."""
    path = ledger_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    ledger = read_ledger()
    ledger[smoke_key(cfg, address)] = {"run_dir": str(run_dir), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(ledger, indent=2) + "\n")
    tmp.replace(path)


@rule("smoke-before-official", "an official run follows a passing smoke run on the same scaffold/topology/cluster")
def _smoke_first(c: Ctx) -> Iterable[Problem]:
    if c.cfg.batch.name != "official":
        return
    key = smoke_key(c.cfg, c.address or c.cfg.launcher.get("address") or os.environ.get("RAY_ADDRESS"))
    if not c.launching or c.structure_only:
        yield finding(
            SKIP,
            "batch",
            "official",
            f"smoke ledger not consulted ({'structure-only' if c.structure_only else 'nothing is launched'}); "
            f"a launch needs a passing smoke run for {key}",
            "run batch=smoke on this scaffold/topology/cluster first",
        )
        return
    path = ledger_path()
    ledger = read_ledger()
    if key not in ledger:
        yield finding(
            FATAL,
            "batch",
            "official",
            f"no passing smoke run recorded for {key} (ledger {path}): an "
            "official run on an unvalidated scaffold/cluster burns GPU-days on plumbing failures",
            "run batch=smoke first (same scaffold/topology/cluster), or liverl.allow=[smoke-before-official]",
        )


# --- 14. paths


def _looks_like_hub_id(path: str) -> bool:
    return bool(re.fullmatch(r"[\w.-]+/[\w.-]+", path)) and not Path(path).exists()


@rule("paths-exist", "checkpoint and data exist")
def _paths(c: Ctx) -> Iterable[Problem]:
    entries = [("model.path", str(c.cfg.model.path))]
    for key in ("train_files", "val_files"):
        value = c.cfg[key]
        entries += [
            (key, str(p)) for p in (value if isinstance(value, (list, tuple)) or OmegaConf.is_list(value) else [value])
        ]
    for key, path in entries:
        if c.structure_only:
            yield finding(
                SKIP,
                key,
                path,
                "structure-only mode: paths on this disk are not checked",
                "run `python -m liverl.check` on the machine that launches",
            )
        elif key == "model.path" and _looks_like_hub_id(path):
            yield finding(
                WARN,
                key,
                path,
                "not a local checkpoint: the trainer and every vLLM replica download it from the Hub at start",
                "point model.path (MODEL_PATH) at a local or shared-disk checkpoint",
            )
        elif not Path(path).expanduser().exists():
            yield finding(
                FATAL if c.launching else WARN,
                key,
                path,
                "does not exist: the run would fail at start (data loading or checkpoint load)",
                f"fix {key} (or its environment variable)",
            )


# --- 15. validation timeouts


@rule("val-timeout", "validation tasks have their own (longer) timeout")
def _val_timeout(c: Ctx) -> Iterable[Problem]:
    h = c.cfg.scaffold.harbor
    validating = c.v("trainer.test_freq", -1) > 0 or c.v("trainer.val_before_train")
    if validating and not h.get("val_agent_timeout_sec"):
        yield finding(
            WARN,
            "scaffold.harbor.val_agent_timeout_sec",
            h.get("val_agent_timeout_sec"),
            "validation tasks "
            "run longer than training ones; with the training timeout most of them are cut off (~170 of 500 "
            "scored)",
            "scaffold.harbor.val_agent_timeout_sec=4800",
        )


# --- 16. kernels where the trainer runs


def gdn_kernel_problem(
    capability: tuple[int, int] | None, triton: str | None, fla: str | None, tilelang: bool
) -> str | None:
    """Why Qwen3.5's GatedDeltaNet backward will refuse to run on this GPU stack, or None when it will run."""

    def version(text: str) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", text)[:3])

    if capability is None or capability[0] != 9 or not triton or not fla or tilelang:
        return None
    if version(fla) == (0, 5, 2) and (3, 4, 0) <= version(triton) < (3, 7, 1):
        return (
            f"flash-linear-attention {fla} refuses Triton {triton} on Hopper without tilelang: 'Triton >= 3.4.0 "
            "and < 3.7.1 on Hopper GPUs produces incorrect results for gated chunk_bwd_dqkwg' at the first backward"
        )
    return None


def local_kernel_facts() -> tuple[tuple[int, int] | None, str | None, str | None, bool]:
    """(GPU compute capability, triton, flash-linear-attention, tilelang installed) of this machine."""
    from importlib import metadata, util

    def dist(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    capability = None
    if dist("torch"):
        import torch

        if torch.cuda.is_available():
            capability = torch.cuda.get_device_capability(0)
    return capability, dist("triton"), dist("flash-linear-attention"), util.find_spec("tilelang") is not None


def check_kernels_here(cfg: DictConfig) -> Problem | None:
    """Rule gdn-triton-hopper, run where the trainer runs (the launchers call it before training starts)."""
    if not cfg.model.linear_attention:
        return None
    problem = gdn_kernel_problem(*local_kernel_facts())
    if problem:
        return Problem(
            key="training image",
            message=problem,
            fix="install tilelang in the training image, or use Triton >= 3.7.1 (or < 3.4)",
            rule="gdn-triton-hopper",
        )
    return None


LAUNCH_RULES = ("paths-exist", "smoke-before-official")


def launch_blockers(run_dir: Path, address: str | None) -> list[Problem]:
    """FATAL findings of a written plan judged where and when it launches: the rules that depend on this disk and
    this cluster (a plan written with launcher=dryrun was not judged as a launch), and the kernel stack here."""
    cfg = OmegaConf.load(run_dir / "liverl.yaml")
    ctx = Ctx(cfg, OmegaConf.load(run_dir / "verl.yaml"), {}, "", launching=True, address=address)
    found = [dataclasses.replace(f, rule=r) for r in LAUNCH_RULES for f in RULES[r](ctx)]
    kernels = check_kernels_here(cfg)
    blocking, _ = apply_waivers([*found, *([kernels] if kernels else [])], cfg.liverl.allow)
    return blocking


@rule("gdn-triton-hopper", "the training image runs GatedDeltaNet's backward on its GPU")
def _gdn(c: Ctx) -> Iterable[Problem]:
    if c.cfg.model.linear_attention:
        yield finding(
            SKIP,
            "training image",
            c.cfg.model.name,
            "GatedDeltaNet kernels (Hopper x Triton x "
            "flash-linear-attention x tilelang) are checked where the trainer runs, before training starts",
            "nothing to do here; a launch refuses with the fix if the image is affected",
        )


# --- report


def report(findings: list[Problem]) -> str:
    order = {FATAL: 0, WAIVED: 1, WARN: 2, SKIP: 3}
    allf = sorted(findings, key=lambda f: order.get(f.severity, 9))
    counts = {s: sum(1 for f in allf if f.severity == s) for s in (FATAL, WAIVED, WARN, SKIP)}
    head = (
        "LiveRL checks: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        if allf
        else "LiveRL checks: all passed"
    )
    return "\n".join([f"{head} ({len(RULES)} rules)", *(f"  {f.severity:6} {f}" for f in allf)]) + "\n"


def to_json(findings: list[Problem]) -> list[dict[str, Any]]:
    return [dataclasses.asdict(f) | {"got": None if f.got is None else str(f.got)} for f in findings]


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m liverl.check",
        description="Check a LiveRL run without launching it. Exit 0: no finding; 1: warnings; 2: a FATAL finding.",
    )
    parser.add_argument(
        "--structure-only",
        action="store_true",
        help="check only what needs no file on this disk (checkpoint, data, new-verl checkout are SKIP)",
    )
    parser.add_argument("--all", action="store_true", help="check every preset (experiment=...) instead of one config")
    parser.add_argument("--launching", action="store_true", help="judge as a launch would (paths, smoke ledger FATAL)")
    parser.add_argument("--rules", action="store_true", help="list the rule ids and exit")
    parser.add_argument("overrides", nargs="*", help="LiveRL overrides, as for python -m liverl.train")
    args = parser.parse_args(argv)
    if args.rules:
        print("\n".join(f"{rule_id:26} {TITLES[rule_id]}" for rule_id in RULES))
        return 0
    from liverl.build import build
    from liverl.config import compose_liverl, group_options

    overrides = arguments(args.overrides, os.environ).args  # the documented environment, as liverl.train reads it
    runs = [[f"experiment={p}", *overrides] for p in group_options("experiment")] if args.all else [overrides]
    worst = 0
    for overrides in runs:
        label = " ".join(overrides) or "(defaults)"
        try:
            b = build(compose_liverl(overrides), structure_only=args.structure_only, launching=args.launching)
        except ConfigError as exc:
            print(f"== {label}\n{exc}")
            worst = CONFIG_ERROR_EXIT
            continue
        print(f"== {label}\n{report(b.findings)}", end="")
        if any(f.severity == WARN for f in b.findings):
            worst = max(worst, 1)
    return worst


def main() -> None:
    code = _main(sys.argv[1:])
    sys.stdout.flush()
    os._exit(code)  # skip torch/ray interpreter teardown


if __name__ == "__main__":
    main()
