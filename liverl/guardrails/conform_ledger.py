"""The conformance ledger: each `python -m liverl.conform` result, per scaffold and chat template.

One JSON object per line (append-only), in `$LIVERL_CONFORM_LEDGER` (default ~/.liverl/conform_ledger.jsonl):
{"scaffold", "chat_template_sha256", "chat_template", "policy", "passed", "figures", "time"}. The guardrail
`harness-conformance` reads the last record of a plan's scaffold and chat template. A chat template is named by
the sha256 of its text, so the gate and the plan agree whichever file or checkpoint it came from.

Which template a plan's agent loop renders with: verl sets `actor_rollout_ref.model.custom_chat_template` on the
tokenizer when it is set (verl/workers/config/model.py:173-177, experimental/agent_loop/agent_loop.py:540-543),
else the tokenizer's own, loaded from the checkpoint (`tokenizer_path`, else `path`).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

LEDGER_ENV = "LIVERL_CONFORM_LEDGER"


def ledger_path() -> Path:
    return Path(os.environ.get(LEDGER_ENV) or Path.home() / ".liverl" / "conform_ledger.jsonl")


def template_sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def checkpoint_chat_template(model_dir: str | os.PathLike) -> str | None:
    """The chat template a Hugging Face tokenizer in `model_dir` carries, or None when there is none on this disk.

    transformers >= 4.43 writes it to chat_template.jinja; older checkpoints keep it in tokenizer_config.json, as a
    string or as a list of {name, template} (the one named "default" is the one apply_chat_template uses)."""
    root = Path(model_dir).expanduser()
    jinja = root / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text()
    config = root / "tokenizer_config.json"
    if not config.is_file():
        return None
    template = json.loads(config.read_text()).get("chat_template")
    if isinstance(template, list):
        template = next((t.get("template") for t in template if t.get("name") == "default"), None)
    return template if isinstance(template, str) else None


def record(entry: dict[str, Any]) -> dict[str, Any]:
    """Append one result (stamped with the time) and return it."""
    path = ledger_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = dict(entry, time=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    with path.open("a") as f:
        f.write(json.dumps(entry, sort_keys=True) + "\n")
    return entry


def last_record(scaffold: str, template_sha: str) -> dict[str, Any] | None:
    """The latest result recorded for this scaffold and chat template (None: never run)."""
    path = ledger_path()
    if not path.is_file():
        return None
    last = None
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a torn line (a writer killed mid-write) is not a record
        if entry.get("scaffold") == scaffold and entry.get("chat_template_sha256") == template_sha:
            last = entry
    return last
