"""`python -m liverl.smoke topology=T [override ...]` (what `make smoke` runs).

On a GPU host with vLLM and no model named, it runs the tiny offline smoke (liverl.tiny.smoke: a random-weight
Qwen2, trained a few steps, then relaunched to resume; topology gpu1, or gpu2 with 2+ GPUs). With a GPU cluster in
reach (RAY_ADDRESS, or a model named) it runs the smoke batch for the topology with launcher=local.
Without one it says so and runs what can run here: the smoke plans of
every topology, composed and validated against the verl that would run (launcher=dryrun, a multirun).

With `scaffold=claude_code` or `scaffold=ohsdk` (make smoke SCAFFOLD=...) it runs the agentic smoke instead
(liverl.tiny.agentic_smoke: toy Harbor tasks, warm-started tiny model, the harness in the local environment); without
a GPU and vLLM it plans that run (--dry-run).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys

TOPOLOGIES = "1node,2node,3node"


def local_gpus() -> int:
    """GPUs nvidia-smi lists on this machine (0 without a driver)."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return 0
    out = subprocess.run([smi, "-L"], capture_output=True, text=True, check=False)
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


def has_vllm() -> bool:
    return importlib.util.find_spec("vllm") is not None


def main(argv: list[str]) -> int:
    train = [sys.executable, "-m", "liverl.train"]
    harness = next((a.split("=", 1)[1] for a in argv if a.startswith("scaffold=")), "")
    if harness and harness != "single_turn":
        rest = [a for a in argv if not a.startswith(("scaffold=", "topology="))]
        dry = [] if local_gpus() and has_vllm() else ["--dry-run"]
        # --steps=N, --resume-steps=N, --warm-steps=N (make smoke ARGS="--steps=4"): the agentic smoke's own options
        flags = [a for a in rest if a.startswith("--")]
        return subprocess.call([sys.executable, "-m", "liverl.tiny.agentic_smoke", f"--scaffold={harness}", *dry,
                                *flags, "--", *(a for a in rest if a not in flags)])
    gpus = 0 if os.environ.get("RAY_ADDRESS") else local_gpus()
    if gpus and has_vllm() and not any(a.startswith("model=") for a in argv):
        # this host's GPUs, no model named: the tiny offline smoke (liverl.tiny.smoke), trained, then resumed
        topology = next((a.split("=", 1)[1] for a in argv if a.startswith("topology=")), "gpu2" if gpus > 1 else "gpu1")
        rest = [a for a in argv if not a.startswith("topology=")]
        return subprocess.call([sys.executable, "-m", "liverl.tiny.smoke", f"--topology={topology}", "--", *rest])
    if os.environ.get("RAY_ADDRESS") or gpus:
        return subprocess.call([*train, "batch=smoke", "launcher=local", *argv])
    others = [a for a in argv if not a.startswith("topology=")]
    print(
        "LiveRL smoke: no GPU cluster in reach (RAY_ADDRESS is unset and this machine has no GPU), so no "
        "training step can run here.\nRunning what can: the smoke plans of every topology, composed and validated "
        "against the verl that would run (launcher=dryrun).\nOn a cluster node: RAY_ADDRESS=HEAD_IP:6379 make smoke "
        "TOPOLOGY=3node",
        flush=True,
    )
    return subprocess.call([*train, "-m", f"topology={TOPOLOGIES}", "batch=smoke", "launcher=dryrun", *others])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
