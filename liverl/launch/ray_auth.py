"""Ray 2.60's token authentication, for every LiveRL path that talks to a cluster (launcher=ray_job, launcher=local
with RAY_ADDRESS, status, stop, the node probe, `python -m liverl.cluster` behind scripts/ray_cluster.sh).

A token cluster (`ray start --head` that finds a token, or RAY_AUTH_MODE=token) answers only clients that send its
token. Ray's client sends one in token mode (RAY_AUTH_MODE=token), read from RAY_AUTH_TOKEN, else the file named by
RAY_AUTH_TOKEN_PATH, else ~/.ray/auth_token. ray.init turns token mode on by itself only for a local cluster it
finds, never for an explicit address (ray/_private/worker.py:1972-1977), and LiveRL always gives one: so LiveRL does
what ray.init does for a local cluster, for this process and what it starts (Ray's workers, a job's driver). The token
stays where the user keeps it: LiveRL never copies it into a run directory, a plan, or a job's runtime env (a Ray
job's driver runs on the head, which has its own token); a job gets RAY_AUTH_MODE=token, not the token.
"""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import sys
from pathlib import Path

from liverl.launch.refusal import EXIT_NO_RESOURCES, LaunchRefused, reachable
from liverl.secrets import scrub

MODE = "RAY_AUTH_MODE"
TOKEN = "RAY_AUTH_TOKEN"
TOKEN_PATH = "RAY_AUTH_TOKEN_PATH"
DEFAULT_TOKEN_FILE = "~/.ray/auth_token"  # ray/_private/authentication/authentication_token_setup.py:56-62


def token_source() -> str | None:
    """Where Ray's client would find a token here (the variable or file, never the token), or None."""
    if os.environ.get(TOKEN, "").strip():
        return TOKEN
    path = os.environ.get(TOKEN_PATH)
    if path:
        return f"{TOKEN_PATH}={path}" if Path(path).expanduser().is_file() else None
    return DEFAULT_TOKEN_FILE if Path(DEFAULT_TOKEN_FILE).expanduser().is_file() else None


def use_token_if_found() -> bool:
    """Token mode for this process and its children when RAY_AUTH_MODE is unset and a token is found (an explicit
    RAY_AUTH_MODE is respected, as Ray does: authentication_token_setup.py:97-112). True in token mode."""
    if MODE in os.environ:
        return os.environ[MODE].lower() == "token"
    if token_source() is None:
        return False
    os.environ[MODE] = "token"
    if "ray._raylet" in sys.modules:  # Ray caches its config: refresh it as Ray does (_enable_token_auth)
        from ray._raylet import Config

        Config.initialize("")
    return True


def job_env() -> dict[str, str]:
    """What a Ray job needs to talk to its token cluster: the mode, never the token (the head has it)."""
    return {MODE: "token"} if use_token_if_found() else {}


def auth_refused(address: str, detail: str) -> LaunchRefused:
    """Exit 3: the cluster wants a token this process does not have (or has another one)."""
    source = token_source() if os.environ.get(MODE, "").lower() == "token" else None
    have = f"the token from {source} is not the cluster's" if source else (
        "no token" if token_source() is None else f"{MODE}={os.environ.get(MODE)} (the token is not sent)")
    return LaunchRefused(
        f"the Ray cluster at {address} requires token authentication, and LiveRL has {have} "
        f"({scrub(detail.strip().splitlines()[0] if detail.strip() else detail)}). Nothing was done.\n"
        f"    fix: export {MODE}=token and the cluster's token, as {TOKEN}=... or in a file named by {TOKEN_PATH} "
        f"(default {DEFAULT_TOKEN_FILE}); on the head, `ray get-auth-token` prints it",
        EXIT_NO_RESOURCES,
    )


# a GcsClient handshake, as ray.init's own (ray/_private/node.py:996), which raises Ray's AuthenticationError; in a
# process of its own: a GcsClient left in this process outlives ray.shutdown() and ends the process 60 s later
# ("Failed to connect to GCS within 60 seconds", seen when a job's driver re-initialized Ray after the node probe)
_HANDSHAKE = """
import sys
from ray._raylet import GcsClient
from ray.exceptions import AuthenticationError
try:
    GcsClient(address=sys.argv[1])
except AuthenticationError as exc:
    print(str(exc), file=sys.stderr)
    sys.exit(3)
"""


def check_gcs(address: str) -> None:
    """Refuse within seconds when the GCS at address (HOST:PORT) wants a token this process lacks: ray.init retries
    for ~20 s and ends in a ConnectionError that does not say why. Asked once per address and mode."""
    use_token_if_found()
    if address in ("local", "auto") or "://" in address:
        return
    reachable(address)
    _handshake(address, os.environ.get(MODE, ""), token_source())


@contextlib.contextmanager
def attached(address: str):
    """A Ray driver attached to the cluster at address (HOST:PORT), the token checked first (check_gcs), detached
    on the way out; yields the ray module. For LiveRL's own short looks at a cluster (node list, probe tasks)."""
    import ray

    check_gcs(address)
    ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        yield ray
    finally:
        ray.shutdown()


@functools.lru_cache(maxsize=16)
def _handshake(address: str, mode: str, source: str | None) -> None:
    proc = subprocess.run([sys.executable, "-c", _HANDSHAKE, address], capture_output=True, text=True, timeout=120,
                          check=False)
    if proc.returncode == 3:
        raise auth_refused(address, proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "")
