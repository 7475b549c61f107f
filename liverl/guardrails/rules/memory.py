"""Memory: each trainer GPU and each rollout GPU is predicted to hold its share (liverl.memory's model)."""

from __future__ import annotations

from collections.abc import Iterable

from liverl.errors import Problem
from liverl.guardrails import memory_inputs
from liverl.guardrails.framework import FATAL, SKIP, WARN, Ctx, finding, rule
from liverl.guardrails.verl_keys import batch_shape, in_flight_cap
from liverl.memory.arch import ArchError
from liverl.memory.rollout import kv_budget
from liverl.memory.terms import StepSpec, gib

# the one term of the trainer model no measurement decides: FLA's GatedDeltaNet kernels (liverl.memory.terms
# COEF["gdn_fla"], nominal) - benchmarks/memory/results_h200.json measured transformers' torch fallback ("fla": false
# in its env), as FLA's backward needs tilelang on Hopper. The Qwen3.5 verl point (benchmarks/memory/verl_points.json,
# moe35b_fsdp_6k) trained through FLA, but its peak is the optimizer step, which holds no activations
FLA_UNMEASURED = ("; its linear-attention term is FLA's nominal size, not measured (the H200 measurements ran "
                  "transformers' torch fallback), so this peak may be off by that term")


def unmeasured(spec: StepSpec) -> str:
    """What the trainer prediction for this step rests on that no measurement decides ('' when nothing)."""
    return FLA_UNMEASURED if spec.arch.linear_layers and spec.linear_impl == "fla" else ""


def _budget(p: dict) -> str:
    """A trainer GPU's budget as memory-fit judges it, e.g. '99.9 GiB (h200 139.8 GiB less 40% allocator headroom)'."""
    t = p["trainer"]
    return (f"{gib(t['budget_bytes'])} ({p['gpu']} {gib(p['gpu_bytes'])} less {t['reserved_headroom']:.0%} allocator "
            "headroom)")


def _trainer(p: dict, caveat: str = "") -> Problem:
    t = p["trainer"]
    terms = ", ".join(f"{k} {gib(v)}" for k, v in t["biggest"])
    return finding(
        FATAL,
        "trainer GPU memory",
        f"{gib(t['peak_bytes'])} > {_budget(p)}",
        f"one trainer GPU is predicted to peak at {gib(t['peak_bytes'])} allocated in the {t['peak_phase']} phase "
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
        p = memory_inputs.predict_from(c.cfg, inputs)
    except ArchError as exc:
        yield finding(SKIP, "model.arch", c.cfg.model.get("arch"), f"no architecture to predict memory from: {exc}",
                      "set model.arch to a bundled architecture or put the checkpoint at model.path")
        return
    if not p["trainer"]["fits"]:
        yield _trainer(p, unmeasured(inputs.trainer))
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


def host_problem(h: dict, where: str = "one trainer node") -> Problem:
    b = h["breakdown"]
    terms = ", ".join(f"{k} {gib(v)}" for k, v in b.items() if v)
    return finding(
        FATAL, "host memory", f"{gib(h['peak_bytes'])} + {gib(h['headroom_bytes'])} > {gib(h['node_bytes'])}",
        f"{where} is predicted to need {gib(h['peak_bytes'])} of host memory ({h['peak_phase']}: {terms}; "
        f"{h['ranks_per_node']} trainer ranks, {gib(h['pinned_bytes'])} of it pinned by offload), plus "
        f"{gib(h['headroom_bytes'])} kept for the node's processes, which the GPU host measured above the prediction "
        "on an MoE shape: the node swaps or the kernel's OOM killer ends a rank, and the run dies",
        "offload less (topology.fsdp2_cpu_offload=false / optimizer_offload=false where the GPU holds it), shard over "
        "more nodes (fsdp_size), or nodes with more memory; `python -m liverl.memory` shows the GPU side")


@rule("host-memory-fit", "each trainer node's host memory holds the offloaded optimizer/parameter state (pinned, "
      "in powers of two), the model load and the node's processes, plus a measured headroom for the processes "
      "(cluster.host_memory_gib when planning; each node's memory at launch)")
def _host_memory_fit(c: Ctx) -> Iterable[Problem]:
    try:
        h = memory_inputs.host_prediction(c.cfg, c.verl, structure_only=c.structure_only)
    except ArchError:
        return  # memory-fit says why there is no architecture
    if h["fits"] is None:
        if h["offload"]:
            yield finding(SKIP, "cluster.host_memory_gib", None,
                          f"offload keeps {gib(h['pinned_bytes'])} per trainer node in host memory (peak "
                          f"{gib(h['peak_bytes'])}, judged with {gib(h['headroom_bytes'])} headroom); not judged "
                          "until launch, where the node probe reads each node's",
                          "set cluster.host_memory_gib=<GiB per node> to judge it now")
        return
    if not h["fits"]:
        yield host_problem(h)


def kv_demand(cfg, verl, mode: str, structure_only: bool = False) -> dict | None:
    """Sequences a rollout replica holds in flight at the full window vs how many its KV cache holds, or None."""
    p = memory_inputs.predict(cfg, verl, structure_only)
    r = p["rollout"]
    if not r["fits"]:
        return None  # memory-fit names a rollout GPU that cannot hold one sequence
    required = 0
    if mode == "fully_async":
        replicas, cap, required = in_flight_cap(verl)
        prompts, n = cap, int(verl.actor_rollout_ref.rollout.n)
    else:
        gpus = int(verl.trainer.nnodes) * int(verl.trainer.n_gpus_per_node)
        replicas = max(1, gpus // max(1, r["tp"]))
        prompts, n = batch_shape(verl, mode)
    total = int(prompts) * int(n)  # verl repeats each prompt n times (fully_async_policy/detach_utils.py:70)
    return {"in_flight": -(-total // max(1, replicas)), "capacity": r["full_window_sequences"], "window": r["window"],
            "replicas": replicas, "n": int(n), "tp": r["tp"], "budget": kv_budget(r), "total": total,
            "min_per_replica": -(-int(required) // max(1, replicas))}


def kv_fix(d: dict, mode: str) -> str:
    """The cheapest change that lets every in-flight sequence reach the window without preemption."""
    fit = d["capacity"] // d["n"]  # prompts per replica whose n responses all fit
    more = f"at least {-(-d['total'] // max(1, d['capacity']))} rollout replicas (more rollout GPUs)"
    if mode == "fully_async" and fit >= max(1, d["min_per_replica"]):
        return f"verl.async_training.concurrent_samples_per_replica={fit}, or {more}"
    return (f"{more}, a larger rollout TP (model.rollout_tp), a higher gpu_memory_utilization, or a shorter window "
            "(a smaller batch for sync runs)")


@rule("rollout-kv-demand", "a vLLM replica's KV cache holds the sequences LiveRL keeps in flight on it at the full "
      "window (else vLLM preempts and recomputes them)")
def _rollout_kv_demand(c: Ctx) -> Iterable[Problem]:
    try:
        d = kv_demand(c.cfg, c.verl, c.mode, c.structure_only)
    except ArchError:
        return
    if d is None or d["in_flight"] <= d["capacity"]:
        return
    key = "verl.async_training.concurrent_samples_per_replica" if c.mode == "fully_async" else "train_bsz"
    yield finding(
        WARN, key, c.v(key[5:]) if key.startswith("verl.") else c.cfg.get("train_bsz"),
        f"each of {d['replicas']} vLLM replica(s) (TP {d['tp']}) keeps up to {d['in_flight']} sequences in flight "
        f"({d['n']} responses per prompt), but its KV cache ({d['budget']}) holds {d['capacity']} at the full "
        f"{d['window']}-token window: once episodes grow that long vLLM's scheduler preempts sequences (V1 frees "
        "their blocks and recomputes the prefill later), and rollout throughput drops",
        kv_fix(d, c.mode))
