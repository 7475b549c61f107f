"""Watch report speed: time to produce the report for a STEPS x METRICS FileLogger JSONL, against
``pandas.read_json(lines=True)`` merely loading the same file (target ratio <= 1.0), and peak memory.

    python benchmarks/watch_speed.py [--steps 20000] [--metrics 400] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the synthetic-run generator
from watch_streams import step_metrics, write_jsonl

from liverl.health.analysis import watch_run


def _best_of(repeat: int, fn: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _peak_mb(fn: Callable[[], object]) -> float:
    gc.collect()
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Run the measurement and print it; returns the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--metrics", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    base = len(step_metrics(1, np.random.default_rng(0), {}))
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp)
        path = write_jsonl(run / "metrics.jsonl", range(1, args.steps + 1), {"idle_high": args.steps // 2},
                           extra=max(0, args.metrics - base))
        size_mb = path.stat().st_size / 2**20

        def report() -> str:
            return json.dumps(watch_run(run).to_dict())

        findings = json.loads(report())["findings"]
        t_report = _best_of(args.repeat, report)
        t_pandas = _best_of(args.repeat, lambda: pd.read_json(path, lines=True))
        peak_report = _peak_mb(report)
        peak_pandas = _peak_mb(lambda: pd.read_json(path, lines=True))
    figures = {"report_s": t_report, "pandas_load_s": t_pandas, "ratio": t_report / t_pandas,
               "report_peak_mb": peak_report, "pandas_peak_mb": peak_pandas}
    print(f"stream: {args.steps} steps x {max(args.metrics, base)} metrics, {size_mb:.0f} MB JSONL "
          f"(verl FileLogger); best of {args.repeat}")
    print(f"watch report:             {t_report:8.3f} s   ({len(findings)} finding(s))")
    print(f"pandas.read_json(lines):  {t_pandas:8.3f} s")
    print(f"ratio report/pandas:      {figures['ratio']:8.3f}   (target <= 1.0)")
    print(f"report peak memory:       {peak_report:8.1f} MB (tracemalloc; pandas load: {peak_pandas:.1f} MB)")
    return figures


if __name__ == "__main__":
    main()
