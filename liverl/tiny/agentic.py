"""`python -m liverl.tiny.agentic OUT_DIR --tasks N`: a toy agentic task family in Harbor's task format, with the
verl datasets the Harbor agent loop reads.

Two kinds, each solvable in 1-3 tool calls, each with partial credit:
- `file`: "Create the file NAME containing exactly TEXT." 0.5 when NAME exists, 1.0 when its text is TEXT.
- `func`: "Make this one-line test pass" (a Python module NAME.py whose function `value()` returns N). 0.25 when
  the module exists, 0.5 when it imports, 1.0 when the test passes.

Each task is a Harbor 0.25 task directory: instruction.md, task.toml, environment/Dockerfile (unused by the local
environment, kept so docker hosts run it too), tests/test.sh and solution/solve.sh (Harbor's oracle agent). The
verifier writes one number to /logs/verifier/reward.txt: Harbor reads that file when no reward.json exists
(harbor/verifier/verifier.py:69-89, 299-310; float(text)). No task needs files in /app at start, so
`liverl.scaffold.local_env:LocalEnvironment` (no docker) runs it as is: it rewrites /app/ and /logs/ in uploaded
scripts (local_env.py upload_file).

OUT_DIR/tasks/<id>/ holds the tasks; OUT_DIR/data/{train,val}.parquet one row per task in verl's dataset format,
`extra_info.harbor_task_path` and `extra_info.split` (liverl/scaffold/agent_loop.py task_path_of, is_validation).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path

# Harbor's import path of LiveRL's local environment (no docker, this host): the agentic smoke and the conformance
# gate (liverl/conform/run.py) select it; Harbor imports the class in .venv-harbor
LOCAL_ENV = "liverl.scaffold.local_env:LocalEnvironment"

DATA_SOURCE = "liverl_tiny_agentic"
KINDS = ("file", "func")
NAMES = ("notes", "hello", "answer", "result", "output", "greeting", "data", "report", "memo", "todo")
TEXTS = ("hello world", "forty two", "blue sky", "green tea", "red apple", "seven seas", "good morning", "done")

TASK_TOML = """version = "1.0"

[agent]
timeout_sec = {agent_timeout}

[verifier]
timeout_sec = 60

[environment]
build_timeout_sec = 60
"""
DOCKERFILE = "FROM python:3.12-slim\nWORKDIR /app\n"

FILE_TEST = """#!/bin/bash
# partial credit: 0.5 when the file exists, 1 when its text (trailing newline ignored) is the asked text
f=/app/{name}
if [ ! -f "$f" ]; then echo 0 > /logs/verifier/reward.txt; exit 0; fi
if [ "$(cat "$f")" = {text_q} ]; then echo 1 > /logs/verifier/reward.txt; else echo 0.5 > /logs/verifier/reward.txt; fi
"""
FUNC_TEST = """#!/bin/bash
# partial credit: 0.25 when the module exists, 0.5 when it imports, 1 when the one-line test passes
cd /app/
if [ ! -f {name}.py ]; then echo 0 > /logs/verifier/reward.txt; exit 0; fi
if ! python3 -c 'import {name}' >/dev/null 2>&1; then echo 0.25 > /logs/verifier/reward.txt; exit 0; fi
if python3 -c {test_q} >/dev/null 2>&1; then echo 1 > /logs/verifier/reward.txt; \
else echo 0.5 > /logs/verifier/reward.txt; fi
"""


def shell_quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


@dataclass(frozen=True)
class ToyTask:
    """One task: its kind, the file it asks for and the content a correct solution writes there."""

    kind: str
    name: str  # the file the agent must write, relative to the working directory
    content: str  # what a correct solution writes into it
    instruction: str
    test: str  # the verifier's test.sh

    @property
    def solve_command(self) -> str:
        """A shell command that solves the task (the oracle's solve.sh, and the warm start's tool call)."""
        return f"printf '%s\\n' {shell_quote(self.content)} > {self.name}"


def make_task(kind: str, rng: random.Random) -> ToyTask:
    if kind == "file":
        name, text = rng.choice(NAMES) + ".txt", rng.choice(TEXTS)
        return ToyTask(kind, name, text, f"Create the file {name} containing exactly this text: {text}",
                       FILE_TEST.format(name=name, text_q=shell_quote(text)))
    if kind == "func":
        module, number = rng.choice(NAMES), rng.randint(0, 99)
        test = f"import {module}; assert {module}.value() == {number}"
        return ToyTask(kind, f"{module}.py", f"def value():\n    return {number}",
                       f"Make this one-line test pass in the working directory: python3 -c \"{test}\"",
                       FUNC_TEST.format(name=module, test_q=shell_quote(test)))
    raise ValueError(f"kind: unknown toy task kind (got: {kind!r}); use one of {', '.join(KINDS)}")


def write_task(root: Path, task_id: str, task: ToyTask, agent_timeout: float = 120) -> Path:
    path = root / task_id
    for sub in ("tests", "environment", "solution"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    (path / "instruction.md").write_text(task.instruction + "\n")
    (path / "task.toml").write_text(TASK_TOML.format(agent_timeout=agent_timeout))
    (path / "environment" / "Dockerfile").write_text(DOCKERFILE)
    (path / "tests" / "test.sh").write_text(task.test)
    (path / "solution" / "solve.sh").write_text(f"#!/bin/bash\ncd /app/\n{task.solve_command}\n")
    (path / "toy.json").write_text(json.dumps({"kind": task.kind, "name": task.name, "content": task.content}) + "\n")
    return path


def tasks(n: int, seed: int, split: str) -> list[ToyTask]:
    rng = random.Random(f"{seed}-{split}")
    return [make_task(KINDS[i % len(KINDS)], rng) for i in range(n)]


def row(task: ToyTask, path: Path, split: str, index: int) -> dict:
    """One verl dataset row: the instruction as the user turn (RLHFDataset's raw_prompt), the task's path."""
    return {"data_source": DATA_SOURCE, "prompt": [{"role": "user", "content": task.instruction}],
            "ability": f"agentic_{task.kind}", "reward_model": {"style": "harbor", "ground_truth": ""},
            "extra_info": {"harbor_task_path": str(path), "split": split, "index": index}}


def generate(out: Path, n_tasks: int, n_val: int = 4, seed: int = 0) -> dict[str, str]:
    """Write OUT/tasks/<split>-<i> and OUT/data/{train,val}.parquet; returns the paths (also OUT/agentic.json)."""
    import pandas as pd

    if n_tasks < 1 or n_val < 1:
        raise ValueError(f"tasks: need at least one training and one validation task (got: {n_tasks}, {n_val})")
    out = out.resolve()
    (out / "data").mkdir(parents=True, exist_ok=True)
    paths = {"tasks": str(out / "tasks"), "train": str(out / "data" / "train.parquet"),
             "val": str(out / "data" / "val.parquet")}
    for split, n in (("train", n_tasks), ("val", n_val)):
        rows = [row(t, write_task(out / "tasks", f"{split}-{i:04d}", t), split, i)
                for i, t in enumerate(tasks(n, seed, split))]
        pd.DataFrame(rows).to_parquet(paths[split])
    (out / "agentic.json").write_text(json.dumps(paths, indent=2) + "\n")
    return paths


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m liverl.tiny.agentic", description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path, help="output folder (tasks/ and data/ are written under it)")
    p.add_argument("--tasks", type=int, default=64, help="training tasks")
    p.add_argument("--val", type=int, default=8, help="validation tasks")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    if a.tasks < 1 or a.val < 1:
        print(f"tasks: need at least one training and one validation task (got: --tasks {a.tasks} --val {a.val})",
              file=sys.stderr)
        return 2
    print(json.dumps(generate(a.out, a.tasks, a.val, a.seed)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
