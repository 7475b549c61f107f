"""Memory: policy size x window x trainer nodes that cannot fit."""

from __future__ import annotations

from collections.abc import Iterable

from liverl.errors import Problem
from liverl.guardrails.framework import FATAL, Ctx, finding, rule

# a 35B-class policy on one 8-GPU trainer node with a >=120k window peaks at ~149 GB on a 139.8 GB GPU
BIG_MODEL_B, BIG_WINDOW = 30, 120_000


@rule("memory-window", "a 35B-class policy with a >=120k window has two trainer nodes")
def _memory(c: Ctx) -> Iterable[Problem]:
    window = c.verl.data.max_prompt_length + c.verl.data.max_response_length
    if c.cfg.model.params_b >= BIG_MODEL_B and c.verl.trainer.nnodes == 1 and window >= BIG_WINDOW:
        yield finding(
            FATAL,
            "topology, window",
            f"{c.cfg.topology.name}, {window}",
            f"a {c.cfg.model.params_b}B policy "
            f"on one trainer node with a {window}-token window peaks at ~149 GB on a 139.8 GB GPU (~122 GB "
            "on two trainer nodes): OOM in the first backward",
            "topology=3node (2 trainer nodes), or a window under 120k (window.response=58304)",
        )
