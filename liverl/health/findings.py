"""What a health check sees (RunView) and says (Finding, Skipped, Report)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from liverl.health.streams import Stream

SEVERITY_RANK = {"INFO": 0, "WARN": 1, "CRIT": 2}


@dataclass
class Finding:
    """One diagnosis: what is wrong, since which step, and what to change."""

    id: str
    severity: str
    metric: str
    first_step: int | None
    current: float | None
    message: str
    fix: str


@dataclass
class Skipped:
    """A check that could not run, and the metrics it lacked."""

    check: str
    needs: list[str]
    reason: str


@dataclass
class Report:
    """All findings for a run plus what could not be judged."""

    run: str
    steps: int
    first_step: int | None
    last_step: int | None
    findings: list[Finding]
    skipped: list[Skipped]
    notes: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 healthy, 1 warnings only, 2 critical."""
        return max((SEVERITY_RANK[f.severity] for f in self.findings), default=0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (non-finite numbers become null)."""
        out = asdict(self)
        out["exit_code"] = self.exit_code
        for f in out["findings"]:
            if f["current"] is not None and not math.isfinite(f["current"]):
                f["current"] = None
        return out


@dataclass
class RunView:
    """What a check sees: the stream, thresholds, the run's config and the clock."""

    stream: Stream
    cfg: DictConfig
    run_config: DictConfig
    run_status: str | None
    now: float
    run_dir: Path | None = None  # the run directory, when the stream came from one (its run.json, traceback.txt)

    def get(self, dotted: str, default: Any = None) -> Any:
        """A value of the run's liverl.yaml by dotted key (``default`` if absent/unresolvable)."""
        value = OmegaConf.select(self.run_config, dotted, default=None, throw_on_resolution_failure=False)
        return default if value is None else value

    @property
    def is_smoke(self) -> bool:
        """Whether the run uses a smoke-sized batch (by name or by size)."""
        if self.get("batch.name") == "smoke":
            return True
        bsz, n = self.get("train_bsz"), self.get("n_resp_per_prompt")
        return isinstance(bsz, int) and isinstance(n, int) and bsz * n <= self.cfg.same_reward.smoke_max_batch
