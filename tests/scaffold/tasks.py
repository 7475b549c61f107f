"""Tiny real Harbor tasks written at test time: an instruction, task.toml, and a verifier that writes the reward."""

from __future__ import annotations

from pathlib import Path

TEST_SH = """#!/bin/bash
if [ "$(cat /app/answer.txt 2>/dev/null)" = "42" ]; then echo 1 > /logs/verifier/reward.txt; \
else echo 0 > /logs/verifier/reward.txt; fi
"""


def write_task(root: Path, name: str = "write-42", agent_timeout: float = 60) -> Path:
    task = root / name
    (task / "tests").mkdir(parents=True, exist_ok=True)
    (task / "environment").mkdir(exist_ok=True)
    (task / "instruction.md").write_text("Write the number 42 into answer.txt in the working directory.\n")
    (task / "task.toml").write_text(
        f'version = "1.0"\n\n[agent]\ntimeout_sec = {agent_timeout}\n\n[verifier]\ntimeout_sec = 60\n\n'
        "[environment]\nbuild_timeout_sec = 60\n"
    )
    (task / "environment" / "Dockerfile").write_text("FROM ubuntu:24.04\nWORKDIR /app\n")
    (task / "tests" / "test.sh").write_text(TEST_SH)
    return task
