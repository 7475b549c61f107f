"""What a Ray cluster has: GPUs per alive node, read from the GCS (HOST:PORT) or the dashboard (http://HOST:8265).

ray_preflight refuses a plan the cluster cannot place; wait_for_nodes backs `python -m liverl.cluster wait`.
"""

from __future__ import annotations

import time

from liverl.launch.ray_auth import attached, use_token_if_found
from liverl.launch.refusal import EXIT_NO_RESOURCES, LaunchRefused, reachable
from liverl.rundir import Plan


def is_dashboard(address: str) -> bool:
    return address.startswith(("http://", "https://"))


def node_gpus(address: str) -> list[tuple[str, int]]:
    """(node ip, GPUs) of every alive node. A dashboard URL is read through Ray's state API (no driver attaches)."""
    use_token_if_found()
    if is_dashboard(address):
        from ray.util.state import list_nodes

        nodes = list_nodes(address=address, filters=[("state", "=", "ALIVE")], timeout=30)
        return [(n.node_ip, int(n.resources_total.get("GPU", 0))) for n in nodes]
    with attached(address) as ray:
        return _alive(ray.nodes())


def _alive(nodes: list[dict]) -> list[tuple[str, int]]:
    return [(n["NodeManagerAddress"], int(n["Resources"].get("GPU", 0))) for n in nodes if n.get("Alive")]


def fitting(nodes: list[tuple[str, int]], gpus_per_node: int) -> int:
    """How many nodes have at least gpus_per_node GPUs."""
    return sum(1 for _, g in nodes if g >= gpus_per_node)


def pool_slots(nodes: list[tuple[str, int]], gpus_per_node: int) -> int:
    """How many pools of gpus_per_node GPUs the nodes can host (a 2-GPU node hosts two 1-GPU pools)."""
    if gpus_per_node <= 0:
        return len(nodes)
    return sum(g // gpus_per_node for _, g in nodes)


def wait_for_nodes(address: str, nodes: int, gpus_per_node: int, timeout: float) -> tuple[bool, list[tuple[str, int]]]:
    """Poll the GCS until `nodes` alive nodes with >= gpus_per_node GPUs joined, or the timeout passes."""
    with attached(address) as ray:
        deadline = time.monotonic() + timeout
        while True:
            seen = _alive(ray.nodes())
            if fitting(seen, gpus_per_node) >= nodes or time.monotonic() >= deadline:
                return fitting(seen, gpus_per_node) >= nodes, seen
            time.sleep(2)


def ray_preflight(plan: Plan, address: str) -> None:
    """Compare the GPUs the plan needs with what Ray reports (its GCS, or its dashboard for launcher=ray_job);
    refuse instead of waiting forever for placement."""
    need = plan.gpus
    reachable(address)
    nodes = node_gpus(address)
    per_node = sorted((g for _, g in nodes), reverse=True)
    # a plan's "nodes" are pools of gpus_per_node GPUs that Ray places; several fit on one host (topology=gpu2)
    fit = pool_slots(nodes, need["gpus_per_node"])
    if fit < need["nodes"]:
        where = "an embedded Ray on this machine" if address == "local" else f"the Ray cluster at {address}"
        raise LaunchRefused(
            f"the plan needs {need['nodes']} node(s) x {need['gpus_per_node']} GPUs ({need['total']} GPUs); "
            f"{where} reports {len(per_node)} node(s) with GPUs {per_node or [0]} "
            f"(room for {fit} pool(s) of {need['gpus_per_node']} GPUs). Nothing was launched.\n"
            "    fix: run on a cluster that has them (RAY_ADDRESS or launcher.address=...), or pick a smaller "
            "topology (topology=1node); `launcher=dryrun` writes the plan without running it",
            EXIT_NO_RESOURCES,
        )


