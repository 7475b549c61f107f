"""Memory: each trainer GPU and each rollout GPU is predicted to hold its share (liverl.memory's model)."""

from __future__ import annotations

from collections.abc import Iterable

from liverl.errors import Problem
from liverl.guardrails import memory_inputs
from liverl.guardrails.framework import FATAL, SKIP, Ctx, finding, rule
from liverl.memory.arch import ArchError
from liverl.memory.rollout import kv_budget
from liverl.memory.terms import gib


def _trainer(p: dict) -> Problem:
    t = p["trainer"]
    terms = ", ".join(f"{k} {gib(v)}" for k, v in t["biggest"])
    return finding(
        FATAL,
        "trainer GPU memory",
        f"{gib(t['peak_bytes'])} > {gib(p['gpu_bytes'])}",
        f"one trainer GPU is predicted to peak at {gib(t['peak_bytes'])} in the {t['peak_phase']} phase "
        f"({t['tokens_per_gpu']} tokens/GPU, {t['shards']} shards); biggest terms: {terms}",
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
        p = memory_inputs.predict(c.cfg, c.verl, structure_only=c.structure_only)
    except ArchError as exc:
        yield finding(SKIP, "model.arch", c.cfg.model.get("arch"), f"no architecture to predict memory from: {exc}",
                      "set model.arch to a bundled architecture or put the checkpoint at model.path")
        return
    if not p["trainer"]["fits"]:
        yield _trainer(p)
    if not p["rollout"]["fits"]:
        yield _rollout(p)


@rule("fsdp-fused-untied", "verl's fused log-prob kernels are not asked for on FSDP2 with untied embeddings")
def _fsdp_fused_untied(c: Ctx) -> Iterable[Problem]:
    # with untied embeddings FSDP2 wraps lm_head as its own unit (verl/utils/fsdp_utils.py:558-559) and the fused
    # forward reads self.lm_head.weight without calling it (verl/models/transformers/dense_common.py:123)
    fused, strategy = c.v(memory_inputs.FUSED_KEY, False), c.v(memory_inputs.STRATEGY_KEY, "")
    if fused is not True or strategy != "fsdp2":
        return
    tied = memory_inputs.tied_embeddings(c.cfg, c.structure_only)
    if tied is False:
        yield finding(
            FATAL, f"verl.{memory_inputs.FUSED_KEY}", True,
            "the model has untied embeddings: FSDP2 wraps lm_head as its own unit and verl's fused forward reads its "
            "unassembled shard (verl/utils/fsdp_utils.py:558-559, models/transformers/dense_common.py:123); the "
            "first log-prob pass dies with 'aten.mm.default got mixed torch.Tensor and DTensor'",
            f"verl.{memory_inputs.FUSED_KEY}=auto (LiveRL turns the fused path off for untied models), or =false")
