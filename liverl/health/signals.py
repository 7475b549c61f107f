"""Reading signals out of metric series: sustained runs, windowed changes, trajectory-filter reason shares."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from liverl.health.catalogue import REASON_PREFIX
from liverl.health.findings import Finding, RunView
from liverl.health.streams import Stream


def runs_of(mask: np.ndarray, min_len: int) -> list[tuple[int, int]]:
    """[start, end) index ranges where ``mask`` holds for at least ``min_len`` entries."""
    if not mask.any():
        return []
    padded = np.concatenate(([False], mask, [False])).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(s), int(e)) for s, e in zip(edges[::2], edges[1::2], strict=True) if e - s >= min_len]


def fmt(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def sustained(steps: np.ndarray, warn: np.ndarray, crit: np.ndarray | None,
               min_steps: int, make: Callable[[str, int, str], Finding]) -> list[Finding]:
    """A finding from the first sustained run of ``warn``; CRIT if ``crit`` holds sustained
    in the ongoing run; INFO when the condition ended before the last step."""
    runs = runs_of(warn, min_steps)
    if not runs:
        return []
    first = int(steps[runs[0][0]])
    last_start, last_end = runs[-1]
    if last_end < len(steps):
        when = f"steps {first}-{int(steps[runs[-1][1] - 1])}; recovered by step {int(steps[last_end])}"
        return [make("INFO", first, when)]
    severity = "WARN"
    if crit is not None and runs_of(crit[last_start:last_end], min_steps):
        severity = "CRIT"
    return [make(severity, first, f"since step {first}")]


def window_diff(values: np.ndarray, window: int, min_after: int) -> tuple[np.ndarray, np.ndarray]:
    """Per index t: mean(values[t:t+window]) - mean(values[t-window:t]), and the before mean."""
    n = len(values)
    cs = np.concatenate(([0.0], np.cumsum(values)))
    t = np.arange(window, n - min_after + 1)
    if len(t) == 0:
        return t.astype(float), t.astype(float)
    after_len = np.minimum(window, n - t)
    before = (cs[t] - cs[t - window]) / window
    after = (cs[t + after_len] - cs[t]) / after_len
    diff = np.full(n, np.nan)
    base = np.full(n, np.nan)
    diff[t], base[t] = after - before, before
    return diff, base


def mean_between(stream: Stream, key: str, lo: int, hi: int) -> float:
    """Mean of finite ``key`` values for steps in [lo, hi)."""
    steps, values = stream.series(key)
    sel = values[(steps >= lo) & (steps < hi)]
    return float(sel.mean()) if len(sel) else math.nan


def reason_shares(ctx: RunView) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Per step, each trajectory_filter reason's share of all reasons (NaN where not logged)."""
    keys = ctx.stream.keys_with_prefix(REASON_PREFIX)
    table = np.vstack([ctx.stream.columns[k] for k in keys])
    total = np.nansum(table, axis=0)
    logged = np.isfinite(table).any(axis=0) & (total > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = {k[len(REASON_PREFIX):]: np.where(logged, np.nan_to_num(table[i]) / total, np.nan)
                  for i, k in enumerate(keys)}
    return logged, shares


def breakdown(ctx: RunView) -> str:
    if not ctx.stream.keys_with_prefix(REASON_PREFIX):
        return "no per-reason breakdown logged"
    logged, shares = reason_shares(ctx)
    if not logged.any():
        return "no per-reason breakdown logged"
    last = int(np.flatnonzero(logged)[-1])
    parts = sorted(((s[last], r) for r, s in shares.items()), reverse=True)
    return "reasons at step {}: {}".format(
        int(ctx.stream.steps[last]), ", ".join(f"{r} {share:.0%}" for share, r in parts if share > 0))


def recent_reason_share(stream: Stream, reason: str, last: int) -> float | None:
    """One reason's share of every trajectory-filter reason, pooled over the last `last` steps (None: no reason
    logged there). `reason_shares` is the same ratio step by step."""
    table = np.vstack([stream.columns[k] for k in stream.keys_with_prefix(REASON_PREFIX)])
    total = np.nansum(table[:, -last:])
    return float(np.nansum(stream.columns[REASON_PREFIX + reason][-last:]) / total) if total > 0 else None
