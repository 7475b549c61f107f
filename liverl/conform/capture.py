"""`conform.capture=FILE`: the harness's real first request, recorded from a gate trial for the agentic warm start.

A warm-started policy acts in real trials only when it was trained on the prompt its harness really sends (the
system prompt, tool list and environment turn of claude-code run to ~30k tokens; docs/gpu-smoke.md). The gate runs
the harness through LiveRL's proxy, so the first request a session received is that prompt, exactly as the policy
sees it. FILE holds {scaffold: {"messages", "tools", "instruction"}} (liverl.tiny.transcripts' `harness`); a capture
replaces its scaffold's entry and keeps the others. Secrets (this environment's values, credential shapes) are
replaced before anything is written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from liverl.atomic import write_atomic
from liverl.secrets import scrub


def first_request(trials: list[Any]) -> dict | None:
    """{"messages", "tools", "instruction"} of the first trial whose session received a request, else None."""
    for trial in trials:
        first = getattr(trial.session, "first_request", None)
        instruction = Path(trial.task) / "instruction.md"
        if first is not None and instruction.is_file():
            messages, tools = first
            return {"messages": messages, "tools": tools, "instruction": instruction.read_text().strip()}
    return None


def record(path: Path, scaffold: str, captured: dict) -> None:
    """Merge `captured` into the JSON file at `path` under `scaffold` (written whole, then moved into place)."""
    held = json.loads(path.read_text()) if path.is_file() else {}
    held[scaffold] = json.loads(scrub(json.dumps(captured)))
    write_atomic(path, json.dumps(held))
