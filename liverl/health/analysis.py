"""Judge a run: every health check over its metric stream, thresholds from conf/watch/, the follow loop."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np
import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from liverl.health.catalogue import (
    ADV_MAX,
    ADV_MIN,
    CLIP,
    ENV_SETUP,
    ESS,
    GEN_TIME,
    GRAD,
    IDLE,
    INVALID,
    KL,
    LR,
    MEMORY,
    PARSE_FAILURES,
    PARTIAL,
    PEARSON,
    ROUTES_FOUND,
    SCAFFOLD_TURNS,
    SCORE,
    STEP_TIME,
    TURNS,
    wanted_keys,
)
from liverl.health.checks_rollout import (
    check_env_setup,
    check_ess,
    check_idle,
    check_invalid,
    check_kl,
    check_parse_failures,
    check_partial,
    check_pearson,
)
from liverl.health.checks_scale import (
    check_clipped,
    check_memory_cofit,
    check_out_of_memory,
    check_routing_coverage,
    check_sync_rollout_bound,
)
from liverl.health.checks_training import (
    check_grad_starvation,
    check_lr_zero,
    check_nonfinite,
    check_reward_drop,
    check_reward_zero,
    check_same_reward,
    check_stall,
    check_turns,
)
from liverl.health.findings import SEVERITY_RANK, Finding, Report, RunView, Skipped
from liverl.health.run_end import out_of_memory
from liverl.health.streams import RunNotFoundError, Stream, StreamReader, read_run
from liverl.paths import CONF_DIR

DEFAULT_THRESHOLDS = CONF_DIR / "watch" / "default.yaml"


@dataclass(frozen=True)
class Check:
    """A named check and the metrics it needs (alternatives per requirement)."""

    name: str
    needs: tuple[tuple[str, ...], ...]
    run: Callable[[RunView, str], list[Finding]]


CHECKS: tuple[Check, ...] = (
    Check("rollout_bound", (IDLE,), check_idle),
    # the same signal on a synchronous run (fully-async runs log idle_ratio instead)
    Check("sync_rollout_bound", (GEN_TIME, STEP_TIME), check_sync_rollout_bound),
    Check("moe_cofit", (MEMORY,), check_memory_cofit),
    Check("responses_clipped", (CLIP,), check_clipped),
    # routing coverage under multi-turn replay (R3): verl logs what it needs in its sync trainer only
    Check("routing_coverage", (ROUTES_FOUND,), check_routing_coverage),
    Check("rollout_corr_kl_spike", (KL,), check_kl),
    Check("probs_pearson_low", (PEARSON,), check_pearson),
    Check("partial_ratio", (PARTIAL,), check_partial),
    Check("invalid_trajectories", (INVALID,), check_invalid),
    Check("env_setup_failed", ((ENV_SETUP,),), check_env_setup),
    Check("tool_parse_failures", (PARSE_FAILURES, SCAFFOLD_TURNS), check_parse_failures),
    Check("is_ess_collapse", (ESS,), check_ess),
    Check("reward_drop", (SCORE,), check_reward_drop),
    Check("lr_zero", (LR,), check_lr_zero),
    Check("grad_starvation", (GRAD,), check_grad_starvation),
    Check("reward_flat_zero", (SCORE,), check_reward_zero),
    # model calls per trial: LiveRL's own count first, else verl's message count (checks_training.check_turns)
    Check("tool_call_collapse", ((*SCAFFOLD_TURNS, *TURNS),), check_turns),
    Check("same_reward_groups", (ADV_MAX, ADV_MIN), check_same_reward),
    Check("stalled", (STEP_TIME,), check_stall),
    Check("nonfinite_values", (), check_nonfinite),
)


def load_thresholds(path: str | None = None, sets: Sequence[str] = ()) -> DictConfig:
    """Default thresholds, merged with an optional YAML file and ``key=value`` overrides."""
    cfg = OmegaConf.load(DEFAULT_THRESHOLDS)
    if path:
        cfg = OmegaConf.merge(cfg, OmegaConf.load(path))
    if sets:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(sets)))
    assert isinstance(cfg, DictConfig)
    return cfg


def load_run_config(run: Path) -> DictConfig:
    """The run's composed liverl.yaml (empty when absent or unreadable)."""
    path = run / "liverl.yaml"
    try:
        cfg = OmegaConf.load(path) if path.is_file() else None
    except (OSError, yaml.YAMLError, OmegaConfBaseException):
        cfg = None
    return cfg if isinstance(cfg, DictConfig) else OmegaConf.create({})


def load_run_status(run: Path) -> str | None:
    """``status`` from run.json, lower-cased, when present."""
    try:
        status = json.loads((run / "run.json").read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        return None
    return str(status).lower() if status is not None else None


def analyze(stream: Stream, cfg: DictConfig, run_config: DictConfig | None = None,
            run_status: str | None = None, now: float | None = None, run: str = "") -> Report:
    """Run every check on ``stream``; checks lacking metrics are listed as skipped."""
    run_config = run_config if run_config is not None else OmegaConf.create({})
    run_dir = Path(run) if run and Path(run).is_dir() else (Path(run).parent if run else None)
    ctx = RunView(stream, cfg, run_config, run_status, time.time() if now is None else now, run_dir)
    findings: list[Finding] = check_out_of_memory(ctx)  # how the run ended, metrics or not
    skipped: list[Skipped] = []
    if len(stream.steps) == 0:
        skipped = [Skipped(c.name, [], "no steps logged yet") for c in CHECKS]
    else:
        for check in CHECKS:
            keys = [stream.first(*group) for group in check.needs]
            if None in keys:
                lacking = [" or ".join(g) for g, k in zip(check.needs, keys, strict=True) if k is None]
                skipped.append(Skipped(check.name, lacking, "metric not in this run's stream"))
                continue
            findings.extend(check.run(ctx, keys[0] if keys else ""))
    findings.sort(key=lambda f: (-SEVERITY_RANK[f.severity], f.first_step if f.first_step is not None else 0))
    steps = stream.steps
    return Report(run, len(steps), int(steps[0]) if len(steps) else None, int(steps[-1]) if len(steps) else None,
                  findings, skipped, list(stream.notes), list(stream.sources))


def read_stream(run: Path, cfg: DictConfig) -> Stream:
    """Read the metrics the checks need from a run directory or one metrics/log file; a run directory with no metric
    that ended in CUDA out of memory gives an empty stream (its end is judged: check did_not_fit)."""
    try:
        return read_run(run, *wanted_keys(cfg))
    except RunNotFoundError:
        if not (Path(run).is_dir() and out_of_memory(Path(run))):
            raise
        return Stream(np.zeros(0, dtype=np.int64), {}, {})


def watch_run(run: str | Path, cfg: DictConfig | None = None, now: float | None = None,
              stream: Stream | None = None) -> Report:
    """Read a run directory (or one metrics/log file) and analyze it."""
    cfg = cfg or load_thresholds()
    path = Path(run)
    base = path if path.is_dir() else path.parent
    stream = stream if stream is not None else read_stream(path, cfg)
    return analyze(stream, cfg, load_run_config(base), load_run_status(base), now, str(path))


def follow(run: Path, cfg: DictConfig, interval: float, stop_on_critical: bool,
           max_polls: int | None = None, out: TextIO | None = None) -> tuple[Report, Stream]:
    """Re-analyze as steps arrive, printing findings to ``out`` (stdout) as they appear or change severity."""
    reader = StreamReader(run, *wanted_keys(cfg))
    seen: dict[str, str] = {}
    polls = 0
    while True:
        changed = reader.poll()
        polls += 1
        if changed or polls == 1:
            report = watch_run(run, cfg, stream=reader.stream())
            for f in report.findings:
                if seen.get(f.id) != f.severity:
                    seen[f.id] = f.severity
                    print(f"[step {report.last_step}] {f.severity} {f.id} since step {f.first_step}: "
                          f"{f.message}", file=out or sys.stdout, flush=True)
            if stop_on_critical and report.exit_code == 2:
                return report, reader.stream()
        if max_polls is not None and polls >= max_polls:
            return watch_run(run, cfg, stream=reader.stream()), reader.stream()
        time.sleep(interval)
