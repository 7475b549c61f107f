"""Re-judging a written plan where and when it launches: the rules that depend on this disk and this cluster."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from omegaconf import OmegaConf

from liverl.errors import Problem
from liverl.guardrails.framework import RULES, Ctx, apply_waivers
from liverl.guardrails.gpu_probe import check_kernels_here, check_rollout_kernels_here
from liverl.rundir import LIVERL_YAML, RUN_JSON, VERL_YAML

# moe-new-verl and trainer-imports are WARN when planned and FATAL here (Ctx.launching)
LAUNCH_RULES = ("paths-exist", "smoke-before-official", "moe-new-verl", "trainer-imports")


def launch_blockers(run_dir: Path, address: str | None) -> list[Problem]:
    """FATAL findings of a written plan judged where and when it launches: the rules that depend on this disk and
    this cluster (a plan written with launcher=dryrun was not judged as a launch), and the kernel stack here (the
    trainer's GatedDeltaNet backward; vLLM's GatedDeltaNet prefill for a run on this machine)."""
    cfg = OmegaConf.load(run_dir / LIVERL_YAML)
    label = json.loads((run_dir / RUN_JSON).read_text()).get("verl_source", "")  # the verl the plan was built on
    ctx = Ctx(cfg, OmegaConf.load(run_dir / VERL_YAML), {}, label, launching=True, address=address)
    found = [dataclasses.replace(f, rule=r) for r in LAUNCH_RULES for f in RULES[r](ctx)]
    # vLLM's prefill kernels: here for a run on this machine (an embedded Ray); on a cluster, on every node
    # (liverl.launch.node_probe), which names the node
    rollout = check_rollout_kernels_here(ctx) if address in (None, "local") else None
    kernels = [p for p in (check_kernels_here(ctx), rollout) if p]
    blocking, _ = apply_waivers([*found, *kernels], cfg.liverl.allow)
    return blocking
