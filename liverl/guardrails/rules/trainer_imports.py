"""The trainer's imports: what the chosen trainer imports at start resolves here (and, at launch, on every node:
liverl.launch.node_probe)."""

from __future__ import annotations

from collections.abc import Iterable
from importlib import util

from liverl.errors import Problem
from liverl.guardrails.framework import FATAL, WARN, Ctx, finding, rule
from liverl.guardrails.verl_keys import IMPORT_REASONS, trainer_imports


@rule("trainer-imports", "the chosen trainer's imports resolve where it runs")
def _trainer_imports(c: Ctx) -> Iterable[Problem]:
    if c.structure_only:
        return
    for module in trainer_imports(c.verl, c.mode):
        if util.find_spec(module) is None:
            why, fix = IMPORT_REASONS[module]
            yield finding(
                FATAL if c.launching else WARN,
                "training image",
                module,
                f"{module} is not installed here ({why}): the run would fail after the cluster is up",
                fix,
            )
