"""When to scale: the "When to scale" table applied to one run's config and metrics.

``python -m liverl.advise RUN_DIR [--json]`` prints, per lever, the signal this run shows, a verdict
(scale / stay / already / cannot judge) and the exact ``python -m liverl.train`` overrides.
Exit code: 0, or 2 when RUN_DIR is unreadable.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from omegaconf import OmegaConf

from liverl.guardrails.memory_inputs import predict
from liverl.health.advice import advise
from liverl.health.analysis import load_thresholds
from liverl.health.render import render_advice
from liverl.health.streams import RunNotFoundError
from liverl.memory.arch import ArchError
from liverl.rundir import LIVERL_YAML, VERL_YAML, recorded_gpu


def predicted_memory(run_dir: str | Path) -> dict | None:
    """The memory model's prediction for the plan in RUN_DIR (its liverl.yaml and verl.yaml), or None."""
    base = Path(run_dir)
    if not (base / LIVERL_YAML).is_file() or not (base / VERL_YAML).is_file():
        return None
    gpu = recorded_gpu(base)  # the GPU a launch found (run.json "gpu", source "probe"), else the plan's gpu group
    probed = gpu["memory_bytes"] if gpu and gpu.get("source") == "probe" else None
    try:
        return predict(OmegaConf.load(base / LIVERL_YAML), OmegaConf.load(base / VERL_YAML), gpu=probed)
    except (ArchError, TypeError, ValueError, KeyError):  # a plan too old or too partial to predict from
        return None


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m liverl.advise", description=__doc__.splitlines()[0])
    parser.add_argument("run", help="run directory (liverl.yaml and metrics*.jsonl / train.log)")
    parser.add_argument("--json", action="store_true", help="print the advice as JSON")
    parser.add_argument("--thresholds", metavar="YAML", help="merge this file over conf/watch/default.yaml")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="override one threshold, e.g. --set advise.gpu_memory_gb=80")
    args = parser.parse_args(argv)
    try:
        advice = advise(args.run, load_thresholds(args.thresholds, args.sets), predicted_memory(args.run))
    except RunNotFoundError as exc:
        print(f"liverl.advise: {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"liverl.advise: cannot read thresholds or run: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([asdict(a) for a in advice], indent=1))
    else:
        render_advice(advice, args.run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
