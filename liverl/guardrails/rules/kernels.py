"""Kernels where the trainer and the rollout run: reported here as SKIP; judged at launch by liverl.guardrails.gpu_probe
(this machine) and liverl.launch.node_probe (every node)."""

from __future__ import annotations

from collections.abc import Iterable

from liverl.errors import Problem
from liverl.guardrails.framework import FATAL, SKIP, Ctx, finding, rule
from liverl.guardrails.gpu_probe import GDN_BACKEND_KEY, GDN_BACKENDS


def _gdn_skip(c: Ctx, image: str, what: str, where: str) -> Iterable[Problem]:
    """A GatedDeltaNet model's kernel check that needs the GPU and the image it runs on: SKIP, naming where it runs."""
    if c.linear_attention:
        yield finding(SKIP, f"{image} image", c.cfg.model.name, f"{what}; checked {where}, before training starts",
                      "nothing to do here; a launch refuses with the fix if the image is affected")


@rule("gdn-triton-hopper", "the training image runs GatedDeltaNet's backward on its GPU")
def _gdn(c: Ctx) -> Iterable[Problem]:
    yield from _gdn_skip(c, "training", "GatedDeltaNet's backward (Hopper x Triton x flash-linear-attention x tilelang "
                         "x nvcc)", "on this machine and on every node")


@rule("gdn-prefill-flashinfer", "vLLM can run GatedDeltaNet's prefill where the rollout runs")
def _gdn_prefill(c: Ctx) -> Iterable[Problem]:
    backend = c.v(GDN_BACKEND_KEY)
    if backend is not None and backend not in GDN_BACKENDS:  # verl passes it on as --gdn-prefill-backend
        yield finding(FATAL, f"verl.{GDN_BACKEND_KEY}", backend,
                      f"vLLM's --gdn-prefill-backend takes {', '.join(GDN_BACKENDS)} (case-sensitive; unset: vLLM "
                      "picks): any other value stops vLLM's server at start, after the nodes are allocated",
                      f"verl.{GDN_BACKEND_KEY}=triton, or leave it unset")
    yield from _gdn_skip(c, "rollout", "vLLM >= 0.24 runs GatedDeltaNet's prefill with FlashInfer on Hopper whether or "
                         "not flashinfer is installed", "on every node")
