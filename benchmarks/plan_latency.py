"""Plan latency, measured in one run (fresh interpreters, medians of REPEAT):

1. wall time of a full `python -m liverl.train topology=3node batch=smoke launcher=dryrun` (compose, build verl's
   config, verl's own validation, write the run directory) against `python -c "import verl.utils.config"` alone;
   target ratio <= 1.25. Both sides end the same way: liverl.train skips the interpreter teardown with os._exit
   when it launched nothing, so the baseline does too (tests/test_plan_latency_exit.py checks that neither tears down).
2. wall time of one process that composes, builds and validates all 24 engine x topology x scaffold x batch
   combinations (imports included); target <= 10 s on 2 cores.

Usage: python benchmarks/plan_latency.py [--repeat N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ALL_COMBOS = """
import time
start = time.perf_counter()
import itertools
from liverl.recipe.build import build
from liverl.recipe.compose import compose_liverl
for e, t, s, b in itertools.product(["fsdp", "veomni"], ["1node", "2node", "3node"], ["claude_code", "ohsdk"],
                                    ["smoke", "official"]):
    build(compose_liverl([f"engine={e}", f"topology={t}", f"scaffold={s}", f"batch={b}"]))
print(time.perf_counter() - start)
"""


# the baseline: import verl's config module, then exit as liverl.train does when nothing was launched
BASELINE = "import verl.utils.config, os, sys; sys.stdout.flush(); sys.stderr.flush(); os._exit(0)"


def plan_command(run_dir: Path) -> list[str]:
    return ["-m", "liverl.train", "topology=3node", "batch=smoke", "launcher=dryrun", f"hydra.run.dir={run_dir}"]


def wall(cmd: list[str], cwd: str) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - start


def all_combos(py: str, cwd: str) -> tuple[float, float]:
    """(seconds from the process's first line to all 24 validated, wall time including interpreter exit)."""
    start = time.perf_counter()
    out = subprocess.run([py, "-c", ALL_COMBOS], cwd=cwd, check=True, capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1]), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    repeat = parser.parse_args().repeat
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        wall([py, "-c", BASELINE], tmp)  # warm the disk cache for both sides
        imports, plans = [], []
        for i in range(repeat):  # interleaved, so machine load affects both sides alike
            imports.append(wall([py, "-c", BASELINE], tmp))
            plans.append(wall([py, *plan_command(Path(tmp) / f"run{i}")], tmp))
        runs = [all_combos(py, tmp) for _ in range(max(1, repeat // 2))]
        combos, combos_wall = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
    imp, plan = statistics.median(imports), statistics.median(plans)
    print(f"import verl.utils.config      {imp:6.2f} s  (median of {repeat}; both sides exit with os._exit)")
    print(f"full dryrun plan (3node)      {plan:6.2f} s  (median of {repeat})")
    ok = "OK" if plan / imp <= 1.25 else "MISSED"
    print(f"ratio plan / import           {plan / imp:6.2f}    target <= 1.25  {ok}")
    print(f"all 24 combinations, 1 proc   {combos:6.2f} s  target <= 10 s   {'OK' if combos <= 10 else 'MISSED'}"
          f"  (imports included; {combos_wall:.2f} s wall with interpreter start and exit)")


if __name__ == "__main__":
    main()
