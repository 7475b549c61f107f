"""A real Ray head on 127.0.0.1 for tests: logical GPUs via --num-gpus, bounded start, always torn down."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
TESTS = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def private_ports() -> list[str]:
    """`ray start` flags moving every fixed default port aside, so heads on one machine never collide."""
    return [
        f"--dashboard-agent-listen-port={free_port()}",
        f"--metrics-export-port={free_port()}",
        f"--ray-client-server-port={free_port()}",
    ]


@contextmanager
def ray_head(
    num_gpus: int, num_cpus: int = 2, timeout: float = 90.0, env: dict[str, str] | None = None
) -> Iterator[str]:
    """Start `ray start --head --block` and yield its GCS address; SIGTERM ends the head and its processes. `env`
    is added to the head's environment (its workers inherit it)."""
    port = free_port()
    with _head(["--include-dashboard=false", *private_ports()], port, num_gpus, num_cpus, env or {}, timeout):
        yield f"127.0.0.1:{port}"


@contextmanager
def ray_job_head(num_gpus: int, env: dict[str, str], num_cpus: int = 2, timeout: float = 90.0) -> Iterator[str]:
    """A head with its dashboard (Ray's Job Submission API); yields the dashboard URL once a node is alive.

    The venv's bin is first on the head's PATH (as on a cluster node, `python` is the one with Ray) and `env` is
    added to its environment, which the jobs it runs inherit."""
    port, dashboard = free_port(), free_port()
    args = ["--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}", *private_ports()]
    with _head(args, port, num_gpus, num_cpus, env, timeout):
        url = f"http://127.0.0.1:{dashboard}"
        _until(lambda: _alive_nodes(url), timeout, f"no alive node behind the dashboard {url}")
        yield url


def _alive_nodes(url: str) -> bool:
    from ray.util.state import list_nodes

    try:
        return bool(list_nodes(address=url, timeout=5))
    except Exception:  # the dashboard is still starting
        return False


def _until(ok, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} within {timeout}s")
        time.sleep(0.5)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@contextmanager
def _head(args: list[str], port: int, num_gpus: int, num_cpus: int, env: dict[str, str], timeout: float):
    ray_bin = str(VENV_BIN / "ray")
    full_env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **env}
    full_env["PATH"] = f"{VENV_BIN}{os.pathsep}{full_env.get('PATH', '')}"
    full_env.pop("RAY_ADDRESS", None)
    # each head its own temp dir: a Ray job's driver gets the cluster its head's temp dir names last
    # (ray/dashboard/modules/job/job_supervisor.py:264-283 resolves "auto" from ray_current_cluster there), and
    # /tmp/ray is shared with every other Ray on the machine (another xdist worker's head, the GPU host's smoke). Short:
    # Ray's unix sockets live under it
    temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    proc = subprocess.Popen(
        [
            ray_bin if shutil.which(ray_bin) else "ray",
            "start",
            "--head",
            "--block",
            "--node-ip-address=127.0.0.1",
            f"--port={port}",
            f"--num-gpus={num_gpus}",
            f"--num-cpus={num_cpus}",
            "--disable-usage-stats",
            f"--temp-dir={temp_dir}",
            *args,
        ],
        env=full_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:

        def up() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"ray head exited with {proc.returncode}")
            return _listening(port)

        _until(up, timeout, f"ray head did not listen on 127.0.0.1:{port}")
        yield
    finally:
        _stop_group(proc)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the process group, then SIGKILL whatever of it outlived that."""
    os.killpg(proc.pid, 15)
    with suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, 9)
    proc.wait(timeout=30)


@contextmanager
def ray_worker(address: str, env: dict[str, str], num_cpus: int = 1, timeout: float = 90.0) -> Iterator[None]:
    """A second node joining the head at `address` from this machine (127.0.0.1), with `env` as its environment
    (its workers inherit it: a node with another PYTHONPATH runs other code); torn down like the head."""
    import ray

    full_env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **env}
    full_env["PATH"] = f"{VENV_BIN}{os.pathsep}{full_env.get('PATH', '')}"
    proc = subprocess.Popen(
        [str(VENV_BIN / "ray"), "start", "--block", f"--address={address}", "--node-ip-address=127.0.0.1",
         f"--num-cpus={num_cpus}", "--num-gpus=0", "--disable-usage-stats", *private_ports()],
        env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        try:
            _until(lambda: sum(n["Alive"] for n in ray.nodes()) >= 2, timeout, "the second node did not join")
        finally:
            ray.shutdown()
        yield
    finally:
        _stop_group(proc)
