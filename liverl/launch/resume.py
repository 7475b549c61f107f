"""Launching again into a run directory: a new attempt that keeps every earlier one, resuming from verl's checkpoint.

Attempt N's plan files (liverl.yaml, verl.yaml, summary.txt, provenance/, errors.txt, ...) move to
`attempts/N/` when attempt N+1 is planned; run.json keeps the whole status history and one line per earlier
attempt. Metrics and checkpoints stay in place: each attempt writes its own metrics file (metrics.jsonl,
metrics.1.jsonl, ...) and verl (`trainer.resume_mode=auto`) resumes from the latest `global_step_N` under
`trainer.default_local_dir`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
from pathlib import Path

from omegaconf import DictConfig

from liverl.rundir import (
    AGENT_LOOP_YAML,
    COMMAND_SH,
    ENV_JSON,
    ERRORS_TXT,
    LIVERL_YAML,
    RUN_JSON,
    SUMMARY_TXT,
    VERL_YAML,
    update_run,
)

ATTEMPTS_DIR = "attempts"
# a plan's files that belong to one attempt (metrics, checkpoints and logs accumulate across attempts)
ATTEMPT_FILES = (
    LIVERL_YAML, VERL_YAML, AGENT_LOOP_YAML, COMMAND_SH, ENV_JSON, SUMMARY_TXT, ERRORS_TXT,
    "checks.json", "traceback.txt", "slurm.sbatch", "provenance",
)
# what the entrypoint verifies before running: the files that decide what runs
DIGEST_FILES = (VERL_YAML, AGENT_LOOP_YAML, ENV_JSON)


def start_attempt(run_dir: Path) -> int:
    """Archive the previous attempt's plan files (if any) and start run.json afresh; returns this attempt's number."""
    path = run_dir / RUN_JSON
    if not path.is_file():
        return 0
    previous = json.loads(path.read_text())
    n = previous.get("attempt", 0)
    keep = run_dir / ATTEMPTS_DIR / str(n)
    keep.mkdir(parents=True, exist_ok=True)
    for name in ATTEMPT_FILES:
        if (run_dir / name).exists():
            shutil.move(run_dir / name, keep / name)
    shutil.copy2(path, keep / RUN_JSON)
    record = {k: previous.get(k) for k in ("status", "job_id", "slurm_job_id", "metrics", "resume_from")}
    fresh = {
        "attempt": n + 1,
        "attempts": [*previous.get("attempts", []), {"attempt": n, **{k: v for k, v in record.items() if v}}],
        "history": previous.get("history", []),
    }
    path.write_text(json.dumps(fresh, indent=2) + "\n")
    return n + 1


def resume_point(verl_cfg: DictConfig) -> str | None:
    """The checkpoint verl will resume from, found the way verl's trainer finds it (None: a fresh start)."""
    trainer = verl_cfg.trainer
    mode = trainer.get("resume_mode", "auto")
    if mode == "disable":
        return None
    if mode == "resume_path":
        return trainer.get("resume_from_path")
    if not (Path(str(trainer.default_local_dir)) / "latest_checkpointed_iteration.txt").is_file():
        return None  # verl's finder starts with this tracker file; importing it costs ~0.6 s, so skip when absent
    from verl.utils.checkpoint.checkpoint_manager import find_latest_ckpt_path

    with contextlib.redirect_stdout(io.StringIO()):  # verl prints where it looked
        return find_latest_ckpt_path(str(trainer.default_local_dir))


def plan_digest(run_dir: Path) -> str:
    """sha256 over the files that decide what runs; the launched entrypoint refuses a plan that differs."""
    h = hashlib.sha256()
    for name in DIGEST_FILES:
        h.update(name.encode() + b"\0" + (run_dir / name).read_bytes() + b"\0")
    return h.hexdigest()


def record_plan(run_dir: Path, verl_cfg: DictConfig) -> str | None:
    """Record the plan's digest and resume point in run.json, and the resume point in summary.txt."""
    resume = resume_point(verl_cfg)
    update_run(run_dir, plan_sha256=plan_digest(run_dir), resume_from=resume)
    mode = verl_cfg.trainer.get("resume_mode", "auto")
    line = f"resumes from {resume}" if resume else "starts fresh (no checkpoint to resume from)"
    with (run_dir / SUMMARY_TXT).open("a") as f:
        f.write(f"  resume      {line} (trainer.resume_mode={mode})\n")
    return resume
