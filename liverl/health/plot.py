"""Plot a run's watched series with findings marked at their first step."""

from __future__ import annotations

import math
from pathlib import Path

from liverl.health.catalogue import PLOT_SERIES, REPORT_ONLY
from liverl.health.findings import Report
from liverl.health.streams import Stream


def plot(stream: Stream, report: Report, out: str | Path) -> Path:
    """One panel per watched series present; findings marked at their first step on their own series
    and on series their message names (else on the first panel)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in (stream.first(*group) for group in PLOT_SERIES) if k]
    cols = 2 if len(keys) > 1 else 1
    rows = max(1, math.ceil(len(keys) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 2.4 * rows), squeeze=False, sharex=True)
    colors = {"CRIT": "red", "WARN": "orange", "INFO": "tab:blue"}
    for ax, key in zip(axes.flat, keys, strict=False):
        steps, values = stream.series(key)
        ax.plot(steps, values, lw=1)
        ax.set_title(key, fontsize=9)
        for f in report.findings:
            if f.id in REPORT_ONLY or f.first_step is None:
                continue
            panels = [k for k in keys if k == f.metric or k in f.message] or keys[:1]
            if key in panels:
                ax.axvline(f.first_step, color=colors[f.severity], ls="--", lw=1.2)
                ax.annotate(f"{f.severity} {f.id}", (f.first_step, 1.0), xycoords=("data", "axes fraction"),
                            fontsize=7, color=colors[f.severity], va="top", ha="left")
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    if not keys:
        axes.flat[0].text(0.5, 0.5, "no watched series in this run", ha="center", va="center")
    fig.suptitle(f"{report.run} (exit {report.exit_code})", fontsize=10)
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
