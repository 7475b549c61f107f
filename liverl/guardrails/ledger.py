"""The smoke ledger: which scaffold x topology x cluster has a passing smoke run (official runs need one).

A cluster is named as the launch names it. For launcher=ray_job that is the dashboard URL the plan is submitted
to; inside the job Ray sets RAY_ADDRESS to the GCS address instead, so the submit hands the job its cluster's name
(LIVERL_SMOKE_CLUSTER) and the ledger it reads (LIVERL_SMOKE_LEDGER): the job records its pass where, and under the
key that, the next submit looks.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from liverl.atomic import write_atomic

LEDGER_ENV = "LIVERL_SMOKE_LEDGER"
CLUSTER_ENV = "LIVERL_SMOKE_CLUSTER"  # set by a ray_job submit for its job: the cluster as the submit named it


def ledger_path() -> Path:
    return Path(os.environ.get(LEDGER_ENV) or Path.home() / ".liverl" / "smoke_ledger.json")


def read_ledger() -> dict[str, Any]:
    """The recorded smoke passes, keyed by scaffold|topology|engine|cluster (empty before the first one)."""
    path = ledger_path()
    return json.loads(path.read_text()) if path.is_file() else {}


def cluster_id(address: str | None) -> str:
    """The Ray cluster a run goes to: its address, or this machine for an embedded Ray."""
    return address if address and address != "local" else f"local:{os.uname().nodename}"


def launch_cluster(cfg: DictConfig, address: str | None = None) -> str | None:
    """The cluster a launch of cfg goes to, as the ledger names it: LIVERL_SMOKE_CLUSTER inside a submitted job,
    else address, launcher.address or RAY_ADDRESS; a ray_job's dashboard as a URL without a trailing slash."""
    cluster = os.environ.get(CLUSTER_ENV) or address or cfg.launcher.get("address") or os.environ.get("RAY_ADDRESS")
    if cluster and cfg.launcher.name == "ray_job":
        cluster = (cluster if "://" in cluster else f"http://{cluster}").rstrip("/")
    return cluster


def smoke_key(cfg: DictConfig, address: str | None) -> str:
    """scaffold|topology|engine|cluster: a smoke on FSDP does not validate a VeOmni official run (another engine,
    another worker path, another verl for MoE)."""
    return f"{cfg.scaffold.name}|{cfg.topology.name}|{cfg.engine.name}|{cluster_id(address)}"


def record_smoke_pass(cfg: DictConfig, run_dir: Path, address: str | None) -> None:
    """Remember that a smoke run passed on this scaffold x topology x engine x cluster (official runs need one)."""
    path = ledger_path()
    ledger = read_ledger()
    ledger[smoke_key(cfg, address)] = {"run_dir": str(run_dir), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    write_atomic(path, json.dumps(ledger, indent=2) + "\n")


def record_if_smoke(run_dir: Path, address: str | None) -> bool:
    """After a run succeeded: record it when it was a smoke run (on the cluster its launch went to)."""
    cfg = OmegaConf.load(run_dir / "liverl.yaml")
    if cfg.batch.name != "smoke":
        return False
    record_smoke_pass(cfg, run_dir, launch_cluster(cfg, address))
    return True
