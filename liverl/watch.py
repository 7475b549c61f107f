"""Run health: read a run's metrics and report what is wrong, since which step, and the fix.

``python -m liverl.watch RUN_DIR [--follow] [--plot out.png] [--json] [--stop-on-critical]``
Exit code: 0 healthy, 1 warnings only, 2 critical finding (or an unreadable run).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from liverl.health.analysis import follow, load_thresholds, read_stream, watch_run
from liverl.health.plot import plot
from liverl.health.render import render_report
from liverl.health.streams import RunNotFoundError


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m liverl.watch", description=__doc__.splitlines()[0])
    parser.add_argument("run", help="run directory (metrics*.jsonl or train.log), or one such file")
    parser.add_argument("--follow", action="store_true", help="keep reading as steps arrive")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between polls with --follow")
    parser.add_argument("--max-polls", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--stop-on-critical", action="store_true", help="with --follow: exit 2 at the first CRIT")
    parser.add_argument("--plot", metavar="PNG", help="write the key series with findings marked")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--thresholds", metavar="YAML", help="merge this file over conf/watch/default.yaml")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="override one threshold, e.g. --set idle_ratio.high=0.6")
    args = parser.parse_args(argv)
    run = Path(args.run)
    try:
        cfg = load_thresholds(args.thresholds, args.sets)
        if args.follow:
            if not run.exists():
                raise RunNotFoundError(f"{run}: no such run directory or log file")
            report, stream = follow(run, cfg, args.interval, args.stop_on_critical, args.max_polls,
                                    out=sys.stderr if args.json else None)  # keep stdout pure JSON
        else:
            stream = read_stream(run, cfg)
            report = watch_run(run, cfg, stream=stream)
    except RunNotFoundError as exc:
        print(f"liverl.watch: {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"liverl.watch: cannot read thresholds or run: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.to_dict(), indent=1))
    else:
        render_report(report)
    if args.plot:
        plot(stream, report, args.plot)
        if not args.json:
            print(f"plot: {args.plot}")
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
