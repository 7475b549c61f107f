"""Asking a Ray cluster's dashboard about jobs: its address, a client for it, one job's status."""

from __future__ import annotations

import os

from liverl.errors import CONFIG_ERROR_EXIT
from liverl.launch.ray_auth import auth_refused, use_token_if_found
from liverl.launch.refusal import LaunchRefused, reachable


def dashboard_address(address: str | None) -> str:
    """The dashboard URL to submit to: launcher.address, else $RAY_ADDRESS when it is one."""
    address = address or os.environ.get("RAY_ADDRESS") or ""
    if address and "://" not in address:
        address = f"http://{address}"
    if not address.startswith(("http://", "https://")):
        raise LaunchRefused(
            f"launcher.address: launcher=ray_job submits to the Ray dashboard of a running cluster, got "
            f"{address or 'nothing'!r}. Nothing was launched.\n    fix: launcher.address=http://HEAD:8265 (the "
            "head's dashboard port; start the head with scripts/ray_cluster.sh head)",
            CONFIG_ERROR_EXIT,
        )
    return address.rstrip("/")


def client(address: str):
    """A JobSubmissionClient for a reachable dashboard (a dead address is refused within seconds; a token cluster
    without its token, exit 3: liverl.launch.ray_auth)."""
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient  # Ray loads in seconds: only when a dashboard is asked

    reachable(address)
    use_token_if_found()
    try:
        return JobSubmissionClient(address)
    except AuthenticationError as exc:  # the client's first request (its version check) is refused: 401 / 403
        raise auth_refused(address, str(exc)) from None
    except (ConnectionError, RuntimeError) as exc:
        raise LaunchRefused(
            f"launcher.address: {address} answers but is not a Ray dashboard with the job API ({exc}). Nothing was "
            "launched.\n    fix: give the dashboard's address (http://HEAD:8265), not the GCS port (6379)",
            CONFIG_ERROR_EXIT,
        ) from None


def job_status(address: str, job_id: str):
    """The job's JobStatus, or None when the cluster cannot be asked."""
    try:
        return client(address).get_job_status(job_id)
    except Exception:  # unreachable, unknown job, dashboard error: cannot tell from here
        return None
