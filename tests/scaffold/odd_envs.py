"""Test environments that misbehave like real sandboxes do. Imported by Harbor in .venv-harbor.

HangingEnvironment: its start never finishes (a sandbox that hangs coming up), for deadline/cancel tests. `start`
launches two stand-in processes and records their PIDs in `pid_file`: a "container" in its own session (like a
docker container: only the environment's `stop` ends it) and a "helper" in the runner's process group (only a
signal to that group ends it); then it waits forever. `stop` (Harbor's teardown) kills the container.

NoCoreutilsEnvironment: an image without GNU coreutils (busybox-like): commands run with a PATH that holds only
bash, sh and python3, so `stdbuf` and `tee` are missing and no package manager is found.

RecordingEnvironment: the local environment, logging every command run in it.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

from local_env import LocalEnvironment


class HangingEnvironment(LocalEnvironment):
    def __init__(self, *args, pid_file: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.pid_file = Path(pid_file)
        self.container: subprocess.Popen | None = None

    async def start(self, force_build: bool) -> None:
        self.container = subprocess.Popen(["sleep", "600"], start_new_session=True)
        helper = subprocess.Popen(["sleep", "600"])
        self.pid_file.write_text(f"{self.container.pid} {helper.pid}\n")
        await asyncio.sleep(3600)

    async def stop(self, delete: bool):
        if self.container is not None:
            os.killpg(self.container.pid, signal.SIGKILL)
            self.container.wait()
        await super().stop(delete)


class NoCoreutilsEnvironment(LocalEnvironment):
    async def start(self, force_build: bool) -> None:
        await super().start(force_build)
        self.bin = self.root / "minimal-bin"
        self.bin.mkdir()
        for tool in ("bash", "sh", "python3"):
            found = shutil.which(tool)
            if found:
                (self.bin / tool).symlink_to(found)

    async def exec(self, command: str, cwd: str | None = None, env: dict | None = None,
                   timeout_sec: int | None = None, user=None):
        return await super().exec(command, cwd, {**(env or {}), "PATH": str(self.bin)}, timeout_sec, user)


class RecordingEnvironment(LocalEnvironment):
    """The local environment, writing each command it runs as one JSON line to `log_file` (what the agent's set-up
    and run ask of the sandbox)."""

    def __init__(self, *args, log_file: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.log_file = Path(log_file)

    async def exec(self, command: str, cwd: str | None = None, env: dict | None = None,
                   timeout_sec: int | None = None, user=None):
        with self.log_file.open("a") as f:
            f.write(json.dumps(command) + "\n")
        return await super().exec(command, cwd, env, timeout_sec, user)
