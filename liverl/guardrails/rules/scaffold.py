"""The scaffold: Harbor's agent name and import path, and the tool-call parser for model x scaffold."""

from __future__ import annotations

import re
from collections.abc import Iterable

from liverl.errors import Problem
from liverl.guardrails.framework import FATAL, WARN, Ctx, finding, rule
from liverl.guardrails.verl_keys import TOOL_PARSER_KEY


@rule("scaffold-agent", "Harbor agent name and import path fit the scaffold")
def _scaffold_agent(c: Ctx) -> Iterable[Problem]:
    h = c.cfg.scaffold.harbor
    given = c.cfg.liverl.get("agent_given") or {}
    if given.get("name") and given.get("import_path") and h.agent_name not in (None, "", "null"):
        yield finding(
            FATAL,
            "scaffold.harbor.agent_import_path",
            f"{given['name']}={h.agent_name} and {given['import_path']}={h.agent_import_path}",
            f"both an agent name ({given['name']}) and an import path ({given['import_path']}) were given: Harbor "
            "takes the registered name first and never loads the import path (harbor/agents/factory.py:315-330)",
            f"drop {given['name']} to run the import-path class (its name becomes null), or drop "
            f"{given['import_path']} to run the registered agent",
        )
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




def required_parser(model: str, scaffold: str) -> str | None:
    """The vLLM tool-call parser a model needs under a scaffold (None: no known requirement)."""
    m = model.lower()
    if re.search(r"qwen3[._-]?[56]|qwen3[56]", m):
        return "qwen3_coder"
    if re.search(r"qwen3[._-]?30b[._-]?a3b", m):  # the Qwen3 instruct template: hermes JSON in <tool_call>
        return "hermes"
    return None


@rule("tool-call-parser", "the tool-call parser fits model x scaffold")
def _tool_parser(c: Ctx) -> Iterable[Problem]:
    if not c.cfg.scaffold.get("tool_calls", True):  # e.g. scaffold=single_turn: answers carry no tool calls
        return
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
