"""Kernels where the trainer runs: reported here as SKIP; judged at launch by liverl.guardrails.gpu_probe."""

from __future__ import annotations

from collections.abc import Iterable

from liverl.errors import Problem
from liverl.guardrails.framework import SKIP, Ctx, finding, rule


@rule("gdn-triton-hopper", "the training image runs GatedDeltaNet's backward on its GPU")
def _gdn(c: Ctx) -> Iterable[Problem]:
    if c.cfg.model.linear_attention:
        yield finding(
            SKIP,
            "training image",
            c.cfg.model.name,
            "GatedDeltaNet kernels (Hopper x Triton x "
            "flash-linear-attention x tilelang) are checked where the trainer runs, before training starts",
            "nothing to do here; a launch refuses with the fix if the image is affected",
        )
