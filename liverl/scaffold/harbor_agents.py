"""Harbor agent classes of LiveRL's scaffolds. Imports Harbor: loaded only in .venv-harbor (Python 3.12).

`MountedOpenHandsSDK` (scaffold=ohsdk, agent name null + this import path): Harbor's own OpenHands SDK agent
(harbor/agents/installed/openhands_sdk.py) with its runtime pre-baked into the agent image at a configurable mount
path (`runtime_root`, a venv with openhands-sdk and openhands-tools). It never installs anything in the pod:
Harbor's registry default runs curl | sh, `uv python install` and `uv pip install` when /opt/openhands-sdk-venv is
missing (openhands_sdk.py:249-283), which fails on no-egress task pods. A missing runtime is an agent set-up
failure, so the trial ends `env_setup_failed`.

Harbor's run command pipes the agent through `stdbuf -oL tee` (openhands_sdk.py:413), so the image needs GNU
coreutils' `stdbuf` (busybox images have none). Like Harbor's own install (openhands_sdk.py:258), `install` asks
Harbor to ensure coreutils (it installs them where a package manager and egress exist) and then checks for
`stdbuf` and `tee`: an image without them fails at set-up with that reason, not mid-run.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from harbor.agents.installed import openhands_sdk
from harbor.agents.installed.openhands_sdk import OpenHandsSDK
from harbor.environments.base import BaseEnvironment

DEFAULT_RUNTIME_ROOT = "/opt/liverl-agent-runtime/openhands-sdk"
RUN_COMMAND_TOOLS = ("stdbuf", "tee")  # Harbor's run command: `... 2>&1 | stdbuf -oL tee ...`
HARBOR_VENV = "/opt/openhands-sdk-venv/"


class MountedOpenHandsSDK(OpenHandsSDK):
    def __init__(self, *args, runtime_root: str = DEFAULT_RUNTIME_ROOT, **kwargs):
        super().__init__(*args, **kwargs)
        self.runtime_root = runtime_root.rstrip("/")

    @property
    def runtime_python(self) -> str:
        return f"{self.runtime_root}/bin/python"

    def get_version_command(self) -> str | None:
        return f"{shlex.quote(self.runtime_python)} -c 'import openhands.sdk; print(openhands.sdk.__version__)'"

    async def install(self, environment: BaseEnvironment) -> None:
        # one import of the SDK both checks the runtime and reads its version, so Harbor's setup skips its own
        # version command (harbor/agents/installed/base.py:1142, `if self._version is None`): a second whole import
        # per trial (~7 CPU seconds; on the GPU host set-up took 62 s of a 124 s trial, 32 at once on 16 cores)
        check = await environment.exec(command=self.get_version_command())
        if check.return_code != 0:
            raise RuntimeError(
                f"Agent install failed: no pre-built OpenHands SDK runtime at {self.runtime_root} (mount the agent "
                "runtime image there, or set scaffold.harbor.agent_kwargs.runtime_root); LiveRL never installs "
                "the SDK in the pod"
            )
        self._version = (check.stdout.strip().splitlines() or [None])[-1]  # the print's line, after any log lines
        await self.ensure_system_dependencies(environment, ("coreutils",))
        tools = " && ".join(f"command -v {t} >/dev/null 2>&1" for t in RUN_COMMAND_TOOLS)
        if (await environment.exec(command=tools)).return_code != 0:
            raise RuntimeError(
                f"Agent install failed: the agent image has no {' / '.join(RUN_COMMAND_TOOLS)} (GNU coreutils), "
                "which Harbor's OpenHands run command pipes through (stdbuf -oL tee); add coreutils to the image"
            )
        source = Path(openhands_sdk.__file__).with_name("openhands_sdk_runner.py")  # Harbor's own runner script
        local_copy = self.logs_dir / "run_agent.py"
        local_copy.write_text(source.read_text())
        await environment.upload_file(source_path=local_copy, target_path="/installed-agent/run_agent.py")

    async def exec_as_agent(self, environment: BaseEnvironment, command: str, *args, **kwargs):
        return await super().exec_as_agent(environment, command.replace(HARBOR_VENV, self.runtime_root + "/"),
                                           *args, **kwargs)
