"""`python -m liverl.tiny.smoke [--topology gpu1|gpu2] [--engine fsdp|veomni] [override ...]`: the real GPU smoke.

Builds the tiny workload (liverl.tiny.generate) unless it is there, trains `--steps` steps with
`python -m liverl.train experiment=smoke_tiny launcher=local`, launches again into the same run directory for
`--resume-steps` more (verl resumes from the checkpoint: step numbers continue), and prints what happened:
steps per attempt, seconds per step, peak GPU memory verl reported, the checkpoint resumed from.
Exit 0 only when both attempts succeeded and the second resumed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from liverl.tiny.generate import generate

TIME_KEY = "timing_s/step"
# verl 0.9.1 logs the trainer's memory under actor/perf/ (seen on the GPU host; no plain perf/max_memory_*)
MEMORY_KEYS = ("actor/perf/max_memory_allocated_gb", "actor/perf/max_memory_reserved_gb")


def read_metrics(path: Path) -> list[dict]:
    """verl's FileLogger lines ({"step": N, "data": {...}}), skipping a torn last line."""
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def attempt_report(path: Path) -> dict:
    """Steps, seconds per step and peak memory of one attempt's metrics file."""
    rows = [r for r in read_metrics(path) if isinstance(r.get("data"), dict)]
    steps = [r["step"] for r in rows]
    times = [r["data"][TIME_KEY] for r in rows if TIME_KEY in r["data"]]
    memory = {k: max((r["data"][k] for r in rows if k in r["data"]), default=None) for k in MEMORY_KEYS}
    return {
        "metrics": path.name,
        "steps": steps,
        "s_per_step": round(sum(times) / len(times), 2) if times else None,
        **{k.split("/")[-1]: v for k, v in memory.items()},
    }


def report(run_dir: Path) -> dict:
    """What the run directory shows: each attempt's metrics, the checkpoints, the resume point."""
    files = sorted(run_dir.glob("metrics*.jsonl"), key=lambda p: (len(p.name), p.name))
    run = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").is_file() else {}
    ckpts = sorted(p.name for p in (run_dir / "checkpoints").glob("global_step_*")) if run_dir.exists() else []
    return {
        "run_dir": str(run_dir),
        "attempts": [attempt_report(p) for p in files],
        "checkpoints": ckpts,
        "resumed_from": run.get("resume_from"),
        "status": run.get("status"),
    }


def train_command(run_dir: Path, steps: int, args: argparse.Namespace) -> list[str]:
    return [
        sys.executable, "-m", "liverl.train", "experiment=smoke_tiny", f"topology={args.topology}",
        f"engine={args.engine}", "launcher=local", f"total_training_steps={steps}", f"hydra.run.dir={run_dir}",
        *args.overrides,
    ]


def run_then_resume(command: Callable[[int], list[str]], steps: int, resume_steps: int, run_dir: Path,
                    env: dict[str, str] | None = None) -> tuple[int, dict]:
    """Launch `command(steps)`, then (when it succeeded and resume_steps > 0) `command(steps + resume_steps)` into the
    same run directory, which resumes from the first launch's checkpoint. Returns (exit code, report(run_dir)) with
    each attempt's wall seconds (plan, Ray, vLLM and trainer start-up, steps, checkpoints)."""
    walls = []
    code = 0
    for total in (steps, steps + resume_steps) if resume_steps > 0 else (steps,):
        cmd = command(total)
        print("LiveRL smoke: " + " ".join(cmd[1:]), flush=True)
        start = time.monotonic()
        code = subprocess.call(cmd, env=env)
        walls.append(round(time.monotonic() - start, 1))
        if code != 0:
            break
    result = report(run_dir)
    for attempt, wall in zip(result["attempts"], walls, strict=False):  # an attempt may have left no metrics
        attempt["wall_s"] = wall
    return code, result


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m liverl.tiny.smoke", description=__doc__.splitlines()[0])
    p.add_argument("--topology", default="gpu1")
    p.add_argument("--engine", default="fsdp")
    p.add_argument("--steps", type=int, default=3, help="steps of the first attempt")
    p.add_argument("--resume-steps", type=int, default=2, help="further steps of the relaunch (0: no relaunch)")
    p.add_argument("--tiny-dir", type=Path, default=Path(os.environ.get("LIVERL_TINY_DIR", "runs/tiny")))
    p.add_argument("--run-dir", type=Path, default=None)
    p.add_argument("--untied", action="store_true", help="generate the tiny model with an LM head of its own")
    p.add_argument("overrides", nargs="*", help="more liverl.train overrides")
    args = p.parse_args(argv)
    tiny = args.tiny_dir.resolve()
    if not (tiny / "tiny.json").is_file():
        generate(tiny, tied=not args.untied)
    run_dir = (args.run_dir or Path("runs") / f"smoke_tiny_{args.topology}_{args.engine}").resolve()
    env = {**os.environ, "LIVERL_TINY_DIR": str(tiny)}
    code, result = run_then_resume(lambda steps: train_command(run_dir, steps, args), args.steps, args.resume_steps,
                                   run_dir, env)
    return finish("LiveRL smoke", code, result, args.resume_steps)


def finish(label: str, code: int, result: dict, resume_steps: int) -> int:
    """Print the smoke's result line; a relaunch that did not resume from a checkpoint fails the smoke (exit 1)."""
    print(f"{label} result: " + json.dumps(result), flush=True)
    if code == 0 and resume_steps > 0 and not result["resumed_from"]:
        print(f"{label}: the relaunch did not resume from a checkpoint", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
