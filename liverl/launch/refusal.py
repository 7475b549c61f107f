"""A launch that does not start: the exit codes every launcher shares, and how a refusal is recorded and reported."""

from __future__ import annotations

import socket
import sys

from liverl.errors import CONFIG_ERROR_EXIT
from liverl.rundir import Plan, set_status

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_NO_RESOURCES = 3
FORWARD_ENV = "LIVERL_FORWARD_ENV"  # names of variables a launched entrypoint passes on to the Ray workers


class LaunchRefused(Exception):
    """The plan cannot start here (too few GPUs, agent loop not importable); nothing was launched."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


def refuse(plan: Plan, exc: LaunchRefused) -> int:
    """Record and report a launch that did not start; returns its exit code."""
    set_status(plan.run_dir, "refused", reason=str(exc))
    print(f"LiveRL: refusing to launch: {exc}", file=sys.stderr)
    return exc.code


def reachable(address: str) -> None:
    """A Ray address that does not answer is refused within seconds (ray.init would retry for minutes)."""
    if address in ("local", "auto"):
        return
    host, _, port = address.split("://")[-1].rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except (OSError, ValueError) as exc:
        raise LaunchRefused(
            f"launcher.address / RAY_ADDRESS: cannot reach a Ray cluster at {address!r} ({exc}). "
            "Nothing was launched.\n"
            "    fix: start the cluster first (ray start --head on the head node), or unset RAY_ADDRESS to use an "
            "embedded Ray",
            CONFIG_ERROR_EXIT,
        ) from None


