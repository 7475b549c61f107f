"""Where the proxy listens and the address the agent is given, so the agent reaches it from where it runs.

Harbor runs installed agents inside the task environment (agents/installed/base.py:1072-1083, exec_as_agent), never
in the worker's network namespace, and nothing in Harbor rewrites a loopback base URL. So (`proxy_bind_host` auto):
  - docker (Harbor's type `docker`): the task's containers sit on a compose bridge network
    (environments/docker/docker-compose-{build,prebuilt}.yaml, service `main`). LiveRL adds one compose overlay
    through Harbor's `EnvironmentConfig.extra_docker_compose` (models/trial/config.py:240-243; appended after the
    task's files, environments/docker/docker.py:419) that maps `host.docker.internal` to Docker's `host-gateway`
    (the default bridge's gateway, an address of this host), hands the agent `http://host.docker.internal:PORT`,
    and binds the proxy on that gateway address (docker0's IPv4; all interfaces where this host has no docker0,
    e.g. rootless or a custom daemon bridge).
  - any other environment (a Kubernetes class by import path, a cloud sandbox type): the sandbox is another
    machine, so the proxy binds all interfaces and the agent gets this node's routable address (Ray's node IP).
An explicit `proxy_bind_host` / `proxy_advertise_host` wins. A loopback address handed to an agent that runs off
this host is refused at plan time (rule `proxy-unreachable`, liverl/guardrails/rules/scaffold.py).
"""

from __future__ import annotations

import fcntl
import socket
import struct
from pathlib import Path
from typing import Any

from liverl.atomic import write_atomic

AUTO = "auto"
ALL_INTERFACES = "0.0.0.0"
DOCKER_HOST = "host.docker.internal"
DOCKER_BRIDGE = "docker0"
SIOCGIFADDR = 0x8915
OVERLAY = f"""# LiveRL: the agent reaches the proxy on this host through Docker's host-gateway (reach.py)
services:
  main:
    extra_hosts:
      - "{DOCKER_HOST}:host-gateway"
"""


def is_docker(harbor: dict[str, Any]) -> bool:
    return not harbor.get("environment_import_path") and (harbor.get("environment_type") or "docker") == "docker"


def interface_ipv4(name: str) -> str | None:
    """The IPv4 address of a network interface (None when it does not exist)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            packed = fcntl.ioctl(s.fileno(), SIOCGIFADDR, struct.pack("256s", name[:15].encode()))
        except OSError:
            return None
    return socket.inet_ntoa(packed[20:24])


def node_ip() -> str:
    """This node's routable address, as Ray reports it to the rest of the cluster."""
    try:
        from ray.util import get_node_ip_address

        return get_node_ip_address()
    except Exception:  # not in a Ray worker (a unit test): the address the hostname resolves to
        return socket.gethostbyname(socket.gethostname())


def bind_host(harbor: dict[str, Any]) -> str:
    host = harbor.get("proxy_bind_host")
    if host not in (None, AUTO):
        return str(host)
    if is_docker(harbor):
        return interface_ipv4(DOCKER_BRIDGE) or ALL_INTERFACES
    return ALL_INTERFACES


def advertise_host(harbor: dict[str, Any], bound: str) -> str:
    host = harbor.get("proxy_advertise_host")
    if host:
        return str(host)
    if harbor.get("proxy_bind_host") not in (None, AUTO):
        return bound
    return DOCKER_HOST if is_docker(harbor) else node_ip()


def docker_overlay(harbor: dict[str, Any]) -> str | None:
    """The compose overlay that maps host.docker.internal (written once under trials_dir), where one is needed."""
    if not is_docker(harbor) or advertise_host(harbor, "") != DOCKER_HOST:
        return None
    path = Path(str(harbor.get("trials_dir") or "trials")) / "liverl-proxy-host.compose.yaml"
    if not path.is_file():
        write_atomic(path, OVERLAY)
    return str(path.resolve())
