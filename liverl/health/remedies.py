"""One table of remedies: the lever for each signal, shared by `liverl.watch` (a finding's fix) and `liverl.advise`
(a row's overrides), so the two never give different fixes for the same signal.

Each remedy reads the run's config through ``get`` (a dotted-key lookup of its liverl.yaml) and returns the overrides
that apply the lever, the lever in words, and the trade-off of the alternative the page does not lead with.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from liverl.derive import concurrency_per_replica

Get = Callable[[str], Any]
# the page's own lever for a harness other than claude-code, spelled as a user types it
HARNESS_HOWTO = ("HARBOR_AGENT_IMPORT_PATH=pkg.module:AgentClass (alone: the agent name becomes null and Harbor "
                 "loads that class; or HARBOR_AGENT_NAME=null with it), or scaffold=ohsdk for the validated "
                 "OpenHands-SDK harness with its image-mounted runtime")


@dataclass(frozen=True)
class Remedy:
    """A lever: the overrides that apply it, what it does, and the trade-off of the lever not taken first."""

    overrides: list[str]
    text: str
    tradeoff: str = ""
    needs: list[str] = field(default_factory=list)  # what must hold before the command runs (e.g. a smoke pass)

    def fix(self) -> str:
        """The lever as a watch finding's fix."""
        parts = [self.text + (f" ({' '.join(self.overrides)})" if self.overrides else "") + "."]
        return " ".join(parts + ([self.tradeoff] if self.tradeoff else []))


def staleness_tradeoff(get: Get) -> str:
    staleness = get("staleness_threshold") or 0
    return (f"Raising staleness_threshold (to {staleness + 1}) also admits more prompts in flight, but every extra "
            "step of staleness makes updates more off-policy (watch rollout_corr/kl and partial_ratio): a trade-off, "
            "not the first lever; staleness_threshold=0 is its strict on-policy end.")


def rollout_capacity(get: Get) -> Remedy:
    """Trainer idle on rollouts in fully-async mode (the page: raise concurrency or rollout capacity).

    verl keeps min(replicas x concurrent_samples_per_replica, prompts x (staleness + 1) x sync steps) prompts in flight
    (fully_async_rollouter.py:494-506, 970); agent.num_workers does not lift that cap. Concurrency first where the
    per-replica cap is below what the queue admits, else more rollout capacity (another rollout node)."""
    per_replica = get("verl.async_training.concurrent_samples_per_replica")
    nodes, trainers = get("topology.rollout_nnodes"), get("topology.trainer_nnodes")
    gpus = get("topology.gpus_per_node")
    both = isinstance(nodes, int) and isinstance(trainers, int)
    total = get("topology.nnodes") or (nodes + trainers if both else None)
    try:
        derived = concurrency_per_replica(get("train_bsz"), get("staleness_threshold") or 0,
                                          get("trigger_parameter_sync_step") or 1, nodes * gpus,
                                          get("model.rollout_tp") or 1)
    except (TypeError, ValueError):
        derived = None
    tradeoff = staleness_tradeoff(get)
    if isinstance(per_replica, int) and derived and per_replica < derived:
        return Remedy([f"verl.async_training.concurrent_samples_per_replica={derived}"],
                      f"Raise rollout concurrency: concurrent_samples_per_replica={per_replica} keeps fewer prompts in "
                      "flight than the queue admits", tradeoff)
    if isinstance(nodes, int) and isinstance(total, int):
        more = [f"topology.rollout_nnodes={nodes + 1}", f"topology.nnodes={total + 1}"]
    else:
        more = ["topology.rollout_nnodes=<one more>"]
    return Remedy(more, "Add rollout capacity: one more rollout node (more vLLM replicas and sandboxes serve the "
                  "same queue)", tradeoff)


def fully_async(get: Get) -> Remedy:
    """A synchronous run whose trainer waits on rollouts: decouple them (the page's second row)."""
    return Remedy(["topology=2node"], "Decouple trainer and rollouts: the fully-async path (a rollout node streams "
                  "trajectories to the trainer)", "It costs a second node; check rollout_corr/kl once it runs.")


def moe_cofit(get: Get) -> Remedy:
    """A large MoE whose trainer and vLLM do not co-fit one host's GPUs (the page's first row)."""
    return Remedy(["engine=veomni", "topology=2node"], "Move the MoE to the VeOmni engine and a dedicated rollout "
                  "node (vLLM no longer shares the trainer's GPUs)")


def longer_window(get: Get, one_node_window: int | None) -> Remedy:
    """Responses hit the window: lengthen it where one trainer node holds it, else the page's 3-node layout."""
    prompt, response = get("window.prompt"), get("window.response")
    window = prompt + response if isinstance(prompt, int) and isinstance(response, int) else None
    if window is not None and one_node_window and window < one_node_window:
        return Remedy([f"window.response={min(2 * response, one_node_window - prompt)}"],
                      f"Lengthen the window on this topology first (one trainer node holds up to {one_node_window} "
                      "tokens)")
    return Remedy(["topology=3node", "window.prompt=40000", "window.response=91072"],
                  "Move to the 3-node layout (16 trainer GPUs, FSDP2 CPU offload) for the ~131k window")


def env_setup(get: Get) -> Remedy:
    """Trajectories end env_setup_failed: the agent's runtime does not start in the task environment."""
    scaffold = get("scaffold.name")
    if scaffold == "ohsdk":
        return Remedy([], "Keep the agent name null so Harbor loads the image-mounted runtime through the import path "
                      "(scaffold=ohsdk sets it; check nothing overrides HARBOR_AGENT_NAME) and check the runtime is "
                      "in the agent image")
    if scaffold == "claude_code":
        return Remedy([], "Check the agent's install in the task image first: the claude CLI (and node) present, the "
                      "sandbox (docker) starting, and the install step reaching its registry (trials/*/ logs)",
                      "If task pods have no egress, the in-pod install cannot work: the OpenHands-SDK scaffold "
                      "(scaffold=ohsdk) mounts its runtime from the image; another harness: " + HARNESS_HOWTO + ".")
    return Remedy([], "Check the agent's runtime in the task image (trials/*/ logs)")


def other_harness(get: Get) -> Remedy:
    """A different agent harness (the page's fourth row): not a metric, the user's choice."""
    return Remedy(["scaffold=ohsdk"], "Another harness: " + HARNESS_HOWTO)


def did_not_fit(get: Get, memory_fix: str | None) -> Remedy:
    """A run that ended in CUDA out-of-memory: the memory model's cheapest fix, and the page's MoE lever."""
    moe, engine, rollout_nodes = get("model.moe"), get("engine.name"), get("topology.rollout_nnodes") or 0
    fix = (f"the memory model's fix: {memory_fix}" if memory_fix else
           "the memory model gives no fix for this plan (it predicted a fit, or could not predict on this GPU): "
           "python -m liverl.memory --run-dir RUN_DIR shows its terms")
    if moe and not (engine == "veomni" and rollout_nodes >= 1):
        lever = moe_cofit(get)
        return Remedy(lever.overrides, f"It did not fit: {lever.text}; {fix}")
    return Remedy([], f"It did not fit: {fix}")
