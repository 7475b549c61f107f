"""`python -m liverl.check [--structure-only] [--all] [--rules] [overrides]`: the guardrails, without launching.

Exit 0: no finding; 1: warnings; 2: a FATAL finding or a configuration error. The rules live in
liverl/guardrails/rules/; this command composes, builds and reports.
"""

from __future__ import annotations

import argparse
import os
import sys

from liverl.errors import CONFIG_ERROR_EXIT, ConfigError
from liverl.guardrails import RULES, TITLES, WARN, report
from liverl.recipe.build import build
from liverl.recipe.compose import compose_liverl, group_options
from liverl.recipe.environ import arguments


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m liverl.check",
        description="Check a LiveRL run without launching it. Exit 0: no finding; 1: warnings; 2: a FATAL finding.",
    )
    parser.add_argument(
        "--structure-only",
        action="store_true",
        help="check only what needs no file on this disk (checkpoint, data, new-verl checkout are SKIP)",
    )
    parser.add_argument("--all", action="store_true", help="check every preset (experiment=...) instead of one config")
    parser.add_argument("--launching", action="store_true", help="judge as a launch would (paths, smoke ledger FATAL)")
    parser.add_argument("--rules", action="store_true", help="list the rule ids and exit")
    parser.add_argument("overrides", nargs="*", help="LiveRL overrides, as for python -m liverl.train")
    args = parser.parse_args(argv)
    if args.rules:
        print("\n".join(f"{rule_id:26} {TITLES[rule_id]}" for rule_id in RULES))
        return 0
    overrides = arguments(args.overrides, os.environ).args  # the documented environment, as liverl.train reads it
    runs = [[f"experiment={p}", *overrides] for p in group_options("experiment")] if args.all else [overrides]
    worst = 0
    for overrides in runs:
        label = " ".join(overrides) or "(defaults)"
        try:
            b = build(compose_liverl(overrides), structure_only=args.structure_only, launching=args.launching)
        except ConfigError as exc:
            print(f"== {label}\n{exc}")
            worst = CONFIG_ERROR_EXIT
            continue
        print(f"== {label}\n{report(b.findings)}", end="")
        if any(f.severity == WARN for f in b.findings):
            worst = max(worst, 1)
    return worst


def main() -> None:
    code = _main(sys.argv[1:])
    sys.stdout.flush()
    os._exit(code)  # skip torch/ray interpreter teardown


if __name__ == "__main__":
    main()
