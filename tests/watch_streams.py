"""Metric streams for the watch/advise tests and the benchmark: copies of a real verl 0.9.1 stream with faults injected.

Each step starts from a trainer row of a real GPU run (tests/fixtures/gpu_async_tiny: every name and value verl
logged, cycled), over which a healthy fully-async coding-agent run is modelled on the signals the checks read; each
named fault changes those from its step on. Every name written is one a real stream carries (tests/fixtures/gpu_*)
or one tests/metric_sources.py cites the emitting line of (a mode those runs do not cover): any other name is
refused. Streams are written through verl's own ``FileLogger`` (JSONL) or verl's console-logger line format.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import yaml
from verl.utils.logger.aggregate_logger import concat_dict_to_str
from verl.utils.tracking import FileLogger

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # so test modules importing this first can import liverl
    sys.path.insert(0, str(ROOT))

from metric_sources import NOT_IN_FIXTURES  # noqa: E402 - after the sys.path set-up

FIXTURES = Path(__file__).resolve().parent / "fixtures"
BASE_RUN = FIXTURES / "gpu_async_tiny"
BATCH = 512  # 64 prompts x 8 responses
REASONS = ("agent_completed", "overlong", "max_turns_reached", "timeout", "env_setup_failed")

# also: reward_drop_filter (see test_watch), and for advise: gen_bound, memory_full, clip_high
# fault name -> (the finding it must raise, its severity when still ongoing at the last step)
FAULTS: dict[str, tuple[str, str]] = {
    "idle_high": ("rollout_bound", "WARN"),
    "kl_spike": ("rollout_corr_kl_spike", "CRIT"),
    "pearson_low": ("probs_pearson_low", "CRIT"),
    "partial_dominant": ("partial_dominant", "WARN"),
    "invalid_high": ("invalid_trajectories", "WARN"),
    "env_setup_failed": ("env_setup_failed", "WARN"),
    "ess_collapse": ("is_ess_collapse", "CRIT"),
    "reward_drop_shift": ("reward_drop", "CRIT"),
    "reward_drop_plain": ("reward_drop", "WARN"),
    "lr_zero": ("lr_zero", "CRIT"),
    "grad_starvation": ("grad_starvation", "WARN"),
    "reward_zero": ("reward_flat_zero", "CRIT"),
    "turns_collapse": ("tool_call_collapse", "CRIT"),
    "same_reward": ("same_reward_groups", "WARN"),
    "nan_grad": ("nonfinite_values", "WARN"),
    "parse_failures": ("tool_parse_failures", "WARN"),
}


Faults = dict[str, int | tuple[int, int]]  # fault -> first step, or [first, end) steps


@functools.cache
def base_rows(run: Path = BASE_RUN) -> tuple[dict[str, float], ...]:
    """The trainer rows (those with actor/lr) of a real run's metrics, in step order."""
    rows = [json.loads(line) for path in sorted(run.glob("metrics*.jsonl")) for line in path.read_text().splitlines()]
    return tuple(r["data"] for r in sorted(rows, key=lambda r: r["step"]) if "actor/lr" in r["data"])


@functools.cache
def real_names() -> frozenset[str]:
    """Every metric name a real GPU stream (tests/fixtures/gpu_*) carries."""
    return frozenset(k for run in FIXTURES.glob("gpu_*") for path in run.glob("metrics*.jsonl")
                     for line in path.read_text().splitlines() for k in json.loads(line)["data"])


def check_names(data: dict[str, float]) -> dict[str, float]:
    """Refuse a name verl does not emit (extra/*: the benchmark's padding, marked as such)."""
    listed = tuple(NOT_IN_FIXTURES)
    unknown = sorted(k for k in data if k not in real_names() and not k.startswith((*listed, "extra/")))
    if unknown:
        raise ValueError(f"not a name verl 0.9.1 logs (no real stream carries it, metric_sources.py lists no "
                         f"source): {unknown}")
    return data


def _start(at: int | tuple[int, int]) -> int:
    return at if isinstance(at, int) else at[0]


def step_metrics(step: int, rng: np.random.Generator, faults: Faults, extra: int = 0) -> dict[str, float]:
    """One step of a healthy run, with every fault active at ``step`` applied."""
    on = {name for name, at in faults.items()
          if (step >= at if isinstance(at, int) else at[0] <= step < at[1])}
    score = 0.30 + 0.12 * (1 - np.exp(-step / 80)) + rng.normal(0, 0.02)
    length = 8000 + rng.normal(0, 250)
    invalid = abs(rng.normal(0.03, 0.01))
    reasons = {"agent_completed": 0.8, "overlong": 0.08, "max_turns_reached": 0.1, "timeout": 0.02,
               "env_setup_failed": 0.0}
    base = base_rows()
    calls = 24 + rng.normal(0, 2)  # model calls per trial
    m = {
        **base[(step - 1) % len(base)],
        "actor/lr": 1e-6,
        "actor/grad_norm": 0.3 + rng.normal(0, 0.04),
        "actor/entropy": 0.6 + rng.normal(0, 0.02),
        "actor/pg_loss": rng.normal(0, 0.01),
        "critic/advantages/max": 2.0 + rng.normal(0, 0.1),
        "critic/advantages/min": -2.0 + rng.normal(0, 0.1),
        "critic/advantages/mean": rng.normal(0, 0.01),
        "num_turns/mean": 2 * calls,  # verl's count: user + assistant + tool messages + 1, 2 per model call
        "response_length/clip_ratio": 0.02,
        "fully_async/trainer/idle_ratio": 0.2 + rng.normal(0, 0.04),
        "fully_async/partial/partial_ratio": 0.15 + rng.normal(0, 0.04),
        "rollout_corr/kl": 3e-4 * float(np.exp(rng.normal(0, 0.2))),
        "training/rollout_actor_probs_pearson_corr": 0.999 + rng.normal(0, 2e-4),
        "rollout_corr/rollout_is_eff_sample_size": 0.93 + rng.normal(0, 0.02),
        "timing_s/step": 300 + rng.normal(0, 20),
        "timing_s/gen": 60 + rng.normal(0, 10),
        "actor/perf/max_memory_reserved_gb": 100 + rng.normal(0, 2),
        # LiveRL's Harbor loop: model calls per trial, and among them the turns whose tool call did not parse (~1%)
        "scaffold/turns/mean": calls,
        "scaffold/parse_failures/mean": 0.25 + rng.normal(0, 0.05),
    }
    if "idle_high" in on:
        m["fully_async/trainer/idle_ratio"] = 0.8 + rng.normal(0, 0.03)
    if "kl_spike" in on:
        m["rollout_corr/kl"] = 5e-3 * float(np.exp(rng.normal(0, 0.1)))
    if "pearson_low" in on:
        m["training/rollout_actor_probs_pearson_corr"] = 0.75 + rng.normal(0, 0.02)
    if "partial_dominant" in on:
        m["fully_async/partial/partial_ratio"] = 0.7 + rng.normal(0, 0.03)
    if "invalid_high" in on:
        invalid = 0.25 + rng.normal(0, 0.02)
        reasons["timeout"] = 0.25
    if "env_setup_failed" in on:
        reasons["env_setup_failed"] = 0.3
        invalid += 0.02
    if "ess_collapse" in on:
        m["rollout_corr/rollout_is_eff_sample_size"] = 0.06 + rng.normal(0, 0.01)
        length = 54000 + rng.normal(0, 800)
    if "reward_drop_shift" in on:
        score -= 0.15
        length *= 0.6
    if "reward_drop_filter" in on:  # the filter starts dropping a slice of trajectories
        score -= 0.15
        invalid += 0.12
        reasons["overlong"] = 0.3
    if "reward_drop_plain" in on:
        score -= 0.15
    if "lr_zero" in on:
        m["actor/lr"] = 0.0
    if "grad_starvation" in on:
        m["actor/grad_norm"] = 0.03 + rng.normal(0, 0.003)
    if "reward_zero" in on:
        score = 0.0
        m["critic/advantages/max"] = m["critic/advantages/min"] = 0.0
    if "turns_collapse" in on:
        calls = max(1.0, 24 - 8 * (step - _start(faults["turns_collapse"])))  # 1: one call, no tool result
        m["scaffold/turns/mean"], m["num_turns/mean"] = calls, 2 * calls  # verl: a one-call trial reads 2
        m["scaffold/parse_failures/mean"] = 0.01 * calls  # it stops calling tools (unparsed calls: tool_parse_failures)
    if "same_reward" in on:
        m["critic/advantages/max"] = m["critic/advantages/min"] = 0.0
    if "gen_bound" in on:  # sync run: most of the step is rollout generation
        m["timing_s/gen"] = 0.8 * m["timing_s/step"]
    if "memory_full" in on:
        m["actor/perf/max_memory_reserved_gb"] = 138 + rng.normal(0, 1)
    if "clip_high" in on:
        m["response_length/clip_ratio"] = 0.3
    if "parse_failures" in on:  # a third of the turns' tool calls stop parsing (a template or parser change)
        m["scaffold/parse_failures/mean"] = m["scaffold/turns/mean"] / 3
    if "nan_grad" in on and step == _start(faults["nan_grad"]):
        m["actor/grad_norm"] = float("nan")
    counts = {r: share * BATCH * (1 - invalid) for r, share in reasons.items()}
    m.update({
        "critic/score/mean": score,
        "critic/rewards/mean": score,
        "response_length/mean": length,
        "trajectory_filter/invalid_ratio": invalid,
        **{f"trajectory_filter/reason/{r}": c for r, c in counts.items()},
    })
    m.update({f"extra/metric_{i:03d}": float(i) for i in range(extra)})
    return m


@contextlib.contextmanager
def _logger_at(path: Path) -> Iterator[FileLogger]:
    """verl's FileLogger writing to ``path`` (via VERL_FILE_LOGGER_PATH), quietly."""
    old = os.environ.get("VERL_FILE_LOGGER_PATH")
    os.environ["VERL_FILE_LOGGER_PATH"] = str(path)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            logger = FileLogger("liverl_test", "watch")
        yield logger
        logger.finish()
    finally:
        if old is None:
            os.environ.pop("VERL_FILE_LOGGER_PATH", None)
        else:
            os.environ["VERL_FILE_LOGGER_PATH"] = old


def shape(data: dict[str, float], drop: tuple[str, ...] = (), rename: dict[str, str] | None = None) -> dict:
    """Drop metrics by prefix and rename keys (to model other verl modes/versions)."""
    rename = rename or {}
    return check_names({rename.get(k, k): v for k, v in data.items() if not (drop and k.startswith(drop))})


def write_jsonl(path: Path, steps: range, faults: Faults | None = None, seed: int = 0, extra: int = 0,
                drop: tuple[str, ...] = (), rename: dict[str, str] | None = None) -> Path:
    """Write ``steps`` of a run through verl's FileLogger."""
    rng = np.random.default_rng(seed)
    with _logger_at(path) as logger:
        for step in steps:
            logger.log(shape(step_metrics(step, rng, faults or {}, extra), drop, rename), step)
    return path


def write_run(run: Path, n_steps: int = 120, faults: Faults | None = None, seed: int = 0,
              config: dict | None = None, drop: tuple[str, ...] = (), rename: dict[str, str] | None = None) -> Path:
    """A run directory with metrics.jsonl (steps 1..n_steps) and optionally liverl.yaml."""
    run.mkdir(parents=True, exist_ok=True)
    write_jsonl(run / "metrics.jsonl", range(1, n_steps + 1), faults, seed, drop=drop, rename=rename)
    if config is not None:
        (run / "liverl.yaml").write_text(yaml.safe_dump(config))
    return run


def write_console_log(path: Path, steps: range, faults: Faults | None = None, seed: int = 0) -> Path:
    """The same run as verl's console logger prints it (numpy scalars, Ray actor prefix, noise lines)."""
    rng = np.random.default_rng(seed)
    with path.open("w") as fh:
        fh.write("(TaskRunner pid=4242) Started training\n")
        for step in steps:
            data = {k: np.float64(v) for k, v in check_names(step_metrics(step, rng, faults or {})).items()}
            fh.write(f"(TaskRunner pid=4242) {concat_dict_to_str(data, step)}\n")
            fh.write("(AgentLoopWorker pid=77) INFO some unrelated line - with: colons\n")
    return path


def healthy_config(**overrides: object) -> dict:
    """A liverl.yaml for a 2-node fully-async MoE run on the official batch."""
    cfg: dict = {
        "topology": {"name": "2node", "mode": "fully_async", "trainer_nnodes": 1, "rollout_nnodes": 1,
                     "gpus_per_node": 8},
        "window": {"prompt": 30000, "response": 58304},
        "engine": {"name": "veomni"},
        "model": {"name": "qwen35", "moe": True},
        "scaffold": {"name": "claude_code"},
        "batch": {"name": "official"},
        "train_bsz": 64,
        "n_resp_per_prompt": 8,
        "rollout_is": None,
    }
    for dotted, value in overrides.items():
        node = cfg
        *parents, leaf = dotted.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return cfg
