"""A Harbor environment that runs a task on this host, in a scratch directory: no container, no isolation.

For trusted tasks on a host without docker: the conformance gate (`python -m liverl.conform`, its default
`conform.environment=local`), GPU hosts that run no container runtime, and the tests. Harbor 0.25 has no host
environment type (harbor/environments/factory.py); this class is selected by import path (`environment.type: null,
import_path: liverl.scaffold.local_env:LocalEnvironment`). Harbor imports it in .venv-harbor (Python 3.12), so it
uses only Harbor and the standard library (like harbor_agents.py). The container paths a task uses (/app, /logs,
/tests, /solution, /installed-agent, /opt) live under one temporary root: they are rewritten in commands, in
environment values and in uploaded shell scripts. Agents run with that root's /app as their working directory. A
task's commands run as this user, with this user's files in reach: never point it at untrusted tasks.

Environment kwargs: `fail_start` (raise in start: an environment that cannot start), `links` ({container path:
host path} symlinks made at start, e.g. an agent runtime pre-baked at a mount path).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
from pathlib import Path

from harbor.environments.base import BaseEnvironment, ExecResult

MAPPED = ("/installed-agent", "/solution", "/tests", "/logs", "/app", "/opt")
# the runner's own Python settings (its path, home and venv) stay out of the task's commands, as a container's would:
# Harbor runs with LiveRL (and, where the trainer's packages sit on PYTHONPATH, those) on the path, and a runtime's
# own interpreter there imported them instead of its own (the OpenHands SDK runtime failed its install check on the
# GPU host: "FastMCP client support is not installed"). A task or agent that sets them (exec's env) still gets its
# values.
RUNNER_ONLY = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")


class LocalEnvironment(BaseEnvironment):
    def __init__(self, *args, fail_start: bool = False, links: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fail_start = fail_start
        self.links = dict(links or {})
        self.root = Path(tempfile.mkdtemp(prefix="liverl-localenv-"))

    @staticmethod
    def type() -> str:
        return "liverl-local"

    def _validate_definition(self):
        return None

    def remap(self, text: str) -> str:
        for prefix in MAPPED:
            text = text.replace(prefix + "/", f"{self.root}{prefix}/")
            if text == prefix or text.endswith(" " + prefix):
                text = text[: len(text) - len(prefix)] + f"{self.root}{prefix}"
        return text

    async def start(self, force_build: bool) -> None:
        if self.fail_start:
            raise RuntimeError("LocalEnvironment: start failed (fail_start=true)")
        for prefix in MAPPED:
            (self.root / prefix.lstrip("/")).mkdir(parents=True, exist_ok=True)
        for sub in ("logs/agent", "logs/verifier", "logs/artifacts", "home"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        for target, source in self.links.items():
            link = Path(self.remap(target.rstrip("/") + "/").rstrip("/"))
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(source)

    async def stop(self, delete: bool):
        if delete:
            shutil.rmtree(self.root, ignore_errors=True)

    async def upload_file(self, source_path, target_path: str):
        target = Path(self.remap(str(target_path)))
        target.parent.mkdir(parents=True, exist_ok=True)
        if str(source_path).endswith(".sh"):
            target.write_text(self.remap(Path(source_path).read_text()))
        else:
            shutil.copy(source_path, target)

    async def upload_dir(self, source_dir, target_dir: str):
        for path in Path(source_dir).rglob("*"):
            if path.is_file():
                await self.upload_file(path, f"{target_dir.rstrip('/')}/{path.relative_to(source_dir)}")

    async def download_file(self, source_path: str, target_path):
        Path(target_path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.remap(source_path), target_path)

    async def download_dir(self, source_dir: str, target_dir):
        shutil.copytree(self.remap(source_dir.rstrip("/") + "/"), target_dir, dirs_exist_ok=True, symlinks=True)

    async def exec(self, command: str, cwd: str | None = None, env: dict | None = None,
                   timeout_sec: int | None = None, user=None) -> ExecResult:
        merged = {k: v for k, v in os.environ.items() if k not in RUNNER_ONLY}
        merged["HOME"] = str(self.root / "home")
        merged.update({k: self.remap(str(v)) for k, v in (self._merge_env(env) or {}).items()})
        proc = await asyncio.create_subprocess_exec(
            "bash", "-c", self.remap(command), cwd=self.remap(cwd or "/app/"), env=merged,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout_sec)
        except (TimeoutError, asyncio.CancelledError):
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            raise
        return ExecResult(stdout=out.decode(errors="replace"), stderr=err.decode(errors="replace"),
                          return_code=proc.returncode)
