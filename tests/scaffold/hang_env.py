"""A test environment whose start never finishes (a sandbox that hangs coming up), for deadline/cancel tests.

Imported by Harbor in .venv-harbor. `start` launches two stand-in processes and records their PIDs in `pid_file`:
a "container" in its own session (like a docker container: only the environment's `stop` ends it) and a "helper"
in the runner's process group (only a signal to that group ends it); then it waits forever. `stop` (Harbor's
teardown) kills the container.
"""

from __future__ import annotations

import asyncio
import os
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
