"""Memory: each trainer GPU and each rollout GPU is predicted to hold its share (liverl.memory's model)."""

from __future__ import annotations

from collections.abc import Iterable

from liverl.errors import Problem
from liverl.guardrails import memory_inputs
from liverl.guardrails.framework import FATAL, SKIP, Ctx, finding, rule
from liverl.memory.arch import ArchError
from liverl.memory.plan import predict
from liverl.memory.rollout import kv_budget
from liverl.memory.terms import StepSpec, gib

# the one term of the trainer model no measurement decides: FLA's GatedDeltaNet kernels (liverl.memory.terms
# COEF["gdn_fla"], nominal) - benchmarks/memory/results_h200.json measured transformers' torch fallback ("fla": false
# in its env), as FLA's backward needs tilelang on Hopper
FLA_UNMEASURED = ("; its linear-attention term is FLA's nominal size, not measured (the H200 measurements ran "
                  "transformers' torch fallback), so this peak may be off by that term")


def unmeasured(spec: StepSpec) -> str:
    """What the trainer prediction for this step rests on that no measurement decides ('' when nothing)."""
    return FLA_UNMEASURED if spec.arch.linear_layers and spec.linear_impl == "fla" else ""


def _trainer(p: dict, caveat: str = "") -> Problem:
    t = p["trainer"]
    terms = ", ".join(f"{k} {gib(v)}" for k, v in t["biggest"])
    return finding(
        FATAL,
        "trainer GPU memory",
        f"{gib(t['peak_bytes'])} > {gib(p['gpu_bytes'])}",
        f"one trainer GPU is predicted to peak at {gib(t['peak_bytes'])} in the {t['peak_phase']} phase "
        f"({t['tokens_per_gpu']} tokens/GPU, {t['shards']} shards); biggest terms: {terms}{caveat}",
        f"{t['fix']}; `python -m liverl.memory` with the same overrides shows every term",
    )


def _rollout(p: dict) -> Problem:
    r = p["rollout"]
    b = r["breakdown"]
    return finding(
        FATAL,
        "rollout GPU memory",
        f"TP {r['tp']}, {r['full_window_sequences']} full-window sequences",
        f"a vLLM replica cannot hold one {r['window']}-token sequence at {kv_budget(r)}: "
        f"weights {gib(b['weights_per_rank'])} per rank + reserve "
        f"{gib(b['reserve'])}, {gib(b['bytes_per_full_window_sequence'])} per full-window sequence",
        r["fix"],
    )


@rule("memory-fit", "each trainer and rollout GPU is predicted to hold its share (python -m liverl.memory)")
def _memory_fit(c: Ctx) -> Iterable[Problem]:
    try:
        inputs = memory_inputs.plan_inputs(c.cfg, c.verl, structure_only=c.structure_only)
        p = predict(inputs)
    except ArchError as exc:
        yield finding(SKIP, "model.arch", c.cfg.model.get("arch"), f"no architecture to predict memory from: {exc}",
                      "set model.arch to a bundled architecture or put the checkpoint at model.path")
        return
    if not p["trainer"]["fits"]:
        yield _trainer(p, unmeasured(inputs.trainer))
    if not p["rollout"]["fits"]:
        yield _rollout(p)
