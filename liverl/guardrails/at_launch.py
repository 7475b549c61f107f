"""Re-judging a written plan where and when it launches: the rules that depend on this disk and this cluster."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from omegaconf import OmegaConf

from liverl.errors import Problem
from liverl.guardrails.framework import RULES, Ctx, apply_waivers
from liverl.guardrails.gpu_probe import check_kernels_here

LAUNCH_RULES = ("paths-exist", "smoke-before-official")


def launch_blockers(run_dir: Path, address: str | None) -> list[Problem]:
    """FATAL findings of a written plan judged where and when it launches: the rules that depend on this disk and
    this cluster (a plan written with launcher=dryrun was not judged as a launch), and the kernel stack here."""
    cfg = OmegaConf.load(run_dir / "liverl.yaml")
    ctx = Ctx(cfg, OmegaConf.load(run_dir / "verl.yaml"), {}, "", launching=True, address=address)
    found = [dataclasses.replace(f, rule=r) for r in LAUNCH_RULES for f in RULES[r](ctx)]
    kernels = check_kernels_here(cfg)
    blocking, _ = apply_waivers([*found, *([kernels] if kernels else [])], cfg.liverl.allow)
    return blocking
