"""The guardrail framework: a rule is a function of a context that yields findings, registered by id.

Write a rule in `liverl/guardrails/rules/<topic>.py` (the package imports every file there):

    from liverl.guardrails.framework import FATAL, Ctx, finding, rule

    @rule("my-rule-id", "one line: what must hold")
    def _my_rule(c: Ctx) -> Iterable[Problem]:
        if c.v("some.verl.key") != 1:
            yield finding(FATAL, "the.knob", c.v("some.verl.key"), "why it breaks", "the fix")

FATAL blocks the launch (waivable only by naming the rule id in `liverl.allow=[...]`), WARN is printed and
written to the run directory, SKIP says what could not be checked here and why.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from liverl.errors import ConfigError, Problem, did_you_mean

FATAL, WARN, SKIP, WAIVED = "FATAL", "WARN", "SKIP", "WAIVED"


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

    @property
    def linear_attention(self) -> bool:
        """GatedDeltaNet (linear-attention) layers: from the checkpoint when it is here (Qwen3.5 lists them in
        layer_types; Qwen3-Next's and Qwen3.5's configs carry linear_* head shapes), else what the model group
        declares."""
        hf = self.hf_config
        if hf is None:
            return bool(self.cfg.model.linear_attention)
        return "linear_attention" in (hf.get("layer_types") or []) or bool(hf.get("linear_num_key_heads"))


Rule = Callable[[Ctx], Iterable[Problem]]
RULES: dict[str, Rule] = {}
TITLES: dict[str, str] = {}
# rules whose FATAL no liverl.allow waives: what they guard is fixed (e.g. sp_size=1 for Qwen3.5, the user's page)
UNWAIVABLE: set[str] = set()


def rule(rule_id: str, title: str, waivable: bool = True) -> Callable[[Rule], Rule]:
    def register(fn: Rule) -> Rule:
        RULES[rule_id] = fn
        TITLES[rule_id] = title
        if not waivable:
            UNWAIVABLE.add(rule_id)
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
    fixed = sorted(allow & UNWAIVABLE)
    if unknown or fixed:
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
            + [
                Problem(
                    key="liverl.allow",
                    message=f"rule '{u}' cannot be waived: what it guards is fixed ({TITLES[u]})",
                    got=u,
                    fix=f"drop {u} from liverl.allow and correct the setting it names",
                    rule="config",
                )
                for u in fixed
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
