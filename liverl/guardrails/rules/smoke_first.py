"""Smoke before official: an official run follows a passing smoke run on the same scaffold/topology/engine/cluster."""

from __future__ import annotations

from collections.abc import Iterable

from liverl.errors import Problem
from liverl.guardrails.framework import FATAL, SKIP, Ctx, finding, rule
from liverl.guardrails.ledger import launch_cluster, ledger_path, read_ledger, smoke_key


@rule("smoke-before-official", "an official run follows a passing smoke run on its scaffold/topology/engine/cluster")
def _smoke_first(c: Ctx) -> Iterable[Problem]:
    if c.cfg.batch.name != "official":
        return
    key = smoke_key(c.cfg, launch_cluster(c.cfg, c.address))
    if not c.launching or c.structure_only:
        yield finding(
            SKIP,
            "batch",
            "official",
            f"smoke ledger not consulted ({'structure-only' if c.structure_only else 'nothing is launched'}); "
            f"a launch needs a passing smoke run for {key}",
            "run batch=smoke on this scaffold/topology/engine/cluster first",
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
            "run batch=smoke first (same scaffold/topology/engine/cluster), or liverl.allow=[smoke-before-official]",
        )
