"""`python -m liverl.cluster` backs scripts/ray_cluster.sh:

  wait  --address HOST:PORT --nodes N [--gpus-per-node G] [--timeout S]  until N alive nodes with >= G GPUs joined
        (exit 0 ready, 1 not in time)
  check --address HOST:PORT [--scaffold NAME]   every node is the same as this one: LiveRL's version and commit,
        vLLM's version, verl's imports, with a scaffold that runs trials Harbor's Python and the agent's CLI
        (liverl.launch.node_facts); exit 3 naming each node that differs by IP and id
  auth  [--address HOST:PORT]   prints `token` when this process talks to clusters in token mode (RAY_AUTH_MODE=token,
        or unset and a token found: liverl.launch.ray_auth); with an address, exit 3 when that cluster wants a token
        this process lacks
A cluster that wants a Ray token this process lacks: exit 3, naming the variables to set.
"""

from __future__ import annotations

import argparse
import sys

from omegaconf import OmegaConf

from liverl.launch.cluster import fitting, wait_for_nodes
from liverl.launch.node_probe import cluster_mismatches
from liverl.launch.ray_auth import check_gcs, use_token_if_found
from liverl.launch.refusal import EXIT_NO_RESOURCES, LaunchRefused
from liverl.paths import CONF_DIR


def wait(args: argparse.Namespace) -> int:
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


def check(args: argparse.Namespace) -> int:
    harbor = None
    if args.scaffold:
        path = CONF_DIR / "scaffold" / f"{args.scaffold}.yaml"
        if not path.is_file():
            print(f"--scaffold: no such scaffold (got: {args.scaffold}); the options are conf/scaffold/*.yaml",
                  file=sys.stderr)
            return 2
        harbor = OmegaConf.to_container(OmegaConf.load(path).scaffold.harbor, resolve=True)
    bad = cluster_mismatches(args.address, harbor)
    if bad:
        print(f"ray cluster at {args.address}: {len(bad)} node(s) differ from this one, refused:\n  " + "\n  ".join(bad)
              + "\n    fix: bring each to this node's commit and environment (git checkout + make install, or one "
              "shared checkout), or stop it (scripts/ray_cluster.sh stop on it)", file=sys.stderr)
        return EXIT_NO_RESOURCES
    print(f"ray cluster at {args.address}: every node is the same as this one")
    return 0


def auth(args: argparse.Namespace) -> int:
    if args.address:
        check_gcs(args.address)
    print("token" if use_token_if_found() else "disabled")
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m liverl.cluster", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("wait", help="wait until the cluster has the nodes")
    w.add_argument("--address", required=True, help="the head's GCS address HOST:PORT")
    w.add_argument("--nodes", type=int, required=True)
    w.add_argument("--gpus-per-node", type=int, default=0)
    w.add_argument("--timeout", type=float, default=300)
    c = sub.add_parser("check", help="every node is the same as this one")
    c.add_argument("--address", required=True, help="the head's GCS address HOST:PORT")
    c.add_argument("--scaffold", help="a scaffold whose trials run on the nodes (conf/scaffold/NAME.yaml)")
    a = sub.add_parser("auth", help="token mode here; with --address, refuse when the cluster wants a token")
    a.add_argument("--address", help="the head's GCS address HOST:PORT")
    args = parser.parse_args(argv)
    try:
        return {"wait": wait, "check": check, "auth": auth}[args.command](args)
    except LaunchRefused as exc:
        print(f"LiveRL: {exc}", file=sys.stderr)
        return exc.code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
