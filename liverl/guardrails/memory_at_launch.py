"""memory-fit and host-memory-fit judged again where a plan launches: against the GPUs and the host memory the node
probe found (liverl/launch/node_probe.py), not the `gpu` group and `cluster.host_memory_gib` it was planned with.
A plan for H200 launched on H100s is re-judged with the H100's memory and refused if it does not fit."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from omegaconf import OmegaConf

from liverl.errors import Problem
from liverl.guardrails.framework import FATAL
from liverl.guardrails.memory_inputs import host_prediction, predict
from liverl.guardrails.rules.memory import host_problem
from liverl.memory.arch import ArchError
from liverl.memory.terms import gib
from liverl.paths import CONF_DIR


@dataclass
class NodeMemory:
    """What one node has: its GPUs (device name, bytes torch can use) and its physical memory."""

    where: str
    gpus: list[tuple[str, int]] = field(default_factory=list)
    host_bytes: int | None = None


def gpu_group(device: str) -> str | None:
    """The conf/gpu group whose `device` names this card (e.g. "NVIDIA H100 80GB HBM3" -> h100), or None."""
    for path in sorted((CONF_DIR / "gpu").glob("*.yaml")):
        g = OmegaConf.load(path).gpu
        if str(g.device).lower() in device.lower():
            return str(g.name)
    return None


def probed_gpu(nodes: list[NodeMemory], cfg: Any) -> dict[str, Any] | None:
    """run.json's `gpu` after a launch: the smallest GPU over the nodes (None when no node reported a GPU)."""
    cards = [(b, name, n.where) for n in nodes for name, b in n.gpus]
    if not cards:
        return None
    least, device, where = min(cards)
    return {"name": gpu_group(device) or device, "device": device, "memory_bytes": int(least), "source": "probe",
            "planned": str(cfg.gpu.name), "node": where,
            "nodes": {n.where: sorted({name for name, _ in n.gpus}) for n in nodes if n.gpus}}


def memory_problems(cfg: Any, verl: Any, nodes: list[NodeMemory]) -> list[Problem]:
    """FATAL memory-fit / host-memory-fit findings for the GPUs and hosts found, naming the node."""
    problems: list[Problem] = []
    gpu = probed_gpu(nodes, cfg)
    try:
        if gpu:
            p = predict(cfg, verl, gpu=gpu["memory_bytes"])
            for side in ("trainer", "rollout"):
                if not p[side]["fits"]:
                    problems.append(_gpu_problem(p, side, gpu, cfg))
        # trainer ranks run on GPU nodes: a node without GPUs (a CPU-only head, this test machine) holds none
        hosts = [(n.host_bytes, n.where) for n in nodes if n.host_bytes and n.gpus]
        if hosts:
            least, where = min(hosts)
            h = host_prediction(cfg, verl, node_bytes=least)
            if h["fits"] is False:
                problems.append(_host_problem(h, where))
    except ArchError:
        return problems  # no architecture: memory-fit said so when the plan was written
    return problems


def _gpu_problem(p: dict, side: str, gpu: dict, cfg: Any) -> Problem:
    s = p[side]
    planned = cfg.gpu
    fix = s["fix"] or "see python -m liverl.memory"
    return Problem(
        key=f"{side} GPU memory", got=f"{gib(s['peak_bytes'])} > {gib(gpu['memory_bytes'])} ({gpu['device']})",
        rule="memory-fit", severity=FATAL,
        message=f"the plan was judged for {planned.name} ({gib(planned.memory_bytes)} per GPU), but {gpu['node']} "
        f"has {gpu['device']} ({gib(gpu['memory_bytes'])}): one {side} GPU is predicted to peak at "
        f"{gib(s['peak_bytes'])} there" + (f" (+{s['reserved_headroom']:.0%} allocator headroom: within "
                                             f"{gib(s['budget_bytes'])})" if side == "trainer" else ""),
        fix=f"{fix}; plan with gpu={gpu['name']} to see every term (python -m liverl.memory gpu={gpu['name']} ...)")


def _host_problem(h: dict, where: str) -> Problem:
    return dataclasses.replace(host_problem(h, where), rule="host-memory-fit")
