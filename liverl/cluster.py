"""What a Ray cluster has: GPUs per alive node, read from the GCS (HOST:PORT) or the dashboard (http://HOST:8265).

`python -m liverl.cluster wait --address HOST:PORT --nodes N [--gpus-per-node G] [--timeout S]` waits (bounded)
until N alive nodes with >= G GPUs each have joined; scripts/ray_cluster.sh uses it. Exit 0 ready, 1 not in time.
"""

from __future__ import annotations

import argparse
import sys
import time


def is_dashboard(address: str) -> bool:
    return address.startswith(("http://", "https://"))


def node_gpus(address: str) -> list[tuple[str, int]]:
    """(node ip, GPUs) of every alive node. A dashboard URL is read through Ray's state API (no driver attaches)."""
    if is_dashboard(address):
        from ray.util.state import list_nodes

        nodes = list_nodes(address=address, filters=[("state", "=", "ALIVE")], timeout=30)
        return [(n.node_ip, int(n.resources_total.get("GPU", 0))) for n in nodes]
    import ray

    ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        return _alive(ray.nodes())
    finally:
        ray.shutdown()


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
    import ray

    ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        deadline = time.monotonic() + timeout
        while True:
            seen = _alive(ray.nodes())
            if fitting(seen, gpus_per_node) >= nodes or time.monotonic() >= deadline:
                return fitting(seen, gpus_per_node) >= nodes, seen
            time.sleep(2)
    finally:
        ray.shutdown()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m liverl.cluster", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    wait = sub.add_parser("wait", help="wait until the cluster has the nodes")
    wait.add_argument("--address", required=True, help="the head's GCS address HOST:PORT")
    wait.add_argument("--nodes", type=int, required=True)
    wait.add_argument("--gpus-per-node", type=int, default=0)
    wait.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args(argv)
    ok, seen = wait_for_nodes(args.address, args.nodes, args.gpus_per_node, args.timeout)
    listing = ", ".join(f"{ip} ({g} GPUs)" for ip, g in seen) or "none"
    have = fitting(seen, args.gpus_per_node)
    if ok:
        print(f"ray cluster at {args.address}: {have} of {args.nodes} node(s) with >= {args.gpus_per_node} GPUs "
              f"joined: {listing}")
        return 0
    print(
        f"ray cluster at {args.address}: after {args.timeout:.0f}s only {have} of {args.nodes} node(s) with >= "
        f"{args.gpus_per_node} GPUs joined (alive: {listing}); missing {args.nodes - have} node(s).\n"
        f"    fix: run `scripts/ray_cluster.sh worker --address {args.address}` on each missing node (a node that "
        "joined with too few GPUs needs --num-gpus), or raise --timeout",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
