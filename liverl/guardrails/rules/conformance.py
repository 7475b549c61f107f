"""Harness conformance: a Harbor scaffold runs with a chat template that passed `python -m liverl.conform`."""

from __future__ import annotations

import json
from collections.abc import Iterable

from liverl.errors import Problem
from liverl.guardrails.conform_ledger import checkpoint_chat_template, last_record, ledger_path, template_sha256
from liverl.guardrails.framework import FATAL, SKIP, WARN, Ctx, finding, rule

CUSTOM_TEMPLATE = "actor_rollout_ref.model.custom_chat_template"


def plan_chat_template(c: Ctx) -> str | None:
    """The template the plan's agent loop renders with (conform_ledger.py says where verl takes it from)."""
    custom = c.v(CUSTOM_TEMPLATE)
    if custom:
        return str(custom)
    if c.structure_only:
        return None
    return checkpoint_chat_template(c.v("actor_rollout_ref.model.tokenizer_path") or c.cfg.model.path)


@rule("harness-conformance", "a Harbor scaffold's last conformance run with the plan's chat template passed")
def _conformance(c: Ctx) -> Iterable[Problem]:
    scaffold = c.cfg.scaffold.name
    if not c.cfg.scaffold.harbor.get("model_api_format"):
        return  # no Harbor harness (scaffold=single_turn): nothing speaks to the proxy
    official = c.launching and c.cfg.batch.name == "official"
    template = plan_chat_template(c)
    command = f"python -m liverl.conform scaffold={scaffold} conform.policy=engine model.path={c.cfg.model.path}"
    if template is None:
        where = "structure-only mode" if c.structure_only else f"no chat template under model.path={c.cfg.model.path}"
        yield finding(SKIP, "scaffold", scaffold, f"harness conformance not checked ({where} on this disk)",
                      f"on a host with the checkpoint: {command}")
        return
    sha = template_sha256(template)
    last = last_record(scaffold, sha)
    if last is not None and last.get("passed"):
        return
    if last is None:
        why = f"no conformance run recorded for scaffold={scaffold} with chat template sha256 {sha[:12]}"
    else:
        why = (f"the last conformance run for scaffold={scaffold} with chat template sha256 {sha[:12]} failed "
               f"({last.get('time')}: {json.dumps(last.get('figures', {}), sort_keys=True)})")
    yield finding(
        FATAL if official else WARN, "scaffold", scaffold,
        f"{why} (ledger {ledger_path()}): a harness that splits chains or fails to parse tool calls trains few of "
        "the tokens it samples, and nothing in the run's metrics says so",
        f"{command} (exit 0 records a pass), or fix the chat template; "
        + ("waive with liverl.allow=[harness-conformance]" if official else "an official launch refuses this"),
    )

