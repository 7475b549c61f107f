"""Guardrails: every known way a run goes wrong, checked on the built verl config before anything launches.

`framework` (the rule API: `rule`, `finding`, `Ctx`, severities, waivers, the report), `rules/` (the rules, one
file per topic), `ledger` (smoke passes), `gpu_probe` (the kernel stack where the trainer and vLLM run), `at_launch`
(a written plan re-judged where and when it launches), `verl_keys` (the verl keys and batch shape rules read).
"""

from __future__ import annotations

from liverl.guardrails import rules  # noqa: F401  (registers every rule)
from liverl.guardrails.framework import (
    FATAL,
    RULES,
    SKIP,
    TITLES,
    WAIVED,
    WARN,
    Ctx,
    apply_waivers,
    finding,
    report,
    rule,
    run_rules,
    to_json,
)

__all__ = [
    "FATAL",
    "RULES",
    "SKIP",
    "TITLES",
    "WAIVED",
    "WARN",
    "Ctx",
    "apply_waivers",
    "finding",
    "report",
    "rule",
    "run_rules",
    "to_json",
]
