"""The smoke ledger: which scaffold x topology x cluster has a passing smoke run (official runs need one)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

LEDGER_ENV = "LIVERL_SMOKE_LEDGER"


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
