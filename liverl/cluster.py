"""`python -m liverl.cluster wait --address HOST:PORT --nodes N [--gpus-per-node G] [--timeout S]` waits (bounded)
until N alive nodes with >= G GPUs each have joined; scripts/ray_cluster.sh uses it. Exit 0 ready, 1 not in time.
"""

from __future__ import annotations

import argparse
import sys

from liverl.launch.cluster import fitting, wait_for_nodes


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
