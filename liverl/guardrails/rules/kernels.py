"""Kernels where the trainer and the rollout run: reported here as SKIP; judged at launch by liverl.guardrails.gpu_probe
(this machine) and liverl.launch.node_probe (every node)."""

from __future__ import annotations

from collections.abc import Iterable

from liverl.errors import Problem
from liverl.guardrails.framework import SKIP, Ctx, finding, rule


def _gdn_skip(c: Ctx, image: str, what: str, where: str) -> Iterable[Problem]:
    """A GatedDeltaNet model's kernel check that needs the GPU and the image it runs on: SKIP, naming where it runs."""
    if c.cfg.model.linear_attention:
        yield finding(SKIP, f"{image} image", c.cfg.model.name, f"{what}; checked {where}, before training starts",
                      "nothing to do here; a launch refuses with the fix if the image is affected")


@rule("gdn-triton-hopper", "the training image runs GatedDeltaNet's backward on its GPU")
def _gdn(c: Ctx) -> Iterable[Problem]:
    yield from _gdn_skip(c, "training", "GatedDeltaNet kernels (Hopper x Triton x flash-linear-attention x tilelang)",
                         "where the trainer runs")


@rule("gdn-prefill-flashinfer", "vLLM can run GatedDeltaNet's prefill where the rollout runs")
def _gdn_prefill(c: Ctx) -> Iterable[Problem]:
    yield from _gdn_skip(c, "rollout", "vLLM >= 0.24 runs GatedDeltaNet's prefill with FlashInfer on Hopper whether or "
                         "not flashinfer is installed", "on every node")
